"""The exact mapper: the optimum of the constrained mapspace for one metric, with its proof.

The mapspace is cut into *groups*: one keep choice (every combination the constraints leave
open) and the factors of the outermost storage levels. Each group gets a lower bound on the
metric of every mapping in it (`bounds.group_bounds`). When the factor choices of the whole space
can be listed at once (at most ``FLAT_LIMIT`` over all keep choices), each is given the bound of
its group over the ``MAX_DEPTH`` outermost levels and they are scored in increasing bound order
(`run_flat`; a small first chunk gives an early incumbent). Otherwise groups over the outermost
level are visited in increasing bound order, each enumerated completely and its factor choices
filtered by the deeper bound before their loop orders are scored (`run`). A group is streamed,
never listed whole (`MapSpace.stream_factors`, `order_blocks`), so the memory stays bounded on
any space, and the limits are checked between blocks. When the next bound exceeds the best metric
found, no unscored mapping can beat it and the search stops with the answer proven optimal
(branch and bound). Otherwise the time or evaluation budget stops it, and the certificate
reports the gap to the smallest open bound. A space whose outermost level alone makes more than
``OUTER_LIMIT`` groups is left to the sampling mapper, with the compute bound as its gap.

Inside a group only provably redundant mappings are skipped:

* capacity monotonicity (`MapSpace.enumerate_factors`): tiles only grow when a factor moves
  inward, so a partial factor choice whose packed kept tiles overflow a buffer, or whose spatial
  factors exceed a fan-out, has no completion that fits; its whole subtree is dropped;
* unit loops are position-free: a loop of size 1 changes no count (the analysis treats it as
  absent), so only the order of a level's non-unit loops is chosen;
* loop orders with identical counts (`MapSpace.order_classes`): per dataspace only the set of
  irrelevant loops inside its innermost relevant loop and that loop matter (plus the order of
  the relevant loops where a rank sums two dimensions), so one order per class is scored;
* spatial loop order and the X/Y split change no count; one allowed split is kept.

Ties on the metric go to the secondary metric, then to the first mapping visited (whatever the
batching), so the answer is deterministic.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import MappingError
from ..spec.certificate import BOUND, BUDGET, EXHAUSTED, SAMPLED, SIZE, TIME, Certificate
from ..spec.costmodel import MapperSettings
from ..spec.ert import EnergyTable
from .batch import evaluate_batch
from .bounds import BoundsInterrupted, compute_bound, group_bounds
from .evaluator import MappingEvaluator
from .mapper import MapperResult, metric_array, sampling_search
from .mapspace import MapSpace
from .orderblocks import order_blocks
from .rowkeys import unique_rows

CHUNK = 1 << 15  # mappings scored per engine call (fewer calls; bounds checked between calls)
FIRST_CHUNK = 1 << 11  # the first, small chunk of a flat search gives an early incumbent
FLAT_LIMIT = 1 << 18  # spaces with at most this many factor choices are enumerated at once
OUTER_LIMIT = 1 << 16  # outer assignments (all keep choices) the exact search bounds one by one
MAX_DEPTH = 2  # storage levels (outermost first) whose factors the deepest group bound fixes


def keep_sets(space: MapSpace) -> list[tuple[frozenset[str], ...]]:
    """Every keep choice the constraints allow (one keep set per level, innermost first)."""
    return list(itertools.product(*space.keep_choices))


def assignments(space: MapSpace, members: list[np.ndarray], level: int
                ) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Split a group (per dimension its rows of ``dim_options``) by the factors of the slots of
    storage level ``level``: per child group a representative ``[slots, dims]`` factor table
    (its slots at ``level`` and above are the child's) and per dimension its rows."""
    cols = [i for i, s in enumerate(space.slots) if s.level_index == level]
    firsts, parts = [], []
    for opts, rows in zip(space.dim_options, members):
        first, inverse = unique_rows(opts[rows][:, cols])
        firsts.append(rows[first])
        parts.append([rows[inverse == u] for u in range(len(first))])
    picks = list(itertools.product(*(range(len(f)) for f in firsts)))
    assigned = np.stack([np.stack([space.dim_options[j][firsts[j][p[j]]]
                                   for j in range(len(space.dims))], axis=1) for p in picks])
    return assigned, [[parts[j][p[j]] for j in range(len(space.dims))] for p in picks]


def outer_group_count(space: MapSpace) -> int:
    """How many groups `outer_assignments` would make, without making them."""
    cols = [i for i, s in enumerate(space.slots) if s.level_index == len(space.level_names) - 1]
    return math.prod(len(unique_rows(opts[:, cols])[0]) for opts in space.dim_options)


