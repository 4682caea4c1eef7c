"""NSGA-II over per-layer bit widths (docs/search.md), built on DEAP's selection operators.

Genome: one (A_i, W_i) pair per quantizable layer, each from the configured bit set; the Outputs
width of layer i is A_{i+1} (decided where genomes become hardware precisions, not here).

Determinism and resume: every generation draws from its own ``random.Random`` seeded with
(seed, generation), never from the global generator, and each finished generation's population is
journaled in the store. A run killed anywhere continues from its last finished generation and
replays exactly the same draws, so it ends on the same front as an uninterrupted run; the
evaluator's store makes the replayed evaluations free.

Genomes are tuples of tuples: variation always builds new genomes, so a child can never alias
(and later mutate) its parent's genes.

A net that calls one Conv2d/Linear module more than once has one layer per call but one set of
weights, which QAT quantizes once: such calls share their (A, W). ``shared`` lists those groups
of layer indices; every genome the search makes gives a group its first call's pair, and
mutation redraws only a group's first call (so a mutation is never undone).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, Sequence

from deap import base, tools

from ..spec.hashing import content_hash
from ..spec.settings import setting
from .store import GenerationRecord, Store

Genome = tuple[tuple[int, int], ...]
Scored = tuple[Genome, tuple[float, ...]]
Shared = tuple[tuple[int, ...], ...]  # layer indices calling one module, first call first


def shared_layers(module_names: Sequence[str]) -> Shared:
    """The groups of two or more layers (by index) that are calls of one module."""
    calls: dict[str, list[int]] = {}
    for index, name in enumerate(module_names):
        calls.setdefault(name, []).append(index)
    return tuple(tuple(group) for group in calls.values() if len(group) > 1)


def tie(genome: Genome, shared: Shared) -> Genome:
    """The genome with every later call of a shared module at its first call's (A, W)."""
    if not shared:
        return genome
    pairs = list(genome)
    for first, *later in shared:
        for index in later:
            pairs[index] = pairs[first]
    return tuple(pairs)


def free_layers(n_layers: int, shared: Shared) -> list[int]:
    """The layers whose pair is the search's to choose: all but the later calls of a module."""
    later = {index for group in shared for index in group[1:]}
    return [index for index in range(n_layers) if index not in later]


@dataclass(frozen=True)
class Objective:
    """One objective by name and direction (accuracy is maximized, hardware costs minimized)."""

    name: str
    maximize: bool = False


@dataclass(frozen=True)
class SearchSettings:
    """NSGA-II budget and operators; defaults are the paper's 10 + 10 individuals, 25 gens."""

    bits: tuple[int, ...] = setting((2, 3, 4, 5, 6, 7, 8), minimum=1, maximum=16,
                                    help="bit widths a layer's A and W are drawn from")
    parents: int = setting(10, minimum=2, maximum=100_000, help="population size")
    offspring: int = setting(10, minimum=2, maximum=100_000, help="children per generation")
    generations: int = setting(25, minimum=0, maximum=100_000,
                                  help="generations after the initial population")
    crossover_prob: float = setting(0.9, minimum=0.0, maximum=1.0, help="crossover probability")
    mutation_prob: float = setting(0.5, minimum=0.0, maximum=1.0, help="mutation probability")


