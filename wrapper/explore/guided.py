"""Surrogate-guided NSGA-II: spends expensive evaluations (QAT runs) only on promising children.

In the main job the hardware objectives are exact and cheap (cached per packing signature), while
every accuracy is a QAT run. The paper's NSGA-II trains every child it draws, blind to what
earlier runs taught. This search keeps NSGA-II's population, seeds and survival, but each
generation it

1. draws a large pool of children (the same tournament and crossover, then up to
   ``pool_mutations`` one-gene mutations each, so children leave the uniform seeds faster);
2. prices every pool child's hardware exactly (``CostEvaluator.costs``: no QAT);
3. predicts the objectives the cheap pass left unknown (accuracy) with a ridge regression on
   per-layer quantization-noise features, fitted on every candidate evaluated so far (the
   archive), regularization chosen by exact leave-one-out error;
4. ranks the pool together with the archive's real values by non-dominated front and crowding,
   and evaluates for real only the ``offspring`` best children: the same number of QAT runs per
   generation as NSGA-II, aimed where the front can still improve.

Determinism and resume: as in NSGA-II, every generation draws from its own generator seeded with
(seed, generation); the archive (the surrogate's training data) is journaled per generation
beside the population, before it, so a run killed anywhere resumes from its last finished
generation with the same archive and the same draws, and ends on the same front.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Protocol, Sequence

import numpy as np
from deap import tools

from ..spec.hashing import content_hash
from ..spec.settings import setting
from .nsga2 import (
    Evaluator,
    Genome,
    Objective,
    Scored,
    SearchResult,
    SearchSettings,
    Shared,
    fitness_class,
    initial_population,
    make_offspring,
    mutate,
    pareto_front,
    promoted,
    to_individuals,
    to_scored,
)
from .store import GenerationRecord, Store

ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class GuidedSettings(SearchSettings):
    """NSGA-II's settings plus the size of the predicted pool and how far children move."""

    pool: int = setting(200, minimum=1, maximum=100_000,
                        help="children priced and predicted per generation (guided search)")
    pool_mutations: int = setting(4, minimum=1, maximum=1000,
                                  help="most one-gene mutations per pool child (guided search)")


