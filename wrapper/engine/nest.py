"""The loop nest of a uniform mapping, in the form the nest analysis needs.

Timeloop orders loops per storage level: the level's spatial loops (fan-out to the level below)
sit inside its temporal loops, and levels nest innermost first. Loops of size 1 change nothing in
its analysis, so they are dropped here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch import Arch
from ..mapping import Mapping
from ..problem import Problem


@dataclass(frozen=True)
class Loop:
    """One non-trivial loop: its problem dimension and trip count."""

    dim: str
    size: int


@dataclass(frozen=True)
class LevelLoops:
    """Loops of one storage level (innermost first) and the dataspaces it keeps."""

    name: str
    temporal: tuple[Loop, ...]
    spatial: tuple[Loop, ...]
    keeps: frozenset[str]


@dataclass(frozen=True)
class Nest:
    """All storage levels innermost first (index 0 sits next to the MACs)."""

    levels: tuple[LevelLoops, ...]
    dims: tuple[str, ...]

    def factor(self, level: int, dim: str, spatial: bool | None = None) -> int:
        """Product of the factors of ``dim`` at ``level`` (temporal, spatial, or both)."""
        lv = self.levels[level]
        loops = (lv.temporal if spatial is not True else ()) + (lv.spatial if spatial is not False else ())
        total = 1
        for loop in loops:
            if loop.dim == dim:
                total *= loop.size
        return total

    def bounds_upto(self, level: int) -> dict[str, int]:
        """Per dimension, the product of all factors at levels 0..level (the tile at ``level``)."""
        bounds = {d: 1 for d in self.dims}
        for i in range(level + 1):
            for d in self.dims:
                bounds[d] *= self.factor(i, d)
        return bounds

    def instances_above(self, level: int) -> int:
        """Utilized instances of ``level``: spatial fan-out of all levels above it."""
        total = 1
        for lv in self.levels[level + 1:]:
            for loop in lv.spatial:
                total *= loop.size
        return total

    def temporal_iterations(self) -> int:
        """MACs per MAC instance: the product of every temporal loop."""
        total = 1
        for lv in self.levels:
            for loop in lv.temporal:
                total *= loop.size
        return total


def _ordered(factors: dict[str, int], permutation: str, dims: tuple[str, ...]) -> tuple[Loop, ...]:
    order = [d for d in permutation if d in factors]
    order += [d for d in dims if d in factors and d not in order]
    return tuple(Loop(d, int(factors[d])) for d in order if int(factors[d]) > 1)


def build_nest(arch: Arch, problem: Problem, mapping: Mapping) -> Nest:
    """Turn a mapping into per-level loops (innermost level first)."""
    dims = problem.shape.dimensions
    all_spaces = frozenset(problem.shape.dataspace_names)
    levels = []
    for level in arch.inner_to_outer:
        lm = mapping.for_level(level.name)
        if lm.keep is None and lm.bypass is None:
            keeps = all_spaces
        elif lm.keep is None:
            keeps = all_spaces - frozenset(lm.bypass or ())
        else:
            keeps = frozenset(lm.keep) - frozenset(lm.bypass or ())
        levels.append(LevelLoops(level.name,
                                 _ordered(dict(lm.temporal), lm.temporal_permutation, dims),
                                 _ordered(dict(lm.spatial), lm.spatial_permutation, dims),
                                 keeps))
    return Nest(tuple(levels), dims)
