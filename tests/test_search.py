"""The searches over per-layer bit widths (the paper's NSGA-II and the guided search):
operators, seeding, fronts, the surrogate, determinism and resume."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from wrapper.explore.guided import GuidedSettings, RidgeSurrogate, draw_pool, features, guided
from wrapper.explore.nsga2 import (
    Genome,
    Objective,
    SearchSettings,
    crossover,
    initial_population,
    mutate,
    nsga2,
    pareto_front,
    protected_genomes,
    shared_layers,
    tie,
)
from wrapper.explore.selection import hypervolume
from wrapper.explore.store import Store

N_LAYERS = 6
BITS = (2, 3, 4, 5, 6, 7, 8)
# Per-layer "sizes": a real small trade-off like weights memory vs quantization error.
SIZES = (3, 50, 7, 120, 12, 40)


def _scores(genome: Genome) -> tuple[float, float, float]:
    """(accuracy-like, memory-like, activation-like): accuracy falls as bits shrink."""
    error = sum(2.0 ** -w * s + 2.0 ** -a for (a, w), s in zip(genome, SIZES))
    memory = float(sum(w * s for (_, w), s in zip(genome, SIZES)))
    activations = float(max(a for a, _ in genome) * 10 + sum(a for a, _ in genome))
    return 1.0 - error / 40.0, memory, activations


class CountingEvaluator:
    """Real objective with a cache, counting how often each genome was really computed."""

    def __init__(self, cache: dict[Genome, tuple[float, ...]] | None = None,
                 fail_at: int | None = None, proxy_until: int = 0) -> None:
        self.cache = {} if cache is None else cache
        self.computed: list[Genome] = []
        self.fail_at = fail_at
        self.proxy_until = proxy_until

    def __call__(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        out = []
        for genome in genomes:
            key = (genome, self.phase(generation))
            if key not in self.cache:
                if generation == self.fail_at and len(out) == 2:
                    raise KeyboardInterrupt("killed mid-generation")
                self.computed.append(genome)
                scores = _scores(genome)
                if self.phase(generation) == "proxy":
                    scores = (round(scores[0], 1),) + scores[1:]
                self.cache[key] = scores
            out.append(self.cache[key])
        return out

    def phase(self, generation: int) -> str:
        return "proxy" if generation < self.proxy_until else "full"

    def costs(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        """The cheap objectives exactly, accuracy unknown (NaN): never counted as computed."""
        return [(math.nan, *_scores(genome)[1:]) for genome in genomes]


OBJECTIVES = (Objective("accuracy", maximize=True), Objective("memory"), Objective("act"))


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    signs = [1 if o.maximize else -1 for o in OBJECTIVES]
    wa = [s * v for s, v in zip(signs, a)]
    wb = [s * v for s, v in zip(signs, b)]
    return all(x >= y for x, y in zip(wa, wb)) and any(x > y for x, y in zip(wa, wb))


def test_crossover_takes_each_layer_pair_from_a_parent_and_never_aliases() -> None:
    rng = random.Random(1)
    first = tuple((2, 3) for _ in range(N_LAYERS))
    second = tuple((7, 8) for _ in range(N_LAYERS))
    a, b = crossover(first, second, rng)
    assert first == tuple((2, 3) for _ in range(N_LAYERS))  # parents untouched
    assert {a[i] for i in range(N_LAYERS)} <= {(2, 3), (7, 8)}
    assert all({a[i], b[i]} == {(2, 3), (7, 8)} for i in range(N_LAYERS))
    assert a is not first and a is not second
    mixed = [crossover(first, second, random.Random(s))[0] for s in range(20)]
    assert any(len(set(m)) == 2 for m in mixed)  # uniform per layer, not all-or-nothing


def test_mutation_redraws_exactly_one_value_within_the_bit_set() -> None:
    genome = tuple((4, 4) for _ in range(N_LAYERS))
    for seed in range(50):
        child = mutate(genome, BITS, random.Random(seed))
        diffs = [(i, j) for i in range(N_LAYERS) for j in range(2) if child[i][j] != genome[i][j]]
        assert len(diffs) == 1
        i, j = diffs[0]
        assert child[i][j] in BITS
    assert genome == tuple((4, 4) for _ in range(N_LAYERS))


def test_initial_population_contains_every_uniform_configuration() -> None:
    population = initial_population(N_LAYERS, SearchSettings(parents=10))
    for b in BITS:
        assert tuple((b, b) for _ in range(N_LAYERS)) in population
    assert len(population) == 10
    small = initial_population(N_LAYERS, SearchSettings(parents=3))
    assert {g[0] for g in small} == {(2, 2), (5, 5), (8, 8)}


def test_protected_seeds_keep_the_most_sensitive_layers_wide() -> None:
    ranking = [5, 0, 7, 3, 1, 2, 4, 6]  # layer 5 most sensitive
    seeds = protected_genomes((2, 4, 8), ranking, 3)
    assert seeds == [
        tuple((8, 8) if i in {5, 0} else (2, 2) for i in range(8)),  # a quarter kept at 8
        tuple((8, 8) if i in {5, 0, 7, 3} else (2, 2) for i in range(8)),  # half kept
        tuple((8, 8) if i in {5, 0} else (4, 4) for i in range(8)),  # the next width up
    ]
    assert protected_genomes((2, 8), ranking, 10) == seeds[:2]  # never more than exist


def test_extra_seeds_follow_the_uniform_ones_and_random_genomes_fill_the_rest() -> None:
    extra = protected_genomes(BITS, list(range(N_LAYERS)), 2)
    population = initial_population(N_LAYERS, SearchSettings(parents=10), extra=extra)
    uniform = [tuple((b, b) for _ in range(N_LAYERS)) for b in sorted(BITS)]
    assert population[:len(uniform)] == uniform
    assert population[len(uniform):len(uniform) + 2] == extra
    assert len(population) == 10
    assert initial_population(N_LAYERS, SearchSettings(parents=len(BITS)), extra=extra) == uniform


def test_front_is_non_dominated_and_improves_on_the_seeds() -> None:
    settings = SearchSettings(parents=10, offspring=10, generations=8)
    result = nsga2(N_LAYERS, OBJECTIVES, CountingEvaluator(), settings, seed=3)
    front = [values for _, values in result.front]
    assert front
    assert not any(_dominates(a, b) for a in front for b in front)
    for genome, values in result.population:  # nothing in the population dominates the front
        assert not any(_dominates(values, f) for f in front)
    assert len(result.population) == settings.parents
    assert any(len(set(g)) > 1 for g, _ in result.front)  # found mixed precision solutions
    assert pareto_front(list(result.population), OBJECTIVES) == list(result.front)


def test_same_seed_gives_the_same_run_another_seed_a_different_one() -> None:
    def computed(seed: int) -> tuple[list[Genome], tuple]:
        evaluator = CountingEvaluator()
        result = nsga2(N_LAYERS, OBJECTIVES, evaluator,
                       SearchSettings(parents=8, offspring=8, generations=5), seed=seed)
        return evaluator.computed, result.population

    assert computed(11) == computed(11)
    assert computed(11)[0] != computed(12)[0]


@pytest.mark.parametrize("search", ["nsga2", "guided"])
def test_interrupted_run_resumes_to_the_same_front_without_recomputing(tmp_path: Path,
                                                                       search: str) -> None:
    run, settings = {"nsga2": (nsga2, SearchSettings(parents=8, offspring=8, generations=6)),
                     "guided": (guided, GUIDED)}[search]
    reference = run(N_LAYERS, OBJECTIVES, CountingEvaluator(), settings, seed=5)
    cache: dict = {}
    with Store(tmp_path / "s.sqlite") as store:
        first = CountingEvaluator(cache, fail_at=4)
        with pytest.raises(KeyboardInterrupt):
            run(N_LAYERS, OBJECTIVES, first, settings, seed=5, store=store, run="r")
        assert [g.generation for g in store.generations("r")] == [0, 1, 2, 3]
        second = CountingEvaluator(cache)
        resumed = run(N_LAYERS, OBJECTIVES, second, settings, seed=5, store=store, run="r",
                      resume=True)
    assert resumed.resumed_from == 3
    assert resumed.population == reference.population
    assert resumed.front == reference.front
    assert not set(second.computed) & set(first.computed)  # nothing computed twice


def test_a_proxy_phase_rescores_the_parents_with_the_real_objective() -> None:
    settings = SearchSettings(parents=6, offspring=6, generations=4)
    evaluator = CountingEvaluator(proxy_until=2)
    result = nsga2(N_LAYERS, OBJECTIVES, evaluator, settings, seed=2)
    for genome, values in result.population:
        assert values == _scores(genome)  # final population scored by the full objective


def test_two_objectives_work_as_well_as_three() -> None:
    class TwoObjectives(CountingEvaluator):
        def __call__(self, genomes, generation):
            return [values[:2] for values in super().__call__(genomes, generation)]

    result = nsga2(N_LAYERS, OBJECTIVES[:2], TwoObjectives(),
                   SearchSettings(parents=6, offspring=6, generations=3))
    assert all(len(values) == 2 for _, values in result.front)


def _random_genomes(count: int, seed: int) -> list[Genome]:
    rng = random.Random(seed)
    return [tuple((rng.choice(BITS), rng.choice(BITS)) for _ in range(N_LAYERS))
            for _ in range(count)]


def test_the_surrogate_learns_which_layers_are_sensitive() -> None:
    train, test = _random_genomes(40, 1), _random_genomes(40, 2)
    model = RidgeSurrogate(features(train), np.array([_scores(g)[0] for g in train]))
    predicted = model.predict(features(test))
    actual = [_scores(g)[0] for g in test]
    correlation = np.corrcoef(predicted, actual)[0, 1]
    assert correlation > 0.95
    # Layer 3 (size 120) is the sensitive one: its weight bits matter most.
    weights = model.weights.reshape(N_LAYERS, 2)[:, 1]
    assert int(weights.argmin()) == 3


GUIDED = GuidedSettings(parents=8, offspring=8, generations=6, pool=60)


def _curved(genome: Genome) -> tuple[float, float, float]:
    """`_scores` with an accuracy the surrogate cannot fit exactly: it saturates (exp of the
    error) and a layer's activation noise is amplified by the next layer's weight noise."""
    error = sum(2.0 ** -w * s + 2.0 ** -a for (a, w), s in zip(genome, SIZES))
    error += sum(8 * 2.0 ** -genome[i][0] * 2.0 ** -genome[i + 1][1] * SIZES[i + 1] ** 0.5
                 for i in range(len(genome) - 1))
    return (math.exp(-error / 10), *_scores(genome)[1:])


class CurvedEvaluator(CountingEvaluator):
    """The counting evaluator on `_curved`."""

    def __call__(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        for genome in genomes:
            if genome not in self.cache:
                self.computed.append(genome)
                self.cache[genome] = _curved(genome)
        return [self.cache[g] for g in genomes]

    def costs(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        return [(math.nan, *_curved(genome)[1:]) for genome in genomes]


def _hypervolume(genomes: Sequence[Genome]) -> float:
    """Hypervolume of everything evaluated (accuracy, memory, activations) below a fixed
    reference point just past the worst possible values."""
    vectors = np.array([[-a, m, act] for a, m, act in map(_curved, genomes)])
    return hypervolume(vectors, np.array([0.0, 8 * sum(SIZES) + 1, 8 * 10 + 8 * N_LAYERS + 1]))


def test_the_curved_objective_is_not_linear_in_the_surrogate_features() -> None:
    train = _random_genomes(200, 1)
    y = np.array([_curved(g)[0] for g in train])
    model = RidgeSurrogate(features(train), y)
    residual = y - model.predict(features(train))
    assert np.sqrt(np.mean(residual ** 2)) > 0.05 * y.std()


@pytest.mark.parametrize("seed", range(10))
def test_guided_search_spends_evaluations_only_on_new_children_and_beats_nsga2(
        seed: int) -> None:
    evaluator = CurvedEvaluator()
    result = guided(N_LAYERS, OBJECTIVES, evaluator, GUIDED, seed=seed)
    assert len(evaluator.computed) == len(set(evaluator.computed))  # never the same twice
    assert len(evaluator.computed) == GUIDED.parents + GUIDED.generations * GUIDED.offspring
    front = [values for _, values in result.front]
    assert not any(_dominates(a, b) for a in front for b in front)
    paper = CurvedEvaluator()
    nsga2(N_LAYERS, OBJECTIVES, paper, GUIDED, seed=seed)
    # With no more evaluations, the guided search covers at least NSGA-II's hypervolume.
    assert len(paper.computed) <= len(evaluator.computed)
    assert _hypervolume(evaluator.computed) >= _hypervolume(paper.computed)


def test_calls_of_one_module_always_share_their_pair():
    """A module called at layers 1, 3 and 5 (and another at 0 and 4): every genome the searches
    make ties them, and a mutation always changes the genome it mutates."""
    shared = shared_layers(["a", "conv", "x", "conv", "a", "conv"])
    assert shared == ((0, 4), (1, 3, 5))

    def tied(genome: Genome) -> bool:
        return all(len({genome[i] for i in group}) == 1 for group in shared)

    settings = GuidedSettings(bits=BITS, parents=8, offspring=8, pool=40)
    objectives = [Objective("accuracy", maximize=True), Objective("energy")]
    for seed in range(20):
        rng = random.Random(seed)
        population = initial_population(6, settings, seed, [tuple(
            (rng.choice(BITS), rng.choice(BITS)) for _ in range(6))], shared)
        assert all(tied(g) for g in population)
        for genome in population:
            child = mutate(genome, BITS, rng, shared)
            assert tied(child) and child != genome
        scored = [(g, (rng.random(), rng.random())) for g in population]
        pool = draw_pool(scored, objectives, settings, rng, set(), shared)
        assert pool and all(tied(g) for g in pool)
    assert tie(((2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7)), shared) == \
        ((2, 2), (3, 3), (4, 4), (3, 3), (2, 2), (3, 3))