class CostEvaluator(Evaluator, Protocol):
    """An Evaluator that can also price genomes cheaply: the exact values of the objectives that
    need no training, NaN for the others (accuracy)."""

    def costs(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        ...


def _rng(seed: int, generation: int) -> random.Random:
    return random.Random(int(content_hash("guided", seed, generation)[:16], 16))


def features(genomes: Sequence[Genome], weights: Sequence[float] | None = None) -> np.ndarray:
    """Per layer and operand the quantization step relative to 2 bits, 2**(2 - b): large for
    the narrow widths that cost accuracy, near zero for wide ones, additive over layers; each
    layer's pair times its ``weights`` entry when given (a prior on how much it matters)."""
    bits = np.asarray(genomes, dtype=float).reshape(len(genomes), -1)
    steps = np.exp2(2.0 - bits)
    return steps if weights is None else steps * np.repeat(np.asarray(weights, float), 2)


def probe_weights(probes: Sequence[float]) -> list[float]:
    """Per-layer feature weights from the sensitivity probes' accuracies: the accuracy a
    layer's probe lost against the best probe, plus a floor so that no layer is ignored,
    scaled to mean 1 (the ridge penalty then acts alike with and without the prior)."""
    drops = np.max(probes) - np.asarray(probes, dtype=float)
    floor = max(float(np.mean(drops)), 1e-3) / 4.0
    weights = drops + floor
    return [float(w) for w in weights / weights.mean()]


class RidgeSurrogate:
    """Linear ridge regression with its penalty chosen by exact leave-one-out error.

    With only the uniform seeds known, all layers look alike and the fit is "accuracy falls with
    total quantization noise"; each new evaluation lets it tell sensitive layers from robust ones.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_mean = x.mean(axis=0)
        self.y_mean = float(y.mean())
        xc, yc = x - self.x_mean, y - self.y_mean
        best = None
        for alpha in ALPHAS:
            weights, hat = self._fit(xc, yc, alpha)
            loo = float(np.mean(((yc - xc @ weights) / np.maximum(1.0 - hat, 1e-9)) ** 2))
            if best is None or loo < best[0]:
                best = (loo, weights)
        assert best is not None
        self.weights = best[1]

    @staticmethod
    def _fit(xc: np.ndarray, yc: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Weights and the hat matrix diagonal (the leave-one-out correction), computed in the
        sample space, which is small (tens of evaluations) next to 2 x layers features."""
        gram = xc @ xc.T
        inverse = np.linalg.inv(gram + alpha * np.eye(len(gram)))
        hat = np.diag(gram @ inverse) + 1.0 / len(gram)
        return xc.T @ (inverse @ yc), hat

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.y_mean + (x - self.x_mean) @ self.weights


def predict_unknown(archive: Sequence[Scored], pool: Sequence[Genome],
                    costs: Sequence[tuple[float, ...]],
                    weights: Sequence[float] | None = None) -> list[tuple[float, ...]]:
    """The pool's objective vectors: exact costs, NaN slots filled by surrogates fitted on the
    archive's finite values of that objective (`features` with the per-layer ``weights``)."""
    filled = [list(values) for values in costs]
    unknown = [i for i in range(len(costs[0])) if any(math.isnan(v[i]) for v in costs)]
    x_pool = features(pool, weights)
    for index in unknown:
        known = [(g, v[index]) for g, v in archive if math.isfinite(v[index])]
        if len(known) < 2:
            predictions = np.zeros(len(pool))
        else:
            model = RidgeSurrogate(features([g for g, _ in known], weights),
                                   np.array([v for _, v in known]))
            predictions = model.predict(x_pool)
        for row, value in zip(filled, predictions):
            if math.isnan(row[index]):
                row[index] = float(value)
    return [tuple(row) for row in filled]


def draw_pool(population: Sequence[Scored], objectives: Sequence[Objective],
              settings: GuidedSettings, rng: random.Random, exclude: set[Genome],
              shared: Shared = ()) -> list[Genome]:
    """Up to ``settings.pool`` distinct new children: NSGA-II variation, then extra one-gene
    mutations (1 to pool_mutations) so children move further per generation."""
    parents = to_individuals(population, fitness_class(objectives))
    children = make_offspring(parents, replace(settings, offspring=settings.pool), rng, shared)
    pool: dict[Genome, None] = {}
    for child in children:
        for _ in range(rng.randint(1, settings.pool_mutations) - 1):
            child = mutate(child, settings.bits, rng, shared)
        if child not in exclude:
            pool[child] = None
    return list(pool)


def choose(archive: Sequence[Scored], pool: Sequence[Genome],
           predicted: Sequence[tuple[float, ...]], objectives: Sequence[Objective],
           count: int) -> list[Genome]:
    """The ``count`` pool members ranked best among archive plus pool: lowest non-dominated
    front first, then the largest crowding distance (spread along the front), then pool order."""
    fitness = fitness_class(objectives)
    evaluated = [(g, v) for g, v in archive if all(math.isfinite(x) for x in v)]
    known = to_individuals(pareto_front(evaluated, objectives), fitness) if evaluated else []
    candidates = to_individuals(list(zip(pool, predicted)), fitness)
    rank: dict[int, int] = {}
    for level, front in enumerate(tools.sortNondominated(known + candidates,
                                                         len(known) + len(candidates))):
        tools.emo.assignCrowdingDist(front)
        for ind in front:
            rank[id(ind)] = level
    order = sorted(range(len(candidates)),
                   key=lambda i: (rank[id(candidates[i])],
                                  -candidates[i].fitness.crowding_dist, i))
    return [tuple(candidates[i]) for i in order[:count]]


def guided(n_layers: int, objectives: Sequence[Objective], evaluate: CostEvaluator,
           settings: GuidedSettings, *, seed: int = 0, store: Store | None = None, run: str = "",
           resume: bool = False, seeds: Sequence[Genome] = (),
           layer_weights: Sequence[float] | None = None, shared: Shared = ()) -> SearchResult:
    """Run (or continue) the surrogate-guided search; same contract as `nsga2.nsga2`, plus
    the surrogate's per-layer feature weights (`probe_weights`).

    With a screening evaluator (`nsga2.promoted`), a candidate the screen drops joins the
    archive with its exact costs and accuracy NaN: never drawn again, never in the population,
    the front or the surrogate's fit."""
    fitness = fitness_class(objectives)
    archive_run = f"{run}:archive"
    history = store.generations(run) if store is not None and resume else []
    if store is not None and not resume:
        store.drop_generations(run)
        store.drop_generations(archive_run)
    if store is not None and history:
        start = history[-1].generation
        population = list(history[-1].population)
        archive = list(next(r.population for r in store.generations(archive_run)
                            if r.generation == start))
    else:
        start = 0
        drawn = initial_population(n_layers, settings, seed, seeds, shared)
        genomes = promoted(evaluate, drawn, 0)
        population = list(zip(genomes, evaluate(genomes, 0)))
        archive = population + _dropped(evaluate, drawn, genomes, 0)
        _journal(store, run, 0, population, archive)
    for generation in range(start + 1, settings.generations + 1):
        if evaluate.phase(generation) != evaluate.phase(generation - 1):
            genomes = [g for g, _ in population]
            population = list(zip(genomes, evaluate(genomes, generation)))
            archive = list(population)
        rng = _rng(seed, generation)
        pool = draw_pool(population, objectives, settings, rng, {g for g, _ in archive}, shared)
        children = []
        if pool:
            predicted = predict_unknown(archive, pool, evaluate.costs(pool, generation),
                                        layer_weights)
            children = choose(archive, pool, predicted, objectives, settings.offspring)
        full = promoted(evaluate, children, generation)
        scored = list(zip(full, evaluate(full, generation))) if full else []
        archive += scored + _dropped(evaluate, children, full, generation)
        survivors = tools.selNSGA2(to_individuals(population + scored, fitness),
                                   settings.parents)
        population = to_scored(survivors)
        _journal(store, run, generation, population, archive)
    return SearchResult(tuple(population), tuple(pareto_front(population, objectives)),
                        max(settings.generations, start), start if history else None)


def _dropped(evaluate: CostEvaluator, drawn: Sequence[Genome], kept: Sequence[Genome],
             generation: int) -> list[Scored]:
    """The screened-out genomes with their exact costs (accuracy NaN)."""
    dropped = [g for g in drawn if g not in set(kept)]
    return list(zip(dropped, evaluate.costs(dropped, generation))) if dropped else []


def _journal(store: Store | None, run: str, generation: int, population: Sequence[Scored],
             archive: Sequence[Scored]) -> None:
    """Archive first: a population record never exists without the archive it was drawn with."""
    if store is not None:
        store.put_generation(GenerationRecord(f"{run}:archive", generation, tuple(archive)))
        store.put_generation(GenerationRecord(run, generation, tuple(population)))
