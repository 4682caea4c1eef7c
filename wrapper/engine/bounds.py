"""Lower bounds on a mapper metric over every mapping that shares one outer assignment.

A *group* fixes the factors of the outermost storage level's slots (its temporal loops, and its
spatial fan-out where it has one) under one keep choice; everything below is free. The bound of a
group is at most the metric of every mapping in it (all orders, all inner factors), which is what
lets the exact mapper skip groups without evaluating them.

Why each term is a lower bound (counts are per instance, as in the engine):

* Fills of the level just below the outermost one (``top - 1``) depend only on its tile and on the
  loops above it. Its tile is the problem bound divided by the outermost factors, so it is fixed
  by the group, and so are the loops above it except for their order. Every loop order of the
  outermost level is one of `MapSpace.order_classes` (orders in a class give identical counts), so
  the element-wise minimum over the classes bounds each count from below.
* Outermost reads and updates of a dataspace that ``top - 1`` keeps are its distinct child tiles
  times those fills (the engine's definition), hence bounded by the same minimum.
* A dataspace that ``top - 1`` bypasses reaches the outermost level from a keeper further in. For
  a dataspace without sliding windows the keeper's fills times its distinct child tiles are at
  least the fills a keeper at ``top - 1`` would have: fills are the tile times the trip counts
  from the innermost relevant loop outward, and the trip counts of the relevant loops in between
  (temporal or spatial) multiply the keeper's tile up to the tile at ``top - 1``. So the analysis
  is run with ``top - 1`` keeping everything. A sliding-window dataspace that ``top - 1`` bypasses
  gets the compulsory bound instead: every element is read (or written) at least once.
* Energy is MAC energy plus, per level and dataspace, a price that never decreases with a count
  (ceil of packed words over block size times a non-negative energy); levels not bounded here
  contribute zero. Cycles are at least the compute cycles (at least the MACs over the product
  of all fan-outs, and at least the product of the outermost temporal factors, since the spatial
  factors below divide what is left) and at least the outermost level's bandwidth-limited cycles,
  which never decrease with its counts. EDP is bounded by the product of the two bounds.

Bounds are scaled by ``1 - SAFETY`` so floating-point summation order can never lift one above
an exactly computed metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ert import EnergyTable, compute_energy, storage_energies
from ..precision import packed_count
from .analysis import analyse, extents, projections
from .mapspace import MapSpace
from .nest import NestBatch
from .pricing import PackedCounts, dataspace_energy, level_cycles

SAFETY = 1e-9


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


def _completions(space: MapSpace, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(temporal, spatial) ``[n, level, dim]`` with the outermost level's slots from ``outer``
    ``[n, slots, dims]`` and the rest of every bound in the temporal loops of level ``top - 1``."""
    temporal, spatial = space.split_factors(outer)
    top = len(space.level_names) - 1
    bounds = np.array([space.problem.bounds[d] for d in space.dims], dtype=np.int64)
    temporal[:, :top, :] = 1
    spatial[:, :top, :] = 1
    temporal[:, top - 1, :] = bounds // (temporal[:, top, :] * spatial[:, top, :])
    return temporal, spatial


def group_bounds(space: MapSpace, keep: tuple[frozenset[str], ...], outer: np.ndarray,
                 table: EnergyTable | None) -> GroupBounds:
    """Bounds for the groups ``outer`` ``[n, slots, dims]`` (only the outermost level's slots
    are read) under keep choice ``keep`` (see the module docstring)."""
    n = outer.shape[0]
    arch, problem = space.arch, space.problem
    levels = arch.inner_to_outer
    top = len(levels) - 1
    temporal, spatial = _completions(space, outer)
    top_slot = space.temporal_slots[top]
    nonunit = outer[:, top_slot, :] > 1
    patterns, inverse = np.unique(nonunit, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    everything = frozenset(space.dataspaces)
    keeps = tuple(everything if li >= top - 1 else frozenset() for li in range(len(levels)))
    # per group and dataspace: minimum over outermost order classes of each count
    big = np.iinfo(np.int64).max
    best = {ds: {c: np.full(n, big, dtype=np.int64) for c in ("fills", "reads", "updates")}
            for ds in space.dataspaces}
    order = np.repeat(space.default_orders()[None], n, axis=0)
    for p, pattern in enumerate(patterns):
        rows = np.flatnonzero(inverse == p)
        classes = space.order_classes(top, frozenset(d for d, on in zip(space.dims, pattern) if on))
        for cls in classes:
            sub = order[rows].copy()
            sub[:, top] = cls
            nest = NestBatch(temporal[rows], spatial[rows], sub, keeps, space.dims)
            raw = analyse(nest, problem)
            for ds in space.dataspaces:
                mins = best[ds]
                mins["fills"][rows] = np.minimum(mins["fills"][rows], raw[top - 1][ds].fills)
                mins["reads"][rows] = np.minimum(mins["reads"][rows], raw[top][ds].reads)
                mins["updates"][rows] = np.minimum(mins["updates"][rows], raw[top][ds].updates)
    kept_below = keep[top - 1]
    energy = np.full(n, float(problem.macs * compute_energy(arch.arithmetic, table)))
    top_counts = []
    lla = np.zeros(n, dtype=np.int64)
    zeros = np.zeros(n, dtype=np.int64)
    instances_top = np.ones(n, dtype=np.int64)
    instances_below = spatial[:, top, :].prod(axis=1)
    top_level, below_level = levels[top], levels[top - 1]
    top_pj, below_pj = storage_energies(top_level, table), storage_energies(below_level, table)
    full_bounds = np.array([[problem.bounds[d] for d in space.dims]], dtype=np.int64)
    di = {ds: i for i, ds in enumerate(space.dataspaces)}
    for proj in projections(problem):
        ds = proj.name
        reads, updates = best[ds]["reads"], best[ds]["updates"]
        if ds not in kept_below and proj.sliding:
            whole = int(extents(proj, full_bounds).prod())
            reads, updates = ((zeros, np.full(n, whole)) if proj.read_write
                              else (np.full(n, whole), zeros))
        k = space.packing[top][di[ds]]
        counts = PackedCounts(zeros, packed_count(reads, k), zeros, packed_count(updates, k), k,
                              instances_top)
        top_counts.append(counts)
        energy = energy + dataspace_energy(top_level, counts, top_pj.read, top_pj.write)
        lla = lla + counts.reads + counts.updates
        if ds in kept_below:
            kb = space.packing[top - 1][di[ds]]
            fills = PackedCounts(zeros, zeros, packed_count(best[ds]["fills"], kb), zeros, kb,
                                 instances_below)
            energy = energy + dataspace_energy(below_level, fills, below_pj.read, below_pj.write)
    macs = problem.macs
    fanout = int(np.prod([np.prod(space.slots[i].fanout) for i in space.spatial_slots]))
    compute = np.maximum(-(-macs // fanout),
                         temporal[:, top, :].prod(axis=1)).astype(np.int64)
    cycles = np.maximum(compute, level_cycles(top_level, top_counts, compute))
    scale = 1 - SAFETY
    return GroupBounds(energy * scale, cycles * scale, lla)

