"""The built-in mapper: search the mapspace of one (arch, problem) for the best mapping.

Two stages, because exact evaluation is per mapping and the mapspace is large:

1. Screening (`Screen`, vectorized numpy): closed-form estimates of the engine's counts (tile
   sizes, fills, multicast, packing, vector accesses, energy from the same table, bandwidth-
   limited cycles). It equals the engine wherever no sliding-window reuse occurs and otherwise
   over-estimates Inputs fills, so it only ranks candidates.
2. Exact evaluation (`BuiltinEngine.evaluate`) of the best screened candidates, then a local
   search (move one prime factor of one dimension between two tiling levels, change one level's
   loop order) whose neighbours are screened and whose best ones are evaluated exactly.

The factor space is enumerated with capacity (with packing) and fan-out pruning
(`MapSpace.enumerate_factors`): completely when it fits the budget, else as a seeded uniform
sample. Loop orders are only tried when they change a count (`MapSpace.order_classes`: per
dataspace the run of irrelevant loops inside the innermost relevant one). Budget:
``max_evaluations`` screened candidates, of which at most ``max(32, max_evaluations // 100)``
are evaluated exactly; ``max_seconds`` stops the search between steps. Ties on the metric are
broken by the secondary metric, then by enumeration order, so a fixed seed gives one answer.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from ..costmodel import MapperSettings, metric_value
from ..errors import MappingError
from ..ert import EnergyTable, compute_energy, storage_energies
from ..mapping import Mapping
from ..stats import Stats
from .builtin import BuiltinEngine, utilized_clusters
from .mapspace import MapSpace, prime_factors

EXACT_SHARE = 100  # one exact evaluation per this many screened candidates
MIN_EXACT = 32
KEEP_COMBOS = 16  # keep/bypass combinations tried when the constraints leave many open
ORDER_COMBOS = 64  # loop-order choices screened per factor choice


@dataclass(frozen=True)
class Estimate:
    """Screening results per candidate (invalid ones: ``valid`` False, costs +inf)."""

    valid: np.ndarray
    energy_pj: np.ndarray
    cycles: np.ndarray
    last_level_accesses: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """The mapper metric per candidate (inf for invalid ones)."""
        value = {"energy": self.energy_pj, "delay": self.cycles.astype(float),
                 "edp": self.energy_pj * self.cycles,
                 "last_level_accesses": self.last_level_accesses.astype(float)}[name]
        return np.where(self.valid, value, np.inf)


class Screen:
    """Closed-form cost estimate for one mapspace and energy table."""

    def __init__(self, space: MapSpace, table: EnergyTable | None) -> None:
        self.space = space
        levels = [space.arch.level(name) for name in space.level_names]
        self.levels = levels
        energies = [storage_energies(level, table) for level in levels]
        self.read_pj = np.array([e.read for e in energies])
        self.write_pj = np.array([e.write for e in energies])
        self.mac_energy = space.problem.macs * compute_energy(space.arch.arithmetic, table)
        self.k = np.maximum(np.array(space.packing, dtype=np.int64), 1)
        dims = space.dims
        self.relevant = np.array([[d in space.problem.dataspace(ds).dims for d in dims]
                                  for ds in space.dataspaces], dtype=bool)
        self.read_write = [space.problem.dataspace(ds).read_write for ds in space.dataspaces]
        self.sliding = [j for j, ranks in enumerate(space._projection) if any(len(r) > 1 for r in ranks)]

    # ---- loop structure -------------------------------------------------------------------
    def _split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Temporal and spatial factors per storage level: (n, levels, dims) each."""
        n, _, d = rows.shape
        temporal = np.ones((n, len(self.levels), d), dtype=np.int64)
        spatial = np.ones_like(temporal)
        for i, slot in enumerate(self.space.slots):
            (spatial if slot.is_spatial else temporal)[:, slot.level_index, :] = rows[:, i, :]
        return temporal, spatial

    def _run_products(self, temporal: np.ndarray, orders: Sequence[int]) -> np.ndarray:
        """Per (row, level, dataspace): product of the irrelevant loops directly above the
        level's tile, before the first relevant loop (the tile stays put across them)."""
        n, n_levels, _ = temporal.shape
        sequence = self._sequence(orders)
        out = np.ones((n, n_levels, len(self.space.dataspaces)), dtype=np.int64)
        for level in range(n_levels):
            for j, relevant in enumerate(self.relevant):
                alive = np.ones(n, dtype=bool)
                prod = np.ones(n, dtype=np.int64)
                for lv, dim in sequence:
                    if lv <= level:
                        continue
                    size = temporal[:, lv, dim]
                    if relevant[dim]:
                        alive &= size == 1
                    else:
                        prod *= np.where(alive, size, 1)
                out[:, level, j] = prod
        return out

    def _halo_saving(self, temporal: np.ndarray, spatial: np.ndarray, bounds: np.ndarray,
                     level: int, j: int, orders: Sequence[int], full: np.ndarray,
                     above: np.ndarray) -> np.ndarray:
        """Fills saved by sliding-window reuse along the innermost loop above ``level``.

        When that loop moves the tile along a rank that sums two dimensions by less than the
        tile's extent, each of its steps fetches only the new slice (the engine's partial delta);
        every other step refetches the tile, which keeps the screen an upper bound.
        """
        n = temporal.shape[0]
        found = np.zeros(n, dtype=bool)
        saving = np.zeros(n, dtype=np.int64)
        for lv, dim in self._sequence(orders):
            if lv <= level:
                continue
            size = temporal[:, lv, dim]
            first = ~found & (size > 1)
            found |= size > 1
            rank = next((r for r in self.space._projection[j] if any(d == dim for d, _ in r)), None)
            if rank is None or len(rank) < 2 or not first.any():
                continue
            coef = next(c for d, c in rank if d == dim)
            step = (bounds[:, lv - 1, dim] if lv > 0 else 1) * spatial[:, lv, dim]
            extent = np.ones(n, dtype=np.int64)
            for d, c in rank:
                extent = extent + c * (bounds[:, level, d] - 1)
            move = coef * step
            slide = first & (move < extent)
            partial = full // extent * move
            saving = np.where(slide, (size - 1) * (above // np.maximum(size, 1)) * (full - partial),
                              saving)
        return saving

    def _sequence(self, orders: Sequence[int]) -> list[tuple[int, int]]:
        """Temporal loops as (storage level, dim index), innermost first, for these orders."""
        index = {d: j for j, d in enumerate(self.space.dims)}
        return [(slot.level_index, index[d]) for si, slot in enumerate(self.space.slots)
                if not slot.is_spatial for d in slot.prefix + self.space.orders[si][orders[si]]]

    def _distinct_children(self, spatial: np.ndarray, inner: np.ndarray, level: int) -> np.ndarray:
        """Distinct child tiles per dataspace below one instance of ``level``: (n, dataspaces)."""
        space = self.space
        out = np.ones((spatial.shape[0], len(space.dataspaces)), dtype=np.int64)
        for j, ranks in enumerate(space._projection):
            for rank in ranks:
                if len(rank) == 1:
                    out[:, j] *= spatial[:, level, rank[0][0]]
                    continue
                keys = np.stack([np.stack([spatial[:, level, d], inner[:, d] * c], axis=1)
                                 for d, c in rank], axis=1).reshape(spatial.shape[0], -1)
                uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
                counts = np.array([_distinct_sums(tuple(map(int, row))) for row in uniq])
                out[:, j] *= counts[inverse.reshape(-1)]
        return out

    # ---- the estimate ---------------------------------------------------------------------
    def estimate(self, rows: np.ndarray, orders: Sequence[int], keep: np.ndarray) -> Estimate:
        """Estimate ``rows`` (n, slots, dims) under one loop-order choice and keep matrix."""
        space = self.space
        n = rows.shape[0]
        temporal, spatial = self._split(rows)
        per_level = temporal * spatial
        bounds = np.cumprod(per_level, axis=1)
        compute = temporal.prod(axis=(1, 2))
        temporal_upto = np.cumprod(temporal.prod(axis=2), axis=1)
        sizes = space.tile_sizes(rows)
        runs = self._run_products(temporal, orders)
        top = len(self.levels) - 1
        passed_up = np.repeat(compute[:, None], len(space.dataspaces), axis=1)
        energy = np.full(n, self.mac_energy)
        cycles = compute.copy()
        lla = np.zeros(n, dtype=np.int64)
        inner = np.ones((n, len(space.dims)), dtype=np.int64)
        for li, level in enumerate(self.levels):
            children = self._distinct_children(spatial, inner, li)
            content = children * passed_up
            above = compute // temporal_upto[:, li]
            fills_virtual = sizes[:, li, :] * (above[:, None] // runs[:, li, :])
            for j in self.sliding:
                fills_virtual[:, j] -= self._halo_saving(temporal, spatial, bounds, li, j, orders,
                                                         sizes[:, li, j], above)
            whole = bounds[:, li, :] * (temporal[:, li + 1:, :].prod(axis=1))
            instances = spatial[:, li + 1:, :].prod(axis=(1, 2))
            read_need = np.zeros(n)
            write_need = np.zeros(n)
            block = max(1, level.block_size)
            for j in reversed(range(len(space.dataspaces))):
                kept = keep[li, j]
                if not kept:
                    passed_up[:, j] = content[:, j]
                    continue
                passed_up[:, j] = fills_virtual[:, j]
                fills = np.zeros(n, dtype=np.int64) if li == top else fills_virtual[:, j]
                if self.read_write[j]:
                    partition = _volume(space, j, whole)
                    reads, updates = content[:, j] - partition, content[:, j]
                else:
                    reads, updates = content[:, j], np.zeros(n, dtype=np.int64)
                k = self.k[li, j]
                reads, fills, updates = (-(-x // k) for x in (reads, fills, updates))
                clusters = np.array([utilized_clusters(level, int(i)) for i in instances]) \
                    if level.cluster_size > 1 else instances
                energy += ((-(-reads // block)) * self.read_pj[li]
                           + (-(-fills // block)) * self.write_pj[li]
                           + (-(-updates // block)) * self.write_pj[li]) * clusters
                read_need += reads / compute
                write_need += updates / compute
                write_need += fills / compute
                if li == top:
                    lla += reads + fills + updates
            cycles = np.maximum(cycles, _throttled(level, compute, read_need, write_need))
            inner = bounds[:, li, :]
        return Estimate(space.fits(rows, keep), energy, cycles, lla)


def _volume(space: MapSpace, j: int, bounds: np.ndarray) -> np.ndarray:
    total = np.ones(bounds.shape[0], dtype=np.int64)
    for rank in space._projection[j]:
        extent = np.ones(bounds.shape[0], dtype=np.int64)
        for d, c in rank:
            extent = extent + c * (bounds[:, d] - 1)
        total *= extent
    return total


def _throttled(level, compute: np.ndarray, read_need: np.ndarray, write_need: np.ndarray) -> np.ndarray:
    """Compute cycles stretched by the level's most limiting bandwidth (as the engine does)."""
    throttle = np.ones(compute.shape[0])
    for bandwidth, need in ((level.read_bandwidth, read_need), (level.write_bandwidth, write_need),
                            (level.shared_bandwidth, read_need + write_need)):
        if bandwidth:
            throttle = np.where(need > bandwidth, np.minimum(throttle, bandwidth / np.maximum(need, 1e-300)),
                                throttle)
    return np.ceil(compute / throttle).astype(np.int64)


@lru_cache(maxsize=4096)
def _distinct_sums(key: tuple[int, ...]) -> int:
    """Distinct values of sum(step_i * x_i) for x_i < count_i; key = (count, step) pairs."""
    pairs = [(key[i], key[i + 1]) for i in range(0, len(key), 2)]
    values = {0}
    for count, step in pairs:
        values = {v + step * x for v in values for x in range(count)}
    return len(values)


def all_order_combos(space: MapSpace, row: np.ndarray, limit: int,
                     rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Loop-order choices (one index per slot) with distinct effect for one factor choice."""
    per_slot = []
    for si in range(len(space.slots)):
        nonunit = frozenset(d for j, d in enumerate(space.dims) if row[si, j] > 1)
        per_slot.append(space.order_classes(si, nonunit) if not space.slots[si].is_spatial else (0,))
    total = int(np.prod([len(c) for c in per_slot]))
    if total <= limit:
        return [tuple(c) for c in itertools.product(*per_slot)]
    return [tuple(int(rng.choice(c)) for c in per_slot) for _ in range(limit)]


# ---- search ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One point of the mapspace: factors (slots, dims), loop-order index per slot, keep choice."""

    factors: np.ndarray
    orders: tuple[int, ...]
    keep: int

    def key(self) -> tuple:
        return (self.factors.tobytes(), self.orders, self.keep)


@dataclass(frozen=True)
class SearchResult:
    """The best mapping, its exact stats, and what the search did."""

    mapping: Mapping
    stats: Stats
    screened: int
    exact: int
    complete: bool
    seconds: float


class Mapper:
    """Search one mapspace under one energy table (see the module docstring)."""

    def __init__(self, space: MapSpace, table: EnergyTable | None, settings: MapperSettings,
                 engine: BuiltinEngine | None = None) -> None:
        self.space = space
        self.table = table
        self.settings = settings
        self.engine = engine or BuiltinEngine()
        self.screen = Screen(space, table)
        self.rng = np.random.default_rng(settings.seed)
        self.keeps = self._keep_combos()
        self.keep_arrays = [np.array([[ds in combo[li] for ds in space.dataspaces]
                                      for li in range(len(space.level_names))]) for combo in self.keeps]
        self.exact_budget = max(MIN_EXACT, settings.max_evaluations // EXACT_SHARE)
        self.screened = 0
        self.exact: dict[tuple, tuple[float, float, Stats, Mapping]] = {}
        self.start = time.perf_counter()

    def _keep_combos(self) -> list[tuple[frozenset[str], ...]]:
        combos = list(itertools.islice(itertools.product(*self.space.keep_choices), KEEP_COMBOS * 64))
        if len(combos) <= KEEP_COMBOS:
            return combos
        pick = self.rng.choice(len(combos), KEEP_COMBOS, replace=False)
        return [combos[i] for i in sorted(pick)]

    def _out_of_time(self) -> bool:
        limit = self.settings.max_seconds
        return limit is not None and time.perf_counter() - self.start > limit

    # ---- scoring ------------------------------------------------------------------------
    def _screen(self, cands: Sequence[Candidate]) -> tuple[np.ndarray, np.ndarray]:
        """Primary and secondary screened metric per candidate (inf when invalid)."""
        primary = np.full(len(cands), np.inf)
        secondary = np.full(len(cands), np.inf)
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(cands):
            groups.setdefault((c.orders, c.keep), []).append(i)
        for (orders, keep), idx in groups.items():
            rows = np.stack([cands[i].factors for i in idx])
            est = self.screen.estimate(rows, orders, self.keep_arrays[keep])
            primary[idx] = est.metric(self.settings.metric)
            secondary[idx] = est.metric(self.settings.secondary_metric)
        self.screened += len(cands)
        return primary, secondary

    def _evaluate(self, cand: Candidate) -> tuple[float, float]:
        """Exact (primary, secondary) of a candidate, evaluated once."""
        key = cand.key()
        if key not in self.exact:
            mapping = self.space.to_mapping(cand.factors, cand.orders, self.keeps[cand.keep])
            stats = self.engine.evaluate(self.space.arch, self.space.problem, mapping, self.table)
            self.exact[key] = (metric_value(stats, self.settings.metric),
                               metric_value(stats, self.settings.secondary_metric), stats, mapping)
        primary, secondary, _, _ = self.exact[key]
        return primary, secondary

    def _best_exact(self) -> tuple[float, float, Stats, Mapping] | None:
        valid = [v for v in self.exact.values() if v[2].valid]
        return min(valid, key=lambda v: (v[0], v[1])) if valid else None

    @staticmethod
    def _rank(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
        order = np.lexsort((np.arange(len(primary)), secondary, primary))
        return order[np.isfinite(primary[order])]

    # ---- stages -------------------------------------------------------------------------
    def _initial(self) -> tuple[list[Candidate], bool]:
        """Factor choices of every keep combination (complete or sampled), default orders."""
        per_keep = max(1, self.settings.max_evaluations // (2 * len(self.keeps)))
        cands: list[Candidate] = []
        complete = True
        default = tuple(0 for _ in self.space.slots)
        for k, keep in enumerate(self.keep_arrays):
            rows, done = self.space.enumerate_factors(keep, limit=per_keep, rng=self.rng)
            complete &= done
            cands.extend(Candidate(row, default, k) for row in rows)
        return cands, complete

    def _with_orders(self, cands: Sequence[Candidate]) -> list[Candidate]:
        """Every loop-order choice with a distinct effect, for each candidate."""
        out = []
        for c in cands:
            for orders in all_order_combos(self.space, c.factors, ORDER_COMBOS, self.rng):
                out.append(Candidate(c.factors, orders, c.keep))
        return out

    def _neighbours(self, cand: Candidate) -> list[Candidate]:
        """Move one prime factor of one dimension between two free slots; change one order."""
        space = self.space
        out = []
        for j, dim in enumerate(space.dims):
            free = [i for i, s in enumerate(space.slots) if dim in s.free]
            if len(free) < 2:
                continue
            for a in free:
                value = int(cand.factors[a, j])
                for p in prime_factors(value):
                    for b in free:
                        if b == a:
                            continue
                        f = cand.factors.copy()
                        f[a, j] //= p
                        f[b, j] *= p
                        out.append(Candidate(f, cand.orders, cand.keep))
        for si in space.temporal_slots:
            nonunit = frozenset(d for j, d in enumerate(space.dims) if cand.factors[si, j] > 1)
            for idx in space.order_classes(si, nonunit):
                if idx != cand.orders[si]:
                    orders = cand.orders[:si] + (idx,) + cand.orders[si + 1:]
                    out.append(Candidate(cand.factors, orders, cand.keep))
        if not out:
            return out
        rows = np.stack([c.factors for c in out])
        ok = space.fanout_ok(rows) & space.splits_ok(rows)
        return [c for c, good in zip(out, ok) if good]

    def _exact_top(self, cands: Sequence[Candidate], primary: np.ndarray, secondary: np.ndarray,
                   count: int) -> None:
        """Evaluate exactly the ``count`` best-screened candidates not evaluated yet."""
        done = 0
        for i in self._rank(primary, secondary):
            if done >= count or len(self.exact) >= self.exact_budget or self._out_of_time():
                return
            if cands[i].key() not in self.exact:
                self._evaluate(cands[i])
                done += 1

    def run(self) -> SearchResult:
        cands, complete = self._initial()
        primary, secondary = self._screen(cands)
        top = [cands[i] for i in self._rank(primary, secondary)[:max(8, self.exact_budget // 4)]]
        widened = self._with_orders(top)
        primary, secondary = self._screen(widened)
        self._exact_top(widened, primary, secondary, self.exact_budget // 4)
        self._local_search()
        best = self._best_exact()
        if best is None:
            raise MappingError(f"no valid mapping found for {self.space.problem.shape.name} on "
                               f"{self.space.arch.name} ({self.screened} candidates screened)",
                               field="mapper", fix="relax the constraints or raise the budget; "
                               "check that the tiles fit the innermost buffers")
        return SearchResult(best[3], best[2], self.screened, len(self.exact), complete,
                            time.perf_counter() - self.start)

    def _local_search(self) -> None:
        """Descent with restarts: expand the best exactly-evaluated candidate not expanded yet
        (screen all its neighbours, evaluate the best few exactly) until the budget is spent."""
        expanded: set[tuple] = set()
        while len(self.exact) < self.exact_budget and not self._out_of_time():
            pending = [(v[0], v[1], n, k) for n, (k, v) in enumerate(self.exact.items())
                       if v[2].valid and k not in expanded]
            if not pending:
                return
            key = min(pending)[3]
            expanded.add(key)
            neighbours = self._neighbours(self._candidate_of(key))
            if neighbours:
                primary, secondary = self._screen(neighbours)
                self._exact_top(neighbours, primary, secondary, 4)

    def _candidate_of(self, key: tuple) -> Candidate:
        factors = np.frombuffer(key[0], dtype=np.int64).reshape(len(self.space.slots),
                                                                 len(self.space.dims)).copy()
        return Candidate(factors, key[1], key[2])


def search(space: MapSpace, table: EnergyTable | None, settings: MapperSettings,
           engine: BuiltinEngine | None = None) -> SearchResult:
    """The best mapping of ``space`` for ``settings.metric`` (see the module docstring)."""
    return Mapper(space, table, settings, engine).run()

