"""Nest analysis: per storage level and dataspace, tile sizes and access counts (unpacked words),
for a whole batch of nests at once (numpy over the mapping axis; Python loops only over levels,
dataspaces, ranks and loop positions, whose number is fixed by the arch and problem).

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
* Accounting version (``TIMELOOP_VERSIONS``): ``fork`` counts as the authors' fork and its base
  4a74d71; ``v3`` as stock Timeloop v3.0.3, which also elides the first fill of each element of a
  read-write dataspace below its outermost keeping level (fills = parent share - partition size).
  The parent's reads do not change (they are its own content accesses), so only the reported
  fills of those levels differ (docs/fidelity.md, "Stock v3 accounting").

Closed form of the fills (why it needs no enumeration of the 2^k iteration choices). Number the
k loops above L innermost first. Timeloop visits the choices in binary counting order, the
innermost loop being the lowest bit, so the step that sets bit p and clears the bits below moves
the tile by ``diff_p = move_p - sum(move_l, l < p)``: it depends on p alone, and its weight is
``(size_p - 1) * prod(size_o - 1 for the set bits o > p)``. The residual state (none, stayed, or
sliding along rank r in direction +-) before that step is ``E_p(s_x)``: ``E_p`` maps the state
at the start of a block to the state after counting through all bits below p
(``E_{p+1} = E_p o T_p o E_p``, T_p the transition of one step at p), and ``s_x``, the state on
entering the block of the set bits x above p, follows from x bit by bit from the top
(``s <- T_q(E_q(s))`` for every set bit q). Summing the weights of all x per state is a weighted
automaton over the few states, run once from the outermost loop down. A rank with one term can
never slide (a loop's step is at least the tile's extent along its dimension, and at least the
sum of the steps of the same dimension's inner loops plus the tile). For dataspaces without
multi-term ranks a step therefore moves the tile iff its loop, or an active loop inside it, runs
over a relevant dimension, and the sum telescopes to the familiar rule: fills = tile x product of
the trip counts from the innermost relevant loop outward. With two-term ranks, rows where no step
slides are summed the same way in closed form; only rows with a slide run the automaton (its
weights pass through a float64 bincount, exact below 2^53 iterations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SpecError
from ..spec.costmodel import FORK, V3
from ..spec.problem import Problem
from .nest import NestBatch

NONE_STATE, STAYED_STATE = 0, 1  # residual states; 2 + 2 * sliding rank + (move < 0) slide


@dataclass(frozen=True)
class Projection:
    """A dataspace compiled for the analysis: per rank its terms (dimension index, coefficient)
    and the coefficient matrix ``[rank, dim]``; ``sliding`` lists the ranks with two terms."""

    name: str
    read_write: bool
    ranks: tuple[tuple[tuple[int, int], ...], ...]
    matrix: np.ndarray
    sliding: tuple[int, ...]

    @property
    def relevant(self) -> np.ndarray:
        """``[dim]``: whether a dimension indexes this dataspace at all."""
        return self.matrix.any(axis=0)


@dataclass(frozen=True)
class RawCounts:
    """Unpacked per-instance counts of one dataspace at one level, one entry per nest."""

    tile: np.ndarray
    partition: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    instances: np.ndarray


def projections(problem: Problem) -> tuple[Projection, ...]:
    """Compile the dataspaces; the closed forms need each dimension in at most one rank of a
    dataspace and at most two terms per rank (true of CNN, depthwise, grouped and FC shapes)."""
    dims = problem.shape.dimensions
    out = []
    for space in problem.shape.dataspaces:
        ranks = []
        for rank in space.projection:
            terms: dict[int, int] = {}
            for term in rank:
                coefficient = problem.coefficient(term.coefficient)
                if coefficient:
                    index = dims.index(term.dim)
                    terms[index] = terms.get(index, 0) + coefficient
            ranks.append(tuple(terms.items()))
        used = [d for rank in ranks for d, _ in rank]
        if len(used) != len(set(used)) or any(len(rank) > 2 for rank in ranks):
            raise SpecError(f"dataspace {space.name}: a dimension in several ranks or a rank of more "
                            "than two terms is beyond the built-in engine",
                            field=f"problem.shape.data-spaces.{space.name}.projection",
                            fix="use the Timeloop backend for this problem shape")
        matrix = np.zeros((len(ranks), len(dims)), dtype=np.int64)
        for r, rank in enumerate(ranks):
            for d, c in rank:
                matrix[r, d] = c
        out.append(Projection(space.name, space.read_write, tuple(ranks), matrix,
                              tuple(r for r, rank in enumerate(ranks) if len(rank) == 2)))
    return tuple(out)


def extents(proj: Projection, bounds: np.ndarray) -> np.ndarray:
    """``[n, rank]`` extents of the tiles spanned by ``bounds`` ``[n, dim]``."""
    return (bounds - 1) @ proj.matrix.T + 1


def distinct_children(proj: Projection, spatial: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Distinct child tiles among the spatial fan-out (factors ``spatial [n, dim]``, child tile
    ``below [n, dim]``) of one parent instance. Per rank: one term gives its factor; two terms
    ``a*i + b*j`` (i < m, j < l) give ``m*l - max(0, m - b/g) * max(0, l - a/g)``, g = gcd(a, b),
    since (i, j) and (i + b/g, j - a/g) are the only coincidences."""
    count = np.ones(spatial.shape[0], dtype=np.int64)
    if not (spatial > 1).any():
        return count
    for rank in proj.ranks:
        if len(rank) == 1:
            count = count * spatial[:, rank[0][0]]
        elif len(rank) == 2:
            (d1, c1), (d2, c2) = rank
            a, b = c1 * below[:, d1], c2 * below[:, d2]
            m, l = spatial[:, d1], spatial[:, d2]
            g = np.gcd(a, b)
            count = count * (m * l - np.maximum(0, m - b // g) * np.maximum(0, l - a // g))
    return count


def tile_fills(proj: Projection, ext: np.ndarray, full: np.ndarray, sizes: np.ndarray,
               order: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Fills of one tile instance over the temporal loops above its level (``sizes``/``order``/
    ``steps`` ``[n, level above, slot]`` in loop order); see the module docstring."""
    shape = (sizes.shape[0], sizes.shape[1] * sizes.shape[2])
    sizes, dims_at, steps = sizes.reshape(shape), order.reshape(shape), steps.reshape(shape)
    active = sizes > 1
    if not proj.sliding:
        # only the steps inside the innermost relevant loop keep the tile: a product of sizes
        inside = ~np.logical_or.accumulate(active & proj.relevant[dims_at], axis=1)
        return full * np.where(inside, 1, sizes).prod(axis=1)
    target, delta, slide = _step_classes(proj, ext, full, active, dims_at, steps)
    outer = np.cumprod(sizes[:, ::-1], axis=1)[:, ::-1] // sizes  # prod of sizes above p
    fills = full + ((sizes - 1) * outer * delta).sum(axis=1)  # exact where no step slides
    rows = np.flatnonzero(slide.any(axis=1))
    if rows.size:
        # absent loops are transparent: move them behind the active ones and drop them
        keep = np.argsort(~active[rows], axis=1, kind="stable")[:, :int(active[rows].sum(axis=1).max())]
        picked = [np.take_along_axis(a[rows], keep, axis=1) for a in (sizes, target, delta, slide)]
        fills[rows] = full[rows] + _automaton(*picked, full[rows], 2 + 2 * len(proj.sliding))
    return fills


def _step_classes(proj: Projection, ext: np.ndarray, full: np.ndarray, active: np.ndarray,
                  dims_at: np.ndarray, steps: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per step (loops innermost first, ``[n, k]``): the state it leads to, its delta when it
    continues a run, and whether it is a slide (only slides depend on the state before them).

    The step that sets loop p moves the tile by ``move_p - sum(move_l, l < p)``. Along a rank of
    one term it moves iff loop p or an active loop inside it runs over that rank's dimension;
    along a two-term rank the move is computed."""
    count = np.zeros(active.shape, dtype=np.int64)
    along = []
    for r, rank in enumerate(proj.ranks):
        if len(rank) == 1:
            count += np.logical_or.accumulate(active & (dims_at == rank[0][0]), axis=1)
        elif len(rank) == 2:
            move = proj.matrix[r][dims_at] * steps * active
            diff = 2 * move - np.cumsum(move, axis=1)
            count += diff != 0
            along.append((r, diff))
    target = np.where(count == 0, STAYED_STATE, NONE_STATE)
    delta = np.where(count == 0, 0, full[:, None])
    slide = np.zeros(count.shape, dtype=bool)
    for q, (r, diff) in enumerate(along):
        hit = (count == 1) & (diff != 0) & (np.abs(diff) < ext[:, None, r])
        slide |= hit
        target = np.where(hit, 2 + 2 * q + (diff < 0), target)
        delta = np.where(hit, (full // ext[:, r])[:, None] * np.abs(diff), delta)
    return target, delta, slide


def _automaton(sizes: np.ndarray, target: np.ndarray, delta: np.ndarray, slide: np.ndarray,
               full: np.ndarray, n_states: int) -> np.ndarray:
    """Sum of weighted deltas of every step after the first (module docstring, closed form)."""
    n, k = sizes.shape
    rows = np.arange(n)[:, None]
    block = np.broadcast_to(np.arange(n_states), (n, n_states))  # E_0: identity
    after, breaks = [], []
    for p in range(k):
        tgt = target[:, p, None]
        broken = slide[:, p, None] & (block != NONE_STATE) & (block != tgt)
        step = np.where(broken, NONE_STATE, tgt)  # T_p o E_p
        after.append(step)
        breaks.append(broken)
        block = np.where((sizes[:, p] > 1)[:, None], block[rows, step], block)
    weights = np.zeros((n, n_states), dtype=np.int64)
    weights[:, NONE_STATE] = 1
    total = np.zeros(n, dtype=np.int64)
    for p in reversed(range(k)):
        w = sizes[:, p] - 1
        deltas = np.where(breaks[p], full[:, None], delta[:, p, None])
        total += w * (weights * deltas).sum(axis=1)
        moved = np.bincount((rows * n_states + after[p]).ravel(), weights=weights.ravel(),
                            minlength=n * n_states).reshape(n, n_states)
        weights = weights + w[:, None] * moved.astype(np.int64)
    return total


def analyse(nest: NestBatch, problem: Problem, accounting: str = FORK
            ) -> list[dict[str, RawCounts]]:
    """Counts per level (innermost first) for every dataspace the level keeps, under the
    ``accounting`` of one Timeloop version (module docstring)."""
    n, n_levels, n_dims = nest.temporal.shape
    bounds = nest.tile_bounds()
    below = np.concatenate([np.ones((n, 1, n_dims), dtype=np.int64), bounds[:, :-1]], axis=1)
    steps = np.take_along_axis(below * nest.spatial, nest.order, axis=2)
    sizes = np.take_along_axis(nest.temporal, nest.order, axis=2)
    later = np.cumprod(nest.temporal[:, ::-1], axis=1)[:, ::-1] // nest.temporal  # temporal above
    instances = nest.instances()
    top = n_levels - 1
    result: list[dict[str, RawCounts]] = [{} for _ in range(n_levels)]
    for proj in projections(problem):
        passed_up = nest.compute_cycles()
        for level in range(n_levels):
            content = distinct_children(proj, nest.spatial[:, level], below[:, level]) * passed_up
            if proj.name not in nest.keeps[level]:
                passed_up = content
                continue
            ext = extents(proj, bounds[:, level])
            tile = ext.prod(axis=1)
            if level == top:
                fills = np.zeros(n, dtype=np.int64)
            else:
                fills = tile_fills(proj, ext, tile, sizes[:, level + 1:], nest.order[:, level + 1:],
                                   steps[:, level + 1:])
            passed_up = fills
            partition = extents(proj, bounds[:, level] * later[:, level]).prod(axis=1)
            if proj.read_write:
                reads, updates = content - partition, content
                if accounting == V3 and any(proj.name in k for k in nest.keeps[level + 1:]):
                    fills = fills - partition
            else:
                reads, updates = content, np.zeros(n, dtype=np.int64)
            result[level][proj.name] = RawCounts(tile, partition, reads, fills, updates,
                                                 instances[:, level])
    return result
