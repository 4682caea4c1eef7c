"""The loop nests of a batch of uniform mappings, as arrays over the mapping axis.

Timeloop orders loops per storage level: the level's spatial loops (fan-out to the level below)
sit inside its temporal loops, and levels nest innermost first. A nest is therefore fully given by
per-level factor arrays plus each level's temporal loop order; spatial order never changes a count
(each dimension has one spatial loop per level, so the set of child positions is order-free).
Loops of size 1 change nothing in the analysis, which treats them as absent.

One `NestBatch` holds ``n`` nests of one (arch, problem); the scalar path is a batch of one, so
both paths share every line of the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..spec.arch import Arch
from ..spec.mapping import Mapping
from ..spec.problem import Problem


@dataclass(frozen=True)
class NestBatch:
    """``n`` loop nests over the storage levels innermost first (index 0 sits next to the MACs).

    ``temporal``/``spatial``: factors ``[n, level, dim]``; ``order``: per level the dimension
    indices of its temporal loops, innermost first (a permutation of ``range(len(dims))``);
    ``keeps``: per level the dataspaces it keeps (shared by the batch).
    """

    temporal: np.ndarray
    spatial: np.ndarray
    order: np.ndarray
    keeps: tuple[frozenset[str], ...]
    dims: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.temporal.shape[0]

    def tile_bounds(self) -> np.ndarray:
        """``[n, level, dim]``: the tile of each level (product of all factors at levels <= it)."""
        return np.cumprod(self.temporal * self.spatial, axis=1)

    def instances(self) -> np.ndarray:
        """``[n, level]``: utilized instances of each level (spatial fan-out of all levels above)."""
        fan = self.spatial.prod(axis=2)
        inclusive = np.cumprod(fan[:, ::-1], axis=1)[:, ::-1]
        return np.concatenate([inclusive[:, 1:], np.ones((self.size, 1), dtype=np.int64)], axis=1)

    def used_macs(self) -> np.ndarray:
        """MAC units in use: the spatial fan-out of every level."""
        return self.spatial.prod(axis=(1, 2))

    def compute_cycles(self) -> np.ndarray:
        """MACs per MAC instance: the product of every temporal factor."""
        return self.temporal.prod(axis=(1, 2))


def loop_order(permutation: str, dims: Sequence[str]) -> list[int]:
    """Dimension indices innermost first: the permutation's dims, then the rest in dims order."""
    named = [d for d in dict.fromkeys(permutation) if d in dims]
    return [dims.index(d) for d in named + [d for d in dims if d not in named]]


def orders_array(permutations: Sequence[str] | Sequence[Sequence[str]] | np.ndarray, n: int,
                 n_levels: int, dims: Sequence[str]) -> np.ndarray:
    """``[n, level, dim]`` loop orders from one permutation string per level (shared by the
    batch), one such list per mapping, or an integer array of dimension indices already."""
    if isinstance(permutations, np.ndarray):
        return np.broadcast_to(permutations.astype(np.int64), (n, n_levels, len(dims)))
    if len(permutations) and isinstance(permutations[0], str):
        shared = np.array([loop_order(p, dims) for p in permutations], dtype=np.int64)
        return np.broadcast_to(shared, (n, n_levels, len(dims)))
    known = {p: loop_order(p, dims) for perms in permutations for p in perms}
    rows = [[known[p] for p in perms] for perms in permutations]
    return np.array(rows, dtype=np.int64).reshape(n, n_levels, len(dims))


def nest_from_mapping(arch: Arch, problem: Problem, mapping: Mapping) -> NestBatch:
    """The batch of one nest that a `Mapping` describes."""
    dims = problem.shape.dimensions
    levels = [mapping.for_level(level.name) for level in arch.inner_to_outer]
    temporal = np.array([[[int(lm.temporal.get(d, 1)) for d in dims] for lm in levels]], dtype=np.int64)
    spatial = np.array([[[int(lm.spatial.get(d, 1)) for d in dims] for lm in levels]], dtype=np.int64)
    order = np.array([[loop_order(lm.temporal_permutation, dims) for lm in levels]], dtype=np.int64)
    keeps = tuple(lm.kept(problem.shape.dataspace_names) for lm in levels)
    return NestBatch(temporal, spatial, order, keeps, dims)
