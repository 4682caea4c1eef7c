"""Lower bounds on a mapper metric over every mapping that shares one outer assignment.

A *group* fixes, under one keep choice, the factors of every slot of the ``depth`` outermost
storage levels (the *assigned* levels, innermost of them ``L0``); everything below is free. The
bound of a group is at most the metric of every mapping in it (all loop orders, all inner
factors), which is what lets the exact mapper skip groups without evaluating them.

The counts come from the engine's own analysis of a *completion*: the assigned factors, the rest
of every bound in the temporal loops of level ``H = L0 - 1``, ``H`` keeping every dataspace, the
levels below it keeping none. Why each term is a lower bound (counts are per instance):

* The tile of an assigned level or of ``H`` is the bound divided by the factors above it, so the
  group fixes it, and it fixes the loops above it except for their order. Counts at and above
  ``H`` therefore depend only on the assigned levels' loop orders. Every order of a level is one
  of `MapSpace.order_classes` (orders in one class give identical counts), so the element-wise
  minimum over every combination of classes bounds each count from below; fills of ``H`` and of
  every assigned level, and reads and updates of an assigned level fed by a real keeper at or
  above ``H``, are exactly such counts.
* A dataspace that ``H`` bypasses in reality reaches its lowest assigned keeper from a keeper
  further in. Without sliding windows that keeper's fills times its distinct child tiles are at
  least the fills a keeper at ``H`` would have: fills are the tile times the trip counts from the
  innermost relevant loop outward, and the relevant loops in between (temporal or spatial)
  multiply the inner tile up to the tile at ``H``; so the completion's keeper at ``H`` gives a
  bound. A sliding-window dataspace gets the compulsory bound there instead at the outermost
  level (every element read, or for outputs written, at least once) and zero elsewhere.
* Energy is MAC energy plus, per level and dataspace, a price that never decreases with a count
  (ceil of packed words over block size times a non-negative energy, times the instances); levels
  below ``H`` and reads of ``H`` contribute zero. Cycles are at least the compute cycles (the
  product of the assigned temporal factors, and the MACs over the assigned spatial factors times
  every fan-out below ``L0``) and at least each assigned level's bandwidth-limited cycles, which
  never decrease with its counts. EDP is bounded by the product of the two bounds.

Bounds are scaled by ``1 - SAFETY`` so floating-point summation order can never lift one above
an exactly computed metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..spec.ert import EnergyTable
from ..spec.precision import packed_count
from .analysis import analyse, extents, projections
from .energy_lookup import compute_energy, storage_energies
from .mapspace import MapSpace
from .nest import NestBatch
from .orderblocks import order_blocks
from .pricing import PackedCounts, dataspace_energy, level_cycles

SAFETY = 1e-9
ANALYSIS_CHUNK = 1 << 15  # nests per analysis call: few calls, bounded memory
_COUNTS = ("reads", "fills", "updates")


@dataclass(frozen=True)
class GroupBounds:
    """Lower bounds per group: energy (pJ), cycles, outermost-level accesses (packed words)."""

    energy_pj: np.ndarray
    cycles: np.ndarray
    last_level_accesses: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """The bound of one mapper metric (EDP: product of the energy and cycle bounds)."""
        return {"energy": self.energy_pj, "delay": self.cycles,
                "edp": self.energy_pj * self.cycles,
                "last_level_accesses": self.last_level_accesses}[name]


def _completions(space: MapSpace, assigned: np.ndarray, low: int) -> tuple[np.ndarray, np.ndarray]:
    """(temporal, spatial) ``[n, level, dim]``: the slots of levels >= ``low`` from ``assigned``
    ``[n, slots, dims]``, the rest of every bound in the temporal loops of level ``low - 1``."""
    temporal, spatial = space.split_factors(assigned)
    bounds = np.array([space.problem.bounds[d] for d in space.dims], dtype=np.int64)
    temporal[:, :low, :] = 1
    spatial[:, :low, :] = 1
    used = (temporal[:, low:, :] * spatial[:, low:, :]).prod(axis=1)
    temporal[:, low - 1, :] = bounds // used
    return temporal, spatial


class BoundsInterrupted(Exception):
    """The caller's stop condition held between two analysis blocks of `group_bounds`."""