class Evaluator(Protocol):
    """Scores a batch of genomes (one value per objective, in objective order)."""

    def __call__(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        ...

    def phase(self, generation: int) -> str:
        """What scores generation ``generation`` (e.g. 'qat-3ep' or a cheaper proxy); when it
        changes, the parents are scored again so they compete on equal terms."""
        ...


def promoted(evaluate: Evaluator, genomes: Sequence[Genome], generation: int) -> list[Genome]:
    """The genomes worth a full evaluation: those the evaluator's ``screen(genomes,
    generation)`` (one flag each, after a cheap evaluation) keeps; all of them when the
    evaluator has no screen. Only full evaluations enter the population and the front."""
    screen = getattr(evaluate, "screen", None)
    if screen is None:
        return list(genomes)
    return [g for g, keep in zip(genomes, screen(genomes, generation)) if keep]


@dataclass(frozen=True)
class SearchResult:
    """The final population, its first non-dominated front, and generations completed."""

    population: tuple[Scored, ...]
    front: tuple[Scored, ...]
    generations: int
    resumed_from: int | None


class _Individual(list):
    """A DEAP-style individual: the genome's layer pairs plus a fitness (built per run)."""

    fitness: base.Fitness


def fitness_class(objectives: Sequence[Objective]) -> type[base.Fitness]:
    weights = tuple(1.0 if o.maximize else -1.0 for o in objectives)
    return type("SearchFitness", (base.Fitness,), {"weights": weights})


def _rng(seed: int, generation: int) -> random.Random:
    """The generator of one generation: independent of every other generation and of how many
    draws earlier generations made, which is what makes resume replay exactly."""
    return random.Random(int(content_hash("nsga2", seed, generation)[:16], 16))


def uniform_genomes(n_layers: int, bits: Sequence[int], count: int) -> list[Genome]:
    """The uniform configurations (all layers (b, b)); evenly spaced over ``bits`` when fewer
    than ``len(bits)`` fit into the population."""
    ordered = sorted(bits)
    if count >= len(ordered):
        chosen = ordered
    else:
        chosen = sorted({ordered[round(i * (len(ordered) - 1) / max(1, count - 1))]
                         for i in range(count)})
    return [tuple((b, b) for _ in range(n_layers)) for b in chosen]


def random_genome(n_layers: int, bits: Sequence[int], rng: random.Random) -> Genome:
    return tuple((rng.choice(bits), rng.choice(bits)) for _ in range(n_layers))


def protected_genomes(bits: Sequence[int], ranking: Sequence[int], count: int) -> list[Genome]:
    """Up to ``count`` seeds between the uniform ones: every layer at a low width except the
    most sensitive quarter (then half) of the layers, which keep the widest width; lowest
    widths first. ``ranking`` lists the layer indices, most sensitive first."""
    n_layers, top = len(ranking), max(bits)
    shares = [max(1, n_layers // 4), max(1, n_layers // 2)]
    seeds = []
    for low in sorted(b for b in set(bits) if b < top):
        for share in shares:
            kept = set(ranking[:share])
            seeds.append(tuple((top, top) if i in kept else (low, low) for i in range(n_layers)))
    return list(dict.fromkeys(seeds))[:count]


def initial_population(n_layers: int, settings: SearchSettings, seed: int = 0,
                       extra: Sequence[Genome] = (), shared: Shared = ()) -> list[Genome]:
    """Uniform seeds first, then the ``extra`` seeds, then random genomes up to the parent
    count (all tied to ``shared``)."""
    rng = _rng(seed, 0)
    genomes = uniform_genomes(n_layers, settings.bits, settings.parents)
    seeds = dict.fromkeys(tie(g, shared) for g in extra)
    genomes += [g for g in seeds if g not in genomes][:max(0, settings.parents - len(genomes))]
    while len(genomes) < settings.parents:
        genomes.append(tie(random_genome(n_layers, settings.bits, rng), shared))
    return genomes


def crossover(first: Genome, second: Genome, rng: random.Random) -> tuple[Genome, Genome]:
    """Uniform per-layer crossover: each layer's (A, W) pair comes from either parent with
    probability 1/2; the other child gets the other parent's pair."""
    a, b = [], []
    for left, right in zip(first, second):
        if rng.random() < 0.5:
            left, right = right, left
        a.append(left)
        b.append(right)
    return tuple(a), tuple(b)


def mutate(genome: Genome, bits: Sequence[int], rng: random.Random,
           shared: Shared = ()) -> Genome:
    """Redraw one layer's A or W to a different value of the bit set (a shared module's
    calls together)."""
    layers = free_layers(len(genome), shared)
    layer = layers[rng.randrange(len(layers))]
    which = rng.randrange(2)
    current = genome[layer][which]
    options = [b for b in bits if b != current] or [current]
    pair = list(genome[layer])
    pair[which] = rng.choice(options)
    return tie(genome[:layer] + (tuple(pair),) + genome[layer + 1:], shared)  # type: ignore[arg-type]


def to_individuals(scored: Sequence[Scored], fitness: type[base.Fitness]) -> list[_Individual]:
    out = []
    for genome, values in scored:
        ind = _Individual(genome)
        ind.fitness = fitness(values)
        out.append(ind)
    return out


def to_scored(individuals: Sequence[_Individual]) -> list[Scored]:
    return [(tuple(ind), tuple(ind.fitness.values)) for ind in individuals]


def _rank_and_crowd(population: list[_Individual]) -> dict[int, int]:
    """Front rank per individual (by id) and crowding distances, computed on ``population``
    alone, so a reloaded population gets the same values as a live one."""
    ranks = {}
    for rank, front in enumerate(tools.sortNondominated(population, len(population))):
        tools.emo.assignCrowdingDist(front)
        for ind in front:
            ranks[id(ind)] = rank
    return ranks


def _tournament(population: list[_Individual], ranks: dict[int, int], count: int,
                rng: random.Random) -> list[_Individual]:
    """Binary tournaments: lower front rank wins, then larger crowding distance, then a coin."""
    chosen = []
    for _ in range(count):
        a, b = rng.sample(population, 2)
        key_a = (ranks[id(a)], -a.fitness.crowding_dist)
        key_b = (ranks[id(b)], -b.fitness.crowding_dist)
        chosen.append(a if key_a < key_b or (key_a == key_b and rng.random() < 0.5) else b)
    return chosen


def make_offspring(parents: list[_Individual], settings: SearchSettings,
                   rng: random.Random, shared: Shared = ()) -> list[Genome]:
    """Tournament-selected pairs, crossover with crossover_prob, each child mutated with
    mutation_prob (a child equal to a parent is always mutated, so no clone is evaluated as new);
    children tied to ``shared``."""
    ranks = _rank_and_crowd(parents)
    mates = _tournament(parents, ranks, settings.offspring + settings.offspring % 2, rng)
    children: list[Genome] = []
    for first, second in zip(mates[::2], mates[1::2]):
        a, b = tuple(first), tuple(second)
        if rng.random() < settings.crossover_prob:
            a, b = (tie(child, shared) for child in crossover(a, b, rng))
        for child, parent_pair in ((a, (first, second)), (b, (first, second))):
            if rng.random() < settings.mutation_prob or child in map(tuple, parent_pair):
                child = mutate(child, settings.bits, rng, shared)
            children.append(child)
    return children[:settings.offspring]


def pareto_front(scored: Sequence[Scored], objectives: Sequence[Objective]) -> list[Scored]:
    """The non-dominated members (first front) of scored genomes, duplicates removed."""
    unique = list(dict(scored).items())
    individuals = to_individuals(unique, fitness_class(objectives))
    return to_scored(tools.sortNondominated(individuals, len(individuals),
                                            first_front_only=True)[0])


def nsga2(n_layers: int, objectives: Sequence[Objective], evaluate: Evaluator,
          settings: SearchSettings, *, seed: int = 0, store: Store | None = None, run: str = "",
          resume: bool = False, seeds: Sequence[Genome] = (), shared: Shared = ()) -> SearchResult:
    """Run (or continue) NSGA-II; returns the final population and its Pareto front.

    With ``store``, every finished generation is journaled under ``run``; with ``resume`` the
    search starts after the last journaled generation instead of from scratch. ``seeds`` join
    the uniform ones in the initial population (`initial_population`); the layers in a group
    of ``shared`` always carry one pair.
    """
    fitness = fitness_class(objectives)
    history = store.generations(run) if store is not None and resume else []
    if store is not None and not resume:
        store.drop_generations(run)
    if history:
        start = history[-1].generation
        population = to_individuals(history[-1].population, fitness)
    else:
        start = 0
        genomes = promoted(evaluate, initial_population(n_layers, settings, seed, seeds, shared),
                           0)
        population = to_individuals(list(zip(genomes, evaluate(genomes, 0))), fitness)
        _journal(store, run, 0, population)
    for generation in range(start + 1, settings.generations + 1):
        if evaluate.phase(generation) != evaluate.phase(generation - 1):
            genomes = [tuple(ind) for ind in population]
            population = to_individuals(list(zip(genomes, evaluate(genomes, generation))), fitness)
        rng = _rng(seed, generation)
        children = promoted(evaluate, make_offspring(population, settings, rng, shared),
                            generation)
        scored = to_individuals(list(zip(children, evaluate(children, generation))), fitness) \
            if children else []
        population = tools.selNSGA2(population + scored, settings.parents)
        _journal(store, run, generation, population)
    final = to_scored(population)
    return SearchResult(tuple(final), tuple(pareto_front(final, objectives)),
                        max(settings.generations, start), start if history else None)


def _journal(store: Store | None, run: str, generation: int,
             population: list[_Individual]) -> None:
    if store is not None:
        store.put_generation(GenerationRecord(run, generation, tuple(to_scored(population))))
