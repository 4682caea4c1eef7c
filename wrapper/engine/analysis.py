"""Nest analysis: per storage level and dataspace, tile sizes and access counts (unpacked words).

Semantics reproduced from Timeloop's model and checked against the golden runs:

* The tile of a dataspace at level L is the projection of all loops at levels <= L (its own
  temporal and spatial loops included); each rank's extent is sum(c * (bound - 1)) + 1, so Inputs
  get sliding-window sizes.
* Fills of a tile are the sum, over the temporal loops above L, of the change ("delta") between
  consecutive tiles of one instance. Timeloop only simulates iterations 0 and 1 of every loop and
  weights iteration 1 by (trip count - 1). A delta is partial (sliding-window reuse) only when the
  tile moved along one rank with overlap, in the same direction as its previous move or as the
  first move after a refill; a tile that stayed put costs nothing but breaks the run, so the next
  move refills the whole tile (Timeloop resets its residual state on a stride change).
* A parent reads what its children fill: children of one parent instance whose tiles coincide
  receive one multicast (or, for outputs, are reduced spatially), so content accesses are
  (distinct child tiles) x (what one child passes up). A kept child passes up its fills; a
  bypassed child passes up its own content accesses (its tile still decides the multicast); the
  MACs pass up one access per operation.
* Read-write dataspaces: updates = content accesses; reads = updates - partition size (the first
  write of each element needs no read).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Sequence

from ..problem import Problem
from .nest import Nest

Offsets = tuple[int, ...]


@dataclass(frozen=True)
class RawCounts:
    """Unpacked per-instance counts of one dataspace at one level."""

    tile: int
    partition: int
    reads: int
    fills: int
    updates: int
    temporal_reductions: int
    instances: int


def _rank_terms(problem: Problem, dataspace: str) -> list[list[tuple[str, int]]]:
    return [[(t.dim, problem.coefficient(t.coefficient)) for t in rank]
            for rank in problem.dataspace(dataspace).projection]


def _extents(terms: list[list[tuple[str, int]]], bounds: dict[str, int]) -> list[int]:
    return [sum(c * (bounds[d] - 1) for d, c in rank) + 1 for rank in terms]


def _volume(extents: Sequence[int]) -> int:
    total = 1
    for e in extents:
        total *= e
    return total


def _delta_fills(terms: list[list[tuple[str, int]]], extents: list[int],
                 loops: list[tuple[str, int, int]]) -> int:
    """Fills of one tile instance driven by ``loops`` (outermost first: dim, trip count, step)."""
    full = _volume(extents)
    moves = []
    for dim, size, step in loops:
        moves.append([sum(c * step for d, c in rank if d == dim) for rank in terms])
    total = 0
    prev: list[int] | None = None
    state: tuple[int, int] | None = None  # None: free; (-1, 0): stayed; (rank, sign): sliding
    for choice in product((0, 1), repeat=len(loops)):
        weight = 1
        offset = [0] * len(terms)
        for (dim, size, step), idx, move in zip(loops, choice, moves):
            if idx:
                weight *= size - 1
                for r, m in enumerate(move):
                    offset[r] += m
        if prev is None:
            delta, state = full, None
        else:
            diff = [a - b for a, b in zip(offset, prev)]
            moved = [r for r, v in enumerate(diff) if v != 0]
            if not moved:
                delta, state = 0, (-1, 0)
            elif len(moved) == 1 and abs(diff[moved[0]]) < extents[moved[0]]:
                r = moved[0]
                direction = (r, 1 if diff[r] > 0 else -1)
                if state is None or state == direction:
                    delta, state = full // extents[r] * abs(diff[r]), direction
                else:
                    delta, state = full, None
            else:
                delta, state = full, None
        total += delta * weight
        prev = offset
    return total


def _temporal_loops_above(nest: Nest, level: int) -> list[tuple[str, int, int]]:
    """Temporal loops above ``level``, outermost first, with each loop's step per dimension."""
    inner = nest.bounds_upto(level)
    loops: list[tuple[str, int, int]] = []
    for lv in nest.levels[level + 1:]:
        for loop in lv.spatial:
            inner[loop.dim] *= loop.size
        for loop in lv.temporal:
            loops.append((loop.dim, loop.size, inner[loop.dim]))
            inner[loop.dim] *= loop.size
    return loops[::-1]


def _distinct_children(terms: list[list[tuple[str, int]]], nest: Nest, level: int) -> int:
    """Distinct child tiles among the spatial fan-out of one instance of ``level``."""
    spatial = nest.levels[level].spatial if level >= 0 else ()
    if not spatial:
        return 1
    inner = nest.bounds_upto(level - 1) if level > 0 else {d: 1 for d in nest.dims}
    steps = []
    for loop in spatial:
        steps.append((loop, inner[loop.dim]))
        inner[loop.dim] *= loop.size
    seen: set[Offsets] = set()
    for idx in product(*(range(loop.size) for loop, _ in steps)):
        pos = {d: 0 for d in nest.dims}
        for i, (loop, step) in zip(idx, steps):
            pos[loop.dim] += i * step
        seen.add(tuple(sum(c * pos[d] for d, c in rank) for rank in terms))
    return len(seen)


def _partition(terms: list[list[tuple[str, int]]], nest: Nest, level: int) -> int:
    """All distinct elements one instance of ``level`` holds over the run."""
    bounds = nest.bounds_upto(level)
    for lv in nest.levels[level + 1:]:
        for loop in lv.temporal:
            bounds[loop.dim] *= loop.size
    return _volume(_extents(terms, bounds))


def analyse(nest: Nest, problem: Problem) -> list[dict[str, RawCounts]]:
    """Counts per level (innermost first) for every dataspace the level keeps."""
    spaces = problem.shape.dataspace_names
    macs_per_unit = nest.temporal_iterations()
    virtual_fills: list[dict[str, int]] = []
    tiles: list[dict[str, int]] = []
    for level in range(len(nest.levels)):
        bounds = nest.bounds_upto(level)
        loops = _temporal_loops_above(nest, level)
        fills, sizes = {}, {}
        for ds in spaces:
            terms = _rank_terms(problem, ds)
            extents = _extents(terms, bounds)
            sizes[ds] = _volume(extents)
            fills[ds] = _delta_fills(terms, extents, loops) if loops else sizes[ds]
        virtual_fills.append(fills)
        tiles.append(sizes)
    top = len(nest.levels) - 1
    result: list[dict[str, RawCounts]] = []
    passed_up = {ds: macs_per_unit for ds in spaces}
    for level, lv in enumerate(nest.levels):
        counts = {}
        for ds in spaces:
            terms = _rank_terms(problem, ds)
            content = _distinct_children(terms, nest, level) * passed_up[ds]
            if ds not in lv.keeps:
                passed_up[ds] = content
                continue
            passed_up[ds] = virtual_fills[level][ds]
            fills = 0 if level == top else virtual_fills[level][ds]
            partition = _partition(terms, nest, level)
            if problem.dataspace(ds).read_write:
                reads, updates, reductions = content - partition, content, content - partition
            else:
                reads, updates, reductions = content, 0, 0
            counts[ds] = RawCounts(tiles[level][ds], partition, reads, fills, updates, reductions,
                                   nest.instances_above(level))
        result.append(counts)
    return result