def _minimum_counts(space: MapSpace, keeps: tuple[frozenset[str], ...], temporal: np.ndarray,
                    spatial: np.ndarray, low: int, stop: Callable[[], bool] | None
                    ) -> tuple[dict, dict]:
    """Per (level >= ``low - 1``, dataspace) the minimum of each count over every combination of
    order classes of the assigned levels, and the instances of each level. All combinations of
    all rows go through the analysis together, in blocks (`order_blocks`), since its cost is
    mostly per call. ``stop`` is asked before every block but the first."""
    n = temporal.shape[0]
    big = np.iinfo(np.int64).max
    mins = {(li, ds): {c: np.full(n, big, dtype=np.int64) for c in _COUNTS}
            for li in range(low - 1, temporal.shape[1]) for ds in keeps[li]}
    instances: dict[int, np.ndarray] = {}
    blocks = order_blocks(space, temporal[:, low:, :] > 1, low, ANALYSIS_CHUNK)
    for i, (rows, orders) in enumerate(blocks):
        if i and stop is not None and stop():
            raise BoundsInterrupted
        raw = analyse(NestBatch(temporal[rows], spatial[rows], orders, keeps, space.dims),
                      space.problem, space.accounting)
        for (li, ds), counts in mins.items():
            got = raw[li][ds]
            instances.setdefault(li, np.zeros(n, dtype=np.int64))[rows] = got.instances
            for c in _COUNTS:
                np.minimum.at(counts[c], rows, getattr(got, c))
    return mins, instances


def group_bounds(space: MapSpace, keep: tuple[frozenset[str], ...], assigned: np.ndarray,
                 depth: int, table: EnergyTable | None, stop: Callable[[], bool] | None = None
                 ) -> GroupBounds:
    """Bounds for the groups ``assigned`` ``[n, slots, dims]`` (only the slots of the ``depth``
    outermost levels are read; 1 <= depth < levels) under keep choice ``keep``. Many groups
    with many loop orders take long; `BoundsInterrupted` is raised when ``stop()`` holds
    between two analysis blocks."""
    n = assigned.shape[0]
    arch, problem = space.arch, space.problem
    levels = arch.inner_to_outer
    top, low = len(levels) - 1, len(levels) - depth
    temporal, spatial = _completions(space, assigned, low)
    everything = frozenset(space.dataspaces)
    keeps = tuple(keep[li] if li >= low else everything if li == low - 1 else frozenset()
                  for li in range(len(levels)))
    mins, instances = _minimum_counts(space, keeps, temporal, spatial, low, stop)
    zeros = np.zeros(n, dtype=np.int64)
    full_bounds = np.array([[problem.bounds[d] for d in space.dims]], dtype=np.int64)
    sliding = {proj.name: (bool(proj.sliding), proj.read_write, int(extents(proj, full_bounds).prod()))
               for proj in projections(problem)}
    for ds, (slides, read_write, whole) in sliding.items():
        lowest = next((li for li in range(low, top + 1) if ds in keep[li]), None)
        if ds in keep[low - 1] or not slides or lowest is None:
            continue  # fed by a real keeper at H, or by a bound-giving hypothetical one
        counts = mins[(lowest, ds)]
        counts["reads"] = np.full(n, whole if lowest == top and not read_write else 0)
        counts["updates"] = np.full(n, whole if lowest == top and read_write else 0)
    energy = np.full(n, float(problem.macs * compute_energy(arch.arithmetic, table)))
    di = {ds: i for i, ds in enumerate(space.dataspaces)}
    per_level: dict[int, list[PackedCounts]] = {}
    for (li, ds), counts in mins.items():
        if ds not in keep[li]:
            continue  # the hypothetical keeper at H is never priced
        k = space.packing[li][di[ds]]
        reads = counts["reads"] if li >= low else zeros
        updates = counts["updates"] if li >= low else zeros
        packed = PackedCounts(zeros, packed_count(reads, k), packed_count(counts["fills"], k),
                              packed_count(updates, k), k, instances[li])
        per_level.setdefault(li, []).append(packed)
        pj = storage_energies(levels[li], table)
        energy = energy + dataspace_energy(levels[li], packed, pj.read, pj.write)
    below = int(np.prod([np.prod(space.slots[i].fanout) for i in space.spatial_slots
                         if space.slots[i].level_index < low], dtype=np.int64))
    spread = spatial[:, low:, :].prod(axis=(1, 2)) * below
    compute = np.maximum(-(-problem.macs // spread), temporal[:, low:, :].prod(axis=(1, 2)))
    cycles = compute.astype(np.int64)
    lla = zeros.copy()
    for li, packed in per_level.items():
        if li >= low:
            cycles = np.maximum(cycles, level_cycles(levels[li], packed, compute))
        if li == top:
            lla = sum((c.reads + c.fills + c.updates for c in packed), lla)
    scale = 1 - SAFETY
    return GroupBounds(energy * scale, cycles * scale, lla)


def compute_bound(space: MapSpace, table: EnergyTable | None) -> GroupBounds:
    """Bounds that hold for every mapping of the space without grouping it: MAC energy, the
    MACs spread over every MAC unit, no outermost-level accesses."""
    problem = space.problem
    units = int(np.prod([np.prod(space.slots[i].fanout) for i in space.spatial_slots],
                        dtype=np.int64))
    energy = np.array([problem.macs * compute_energy(space.arch.arithmetic, table)], dtype=float)
    cycles = np.array([-(-problem.macs // units)], dtype=float)
    scale = 1 - SAFETY
    return GroupBounds(energy * scale, cycles * scale, np.zeros(1, dtype=np.int64))
