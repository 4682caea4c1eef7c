"""The built-in mapper: search the mapspace of one (arch, problem) for the best mapping.

Every score is exact: candidates go to the engine's vectorized `evaluate_batch` in large
batches, so the mapper holds no cost formula of its own. Its only model is the pruning bound of
`MapSpace` (capacity with packing and fan-out; tiles only grow with factors), which never
ranks anything.

Stages, all within ``max_evaluations`` engine evaluations (``max_seconds`` is checked between
steps):

1. Factor choices of every keep combination that fit capacity and fan-out
   (`MapSpace.enumerate_factors`): all of them when they fit half the budget, else a seeded
   sample; each level gets its default loop order.
2. The ``TOP_FACTORS`` best factor choices with every loop-order combination that changes a
   count (`MapSpace.order_classes`: dominated permutations are skipped), at most
   ``ORDER_COMBOS`` each.
3. Beam local search: the ``BEAM`` best candidates not expanded yet get all their neighbours
   (one prime factor of one dimension moved between two of its free slots; another loop-order
   class at one level) evaluated, until the budget is spent or ``PATIENCE`` rounds in a row
   found nothing better.

Ties on the metric go to the secondary metric, then to the earlier candidate, so a fixed seed
gives one answer.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import MappingError
from ..spec.certificate import Certificate
from ..spec.costmodel import MapperSettings
from ..spec.ert import EnergyTable
from ..spec.mapping import Mapping
from ..spec.stats import Stats
from .batch import BatchResult, evaluate_batch
from .evaluator import MappingEvaluator
from .factors import prime_factors
from .mapspace import MapSpace

KEEP_COMBOS = 16  # keep/bypass combinations tried when the constraints leave many open
TOP_FACTORS = 64  # best factor choices whose loop orders are all tried (stage 2)
ORDER_COMBOS = 64  # loop-order combinations per factor choice at most (stage 2)
BEAM = 4  # candidates expanded per local-search round (stage 3)
PATIENCE = 8  # local-search rounds without a better best candidate before it stops


@dataclass(frozen=True)
class MapperResult:
    """The best mapping, its exact stats, and what the search did (``certificate``: what is
    proven about its optimality; set by `exact.certified_search`)."""

    mapping: Mapping
    stats: Stats
    evaluated: int
    complete: bool
    seconds: float
    certificate: Certificate | None = None


def metric_array(result: BatchResult, name: str) -> np.ndarray:
    """A mapper metric per mapping of a batch (inf where invalid mappings, so they never win)."""
    value = {"energy": result.energy_pj, "delay": result.cycles.astype(float), "edp": result.edp,
             "last_level_accesses": result.last_level_accesses.astype(float)}[name]
    return np.where(result.valid, value, np.inf)


@lru_cache(maxsize=4096)
def _primes(value: int) -> tuple[int, ...]:
    return tuple(prime_factors(value))


class Mapper:
    """Search one mapspace under one energy table (see the module docstring).

    Every evaluated candidate is stored in arrays sized by the budget: slot factors, per-level
    loop orders, keep-combination index and the two metrics.
    """

    def __init__(self, space: MapSpace, table: EnergyTable | None, settings: MapperSettings,
                 engine: MappingEvaluator | None = None) -> None:
        self.space = space
        self.table = table
        self.settings = settings
        self.engine = engine or MappingEvaluator(space.accounting)
        self.rng = np.random.default_rng(settings.seed)
        self.keeps = self._keep_combos()
        self.keep_arrays = [np.array([[ds in kept for ds in space.dataspaces] for kept in combo])
                            for combo in self.keeps]
        self.checks = [space.capacity(keep) for keep in self.keep_arrays]
        self.free = [[i for i, s in enumerate(space.slots) if d in s.free] for d in space.dims]
        budget = settings.max_evaluations
        levels, dims = len(space.level_names), len(space.dims)
        self.factors = np.ones((budget, len(space.slots), dims), dtype=np.int64)
        self.orders = np.zeros((budget, levels, dims), dtype=np.int64)
        self.keep = np.zeros(budget, dtype=np.int64)
        self.primary = np.full(budget, np.inf)
        self.secondary = np.full(budget, np.inf)
        self.count = 0
        self.seen: set[bytes] = set()
        self.start = time.perf_counter()

    def _keep_combos(self) -> list[tuple[frozenset[str], ...]]:
        combos = list(itertools.islice(itertools.product(*self.space.keep_choices),
                                       KEEP_COMBOS * 64))
        if len(combos) <= KEEP_COMBOS:
            return combos
        pick = self.rng.choice(len(combos), KEEP_COMBOS, replace=False)
        return [combos[i] for i in sorted(pick)]

    def _out_of_time(self) -> bool:
        limit = self.settings.max_seconds
        return limit is not None and time.perf_counter() - self.start > limit

    # ---- scoring ------------------------------------------------------------------------
    def _evaluate(self, keep: int, factors: np.ndarray, orders: np.ndarray,
                  stop_at: int | None = None) -> int:
        """Score the new candidates among ``factors`` (n, slots, dims) with ``orders`` ((n,)
        levels, dims) under keep combination ``keep``, in order, until ``stop_at`` candidates
        (default: the budget) are stored; returns how many were new."""
        n = len(factors)
        if n == 0:  # a keep choice whose factors fit nowhere contributes nothing
            return 0
        orders = np.broadcast_to(orders, (n,) + self.orders.shape[1:])
        room = min(stop_at or len(self.primary), len(self.primary)) - self.count
        keys = np.concatenate([factors.reshape(n, -1), orders.reshape(n, -1),
                               np.full((n, 1), keep)], axis=1)
        fresh = []
        for i, row in enumerate(keys):
            if len(fresh) >= room:
                break
            key = row.tobytes()
            if key not in self.seen:
                self.seen.add(key)
                fresh.append(i)
        if not fresh:
            return 0
        factors, orders = factors[fresh], orders[fresh]
        temporal, spatial = self.space.split_factors(factors)
        result = evaluate_batch(self.space.arch, self.space.problem, temporal, spatial, orders,
                                self.keeps[keep], self.table, accounting=self.space.accounting)
        rows = slice(self.count, self.count + len(fresh))
        self.factors[rows], self.orders[rows], self.keep[rows] = factors, orders, keep
        self.primary[rows] = metric_array(result, self.settings.metric)
        self.secondary[rows] = metric_array(result, self.settings.secondary_metric)
        self.count += len(fresh)
        return len(fresh)

    def _ranked(self) -> np.ndarray:
        """Indices of the valid candidates, best first (metric, secondary metric, age)."""
        n = self.count
        order = np.lexsort((np.arange(n), self.secondary[:n], self.primary[:n]))
        return order[np.isfinite(self.primary[order])]

    # ---- stages -------------------------------------------------------------------------
    def _initial(self) -> bool:
        """Stage 1; returns whether the factor space of every keep choice was complete."""
        share = max(1, len(self.primary) // (2 * len(self.keeps)))
        complete = True
        defaults = self.space.default_orders()
        for k, keep in enumerate(self.keep_arrays):
            rows, done = self.space.enumerate_factors(keep, limit=share, rng=self.rng)
            complete &= done
            self._evaluate(k, rows, defaults)
        return complete

    def _order_combos(self, factors: np.ndarray) -> np.ndarray:
        """(c, levels, dims) loop-order combinations with distinct effect for one factor choice
        (all of them, or a seeded sample of ``ORDER_COMBOS``)."""
        space = self.space
        classes = [space.order_classes(li, frozenset(d for j, d in enumerate(space.dims)
                                                     if factors[si, j] > 1))
                   for li, si in enumerate(space.temporal_slots)]
        sizes = [len(c) for c in classes]
        if math.prod(sizes) <= ORDER_COMBOS:
            picks = np.array(list(itertools.product(*map(range, sizes))), dtype=np.int64)
        else:
            picks = np.stack([self.rng.integers(0, s, ORDER_COMBOS) for s in sizes], axis=1)
        return np.stack([classes[li][picks[:, li]] for li in range(len(classes))], axis=1)

    def _widen_orders(self) -> None:
        """Stage 2, within three quarters of the budget."""
        stop = len(self.primary) * 3 // 4
        for i in self._ranked()[:TOP_FACTORS]:
            if self.count >= stop or self._out_of_time():
                return
            combos = self._order_combos(self.factors[i])
            self._evaluate(int(self.keep[i]), np.repeat(self.factors[i][None], len(combos), axis=0),
                           combos, stop)

    def _neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Factor moves (one prime of one dimension between two free slots, pruned on capacity,
        fan-out and X/Y split) and loop-order moves (another class at one level) of candidate
        ``i``, as (factors, orders) arrays."""
        space = self.space
        base, order = self.factors[i], self.orders[i]
        moves = [(a, b, j, p) for j, free in enumerate(self.free) for a in free
                 for p in _primes(int(base[a, j])) for b in free if b != a]
        factors = np.repeat(base[None], len(moves), axis=0)
        if moves:
            a, b, j, p = np.array(moves, dtype=np.int64).T
            rows = np.arange(len(moves))
            factors[rows, a, j] //= p
            factors[rows, b, j] *= p
            keep = int(self.keep[i])
            factors = factors[self.checks[keep].fits(factors) & space.fanout_ok(factors)]
            factors = factors[space.splits_ok(factors)]
        orders = [np.repeat(order[None], len(factors), axis=0)]
        for li, si in enumerate(space.temporal_slots):
            nonunit = frozenset(d for j, d in enumerate(space.dims) if base[si, j] > 1)
            alternatives = space.order_classes(li, nonunit)
            changed = np.repeat(order[None], len(alternatives), axis=0)
            changed[:, li] = alternatives
            orders.append(changed)
            factors = np.concatenate([factors, np.repeat(base[None], len(alternatives), axis=0)])
        return factors, np.concatenate(orders)

    def _local_search(self) -> None:
        """Stage 3: expand the best unexpanded candidates until the budget is spent or
        ``PATIENCE`` rounds in a row have not improved the best candidate."""
        expanded = np.zeros(len(self.primary), dtype=bool)
        stale = 0
        while self.count < len(self.primary) and stale < PATIENCE and not self._out_of_time():
            ranked = self._ranked()
            beam = ranked[~expanded[ranked]][:BEAM]
            if not len(beam):
                return
            expanded[beam] = True
            for i in beam:
                factors, orders = self._neighbours(int(i))
                self._evaluate(int(self.keep[i]), factors, orders)
            stale = 0 if self._ranked()[0] != ranked[0] else stale + 1

    def run(self) -> MapperResult:
        complete = self._initial()
        self._widen_orders()
        self._local_search()
        ranked = self._ranked()
        if not len(ranked):
            raise MappingError(f"no mapping satisfies the constraints: none found for "
                               f"{self.space.problem.shape.name} on {self.space.arch.name} "
                               f"({self.count} candidates evaluated)", file=self.space.arch.source,
                               field="constraints", fix="relax the constraints (minimums, fixed "
                               "factors, keep lists) or raise the budget; check that the tiles "
                               "fit the innermost buffers")
        best = int(ranked[0])
        mapping = self.space.to_mapping(self.factors[best], self.orders[best],
                                        self.keeps[int(self.keep[best])])
        stats = self.engine.evaluate(self.space.arch, self.space.problem, mapping, self.table)
        return MapperResult(mapping, stats, self.count, complete, time.perf_counter() - self.start)


def sampling_search(space: MapSpace, table: EnergyTable | None, settings: MapperSettings,
                    engine: MappingEvaluator | None = None) -> MapperResult:
    """The best mapping of ``space`` for ``settings.metric`` (see the module docstring)."""
    return Mapper(space, table, settings, engine).run()