def too_many_groups(space: MapSpace, keeps: list[tuple[frozenset[str], ...]]) -> bool:
    """Whether listing the outer groups of every keep choice would exceed ``OUTER_LIMIT``."""
    return outer_group_count(space) * len(keeps) > OUTER_LIMIT


def space_lower_bound(space: MapSpace, table: EnergyTable | None, metric: str) -> float:
    """A lower bound on ``metric`` over the whole space: the smallest outer group bound, or the
    compute bound where the outer groups are too many to list."""
    keeps = keep_sets(space)
    if too_many_groups(space, keeps):
        return float(compute_bound(space, table).metric(metric)[0])
    outer, _ = outer_assignments(space)
    return min(float(group_bounds(space, keep, outer, 1, table).metric(metric).min())
               for keep in keeps)


def outer_assignments(space: MapSpace) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """The groups of the whole space by the outermost level's factors (`assignments`)."""
    everything = [np.arange(len(opts)) for opts in space.dim_options]
    return assignments(space, everything, len(space.level_names) - 1)


def order_expansions(space: MapSpace, factors: np.ndarray
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every loop-order combination with distinct counts of each factor choice ``[n, slots,
    dims]``, in blocks of at most ``CHUNK`` mappings: (factors ``[m, slots, dims]``, orders
    ``[m, levels, dims]``), factor choices in input order."""
    nonunit = factors[:, list(space.temporal_slots), :] > 1
    for rows, orders in order_blocks(space, nonunit, 0, CHUNK):
        yield factors[rows], orders


@dataclass
class _Best:
    """The incumbent: metric, secondary metric, visit position, and the choice that achieves
    them (ties go to the mapping submitted first, however the scoring was batched)."""

    primary: float = np.inf
    secondary: float = np.inf
    visit: int = -1
    choice: tuple | None = None

    def offer(self, primary: np.ndarray, secondary: np.ndarray, visit: np.ndarray, keep: int,
              factors: np.ndarray, orders: np.ndarray) -> None:
        if not len(primary):
            return
        i = int(np.lexsort((visit, secondary, primary))[0])
        incumbent = (self.primary, self.secondary, self.visit if self.choice else np.inf)
        if np.isfinite(primary[i]) and (primary[i], secondary[i], visit[i]) < incumbent:
            self.primary, self.secondary = float(primary[i]), float(secondary[i])
            self.visit = int(visit[i])
            self.choice = (keep, factors[i].copy(), orders[i].copy())


@dataclass
class ExactSearch:
    """Branch and bound over the groups of one mapspace (see the module docstring)."""

    space: MapSpace
    table: EnergyTable | None
    settings: MapperSettings
    start: float = field(default_factory=time.perf_counter)
    evaluated: int = 0
    best: _Best = field(default_factory=_Best)
    _pending: list = field(default_factory=list)
    _held: int = 0  # mappings pending

    def _submit(self, k: int, factors: np.ndarray, orders: np.ndarray) -> None:
        """Queue mappings of keep choice ``k`` for scoring; score the queue once it holds
        ``CHUNK`` mappings, or at once while no incumbent exists (it starts the pruning)."""
        self._pending.append((k, factors, orders, self.evaluated))
        self.evaluated += len(factors)
        self._held += len(factors)
        if self._held >= CHUNK or not np.isfinite(self.best.primary):
            self._flush()

    def _flush(self) -> None:
        """Score the pending (keep, factors, orders) blocks, one engine call per keep choice."""
        space, keeps = self.space, self.keeps
        for k in sorted({block[0] for block in self._pending}):
            blocks = [b for b in self._pending if b[0] == k]
            factors = np.concatenate([b[1] for b in blocks])
            orders = np.concatenate([b[2] for b in blocks])
            visit = np.concatenate([np.arange(b[3], b[3] + len(b[1])) for b in blocks])
            temporal, spatial = space.split_factors(factors)
            result = evaluate_batch(space.arch, space.problem, temporal, spatial, orders,
                                    keeps[k], self.table, accounting=space.accounting)
            self.best.offer(metric_array(result, self.settings.metric),
                            metric_array(result, self.settings.secondary_metric), visit, k,
                            factors, orders)
        self._pending.clear()
        self._held = 0

    def _score_group(self, k: int, keep: np.ndarray, members: list[np.ndarray]) -> str | None:
        """Score every mapping of one group that fits and survives `_prune`, order classes
        expanded. The group's factor choices are streamed (`MapSpace.stream_factors`) and
        scored block by block, so a group of any size is held a block at a time; the limits
        are checked between blocks. Returns what stopped the search inside the group, if
        anything."""
        options = [opts[rows] for opts, rows in zip(self.space.dim_options, members)]
        for factors in self.space.stream_factors(keep, dim_options=options,
                                                 stop=self._out_of_time):
            try:
                factors = self._prune(k, factors)
            except BoundsInterrupted:
                return TIME
            for block, orders in order_expansions(self.space, factors):
                self._submit(k, block, orders)
                reason = self._stop_reason()
                if reason is not None:
                    return reason
        return TIME if self._out_of_time() else None  # the stream stops early on time

    def _out_of_time(self) -> bool:
        limit = min(self.settings.exact_seconds, self.settings.max_seconds or math.inf)
        return time.perf_counter() - self.start > limit

    def _stop_reason(self) -> str | None:
        if self._out_of_time():
            return TIME
        if self.evaluated >= self.settings.exact_budget:
            return BUDGET
        return None

    def _prune(self, k: int, factors: np.ndarray) -> np.ndarray:
        """The factor choices of one group that no deeper group bound excludes: rows are
        grouped by the factors of 2, 3, ... ``MAX_DEPTH`` outermost levels, and groups whose
        bound exceeds the best metric found are dropped (it only decreases, so they stay out)."""
        space, top = self.space, len(self.space.level_names) - 1
        for depth in range(2, min(MAX_DEPTH, top) + 1):
            if not len(factors) or not np.isfinite(self.best.primary):
                break
            cols = [i for i, s in enumerate(space.slots) if s.level_index > top - depth]
            first, inverse = unique_rows(factors[:, cols, :].reshape(len(factors), -1))
            bound = group_bounds(space, self.keeps[k], factors[first], depth, self.table,
                                 self._out_of_time)
            factors = factors[bound.metric(self.settings.metric)[inverse]
                              <= self.best.primary]
        return factors

    def _bounded_rows(self, k: int, factors: np.ndarray) -> np.ndarray:
        """The deepest group bound (``MAX_DEPTH`` outer levels) of each factor choice."""
        space, top = self.space, len(self.space.level_names) - 1
        depth = min(MAX_DEPTH, top)
        cols = [i for i, s in enumerate(space.slots) if s.level_index > top - depth]
        first, inverse = unique_rows(factors[:, cols, :].reshape(len(factors), -1))
        bound = group_bounds(space, self.keeps[k], factors[first], depth, self.table,
                             self._out_of_time)
        return bound.metric(self.settings.metric)[inverse]

    def _unbounded(self, stopped: str) -> Certificate:
        """The certificate of a search stopped before its groups were bounded: the compute
        bound is the only lower bound known."""
        metric = self.settings.metric
        return Certificate.build(metric, np.inf,
                                 float(compute_bound(self.space, self.table).metric(metric)[0]),
                                 stopped)

    def run_flat(self, rows: list[np.ndarray]) -> tuple[tuple | None, Certificate]:
        """Branch and bound over a space small enough to enumerate its factor choices at once
        (``rows`` per keep choice): choices are sorted by their deepest group bound and scored
        in chunks (the first small, for an early incumbent) until the next bound exceeds the
        best metric found."""
        try:
            bound = np.concatenate([self._bounded_rows(k, r) for k, r in enumerate(rows)
                                    if len(r)] or [np.zeros(0)])
        except BoundsInterrupted:
            return None, self._unbounded(TIME)
        keep = np.concatenate([np.full(len(r), k) for k, r in enumerate(rows)])
        factors = np.concatenate(rows)
        visit = np.argsort(bound, kind="stable")
        stopped, open_bound, position, size = EXHAUSTED, np.inf, 0, FIRST_CHUNK
        while position < len(visit):
            if bound[visit[position]] > self.best.primary:
                stopped = BOUND
                break
            reason = self._stop_reason()
            if reason is not None:
                stopped, open_bound = reason, float(bound[visit[position]])
                break
            chosen = visit[position:position + size]
            position += len(chosen)
            chosen = chosen[bound[chosen] <= self.best.primary]
            for k in np.unique(keep[chosen]):
                for block, orders in order_expansions(self.space,
                                                      factors[chosen[keep[chosen] == k]]):
                    self._submit(int(k), block, orders)
            self._flush()
            size = CHUNK
        certificate = Certificate.build(self.settings.metric, self.best.primary, open_bound,
                                        stopped, self.evaluated, len(visit),
                                        len(visit) - position)
        return self.best.choice, certificate

    def run(self) -> tuple[tuple | None, Certificate]:
        """The best choice (keep index, factors, orders) or None, and its certificate.

        Groups (keep choice, outermost factors) are visited in increasing bound order; inside
        one, factor choices are dropped by the bounds of deeper groups (`_prune`) before their
        loop orders are scored. The search ends when the next group's bound exceeds the best
        metric found (proven optimal) or a limit stops it.
        """
        space, metric = self.space, self.settings.metric
        self.keeps = keep_sets(space)
        keep_arrays = [np.array([[ds in kept for ds in space.dataspaces] for kept in combo])
                       for combo in self.keeps]
        enumerated, held = [], 0
        for keep in keep_arrays:  # FLAT_LIMIT choices in all, however many keep choices
            rows = space.enumerate_all(keep, FLAT_LIMIT - held)
            if rows is None:
                break
            enumerated.append(rows)
            held += len(rows)
        else:
            return self.run_flat(enumerated)
        if too_many_groups(space, self.keeps):
            return None, self._unbounded(SIZE)
        outer, members = outer_assignments(space)
        bounds, groups = [], []
        try:
            for k, keep in enumerate(self.keeps):
                bounds.append(group_bounds(space, keep, outer, 1, self.table,
                                           self._out_of_time).metric(metric))
                groups.extend((k, g) for g in range(len(outer)))
        except BoundsInterrupted:
            return None, self._unbounded(TIME)
        bound = np.concatenate(bounds)
        visit = np.argsort(bound, kind="stable")
        stopped, open_bound, visited = EXHAUSTED, np.inf, 0
        for g in visit:
            if bound[g] > self.best.primary and self._pending:
                self._flush()
            if bound[g] > self.best.primary:
                stopped = BOUND
                break
            reason = self._stop_reason()
            if reason is None:
                k, o = groups[g]
                visited += 1
                reason = self._score_group(k, keep_arrays[k], members[o])
            if reason is not None:  # the smallest open bound: this group's (visit is sorted)
                stopped, open_bound = reason, float(bound[g])
                break
        self._flush()
        certificate = Certificate.build(metric, self.best.primary, open_bound, stopped,
                                        self.evaluated, len(visit), len(visit) - visited)
        return self.best.choice, certificate


def _result(space: MapSpace, table: EnergyTable | None, engine: MappingEvaluator, choice: tuple,
            keeps: list[tuple[frozenset[str], ...]], evaluated: int, certificate: Certificate,
            start: float) -> MapperResult:
    keep, factors, orders = choice
    mapping = space.to_mapping(factors, orders, keeps[keep])
    stats = engine.evaluate(space.arch, space.problem, mapping, table)
    return MapperResult(mapping, stats, evaluated, certificate.optimal,
                        time.perf_counter() - start, certificate)


def _value(stats: object, metric: str) -> float:
    return float({"energy": stats.energy_pj, "delay": stats.cycles, "edp": stats.edp,
                  "last_level_accesses": stats.last_level_accesses}[metric])


def certified_search(space: MapSpace, table: EnergyTable | None, settings: MapperSettings,
                     engine: MappingEvaluator | None = None) -> MapperResult:
    """The best mapping with its `Certificate`.

    With ``settings.exact`` the exact search runs first; when its budget or time limit stops it
    before the bound closes, the sampling mapper runs too and the better answer is returned with
    the exact search's lower bound (the gap is honest either way). Without it only the sampling
    mapper runs, and the certificate carries the smallest group bound as the lower bound.
    """
    engine = engine or MappingEvaluator(space.accounting)
    start = time.perf_counter()
    exact = ExactSearch(space, table, settings)
    if settings.exact:
        choice, certificate = exact.run()
        if certificate.optimal:
            if choice is None:
                raise MappingError(f"no valid mapping exists for {space.problem.shape.name} on "
                                   f"{space.arch.name} (the constrained mapspace was exhausted)",
                                   field="mapper", fix="relax the constraints; check that the "
                                   "tiles fit the innermost buffers")
            return _result(space, table, engine, choice, exact.keeps, exact.evaluated,
                           certificate, start)
        lower = certificate.lower_bound
    else:
        lower = space_lower_bound(space, table, settings.metric)
        choice, certificate = None, None
    sampled = sampling_search(space, table, settings, engine)
    candidates = [sampled]
    if choice is not None:
        candidates.append(_result(space, table, engine, choice, exact.keeps, exact.evaluated,
                                  certificate, start))
    best = min(candidates, key=lambda r: (_value(r.stats, settings.metric),
                                          _value(r.stats, settings.secondary_metric)))
    value = _value(best.stats, settings.metric)
    stopped = certificate.stopped_by if certificate is not None else SAMPLED
    final = Certificate.build(settings.metric, value, lower, stopped,
                              exact.evaluated, certificate.groups if certificate else 0,
                              certificate.groups_pruned if certificate else 0)
    return replace(best, evaluated=exact.evaluated + sampled.evaluated, complete=False,
                   seconds=time.perf_counter() - start, certificate=final)
