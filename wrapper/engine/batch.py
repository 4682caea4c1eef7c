"""Batch evaluation of many mappings of one (arch, problem): the mapper's entry point.

Mappings come as numpy arrays: ``temporal[n, level, dim]`` and ``spatial[n, level, dim]`` factors
(levels innermost first as in `Arch.inner_to_outer`, dims in `problem.shape.dimensions` order),
plus per level a temporal permutation (shared or one per mapping) and the kept dataspaces.
Results are arrays (energy, cycles, validity, ...) that agree exactly with the scalar path.

NOTE (performance): the analysis core is evaluated mapping by mapping here, sharing everything
that does not depend on the factors (energy lookups, packing factors, validity of bit widths);
a closed-form vectorized core for the delta analysis is future work (see the engine report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..arch import Arch
from ..errors import PrecisionError
from ..ert import EnergyTable
from ..problem import Problem
from .builtin import BuiltinEngine
from .nest import LevelLoops, Loop, Nest


@dataclass(frozen=True)
class BatchResult:
    """Per-mapping results; entries of invalid mappings are 0 / NaN with a reason."""

    valid: np.ndarray
    energy_pj: np.ndarray
    cycles: np.ndarray
    utilization: np.ndarray
    reasons: tuple[str | None, ...]

    @property
    def edp(self) -> np.ndarray:
        return self.energy_pj * self.cycles


def _loops(factors: np.ndarray, permutation: str, dims: tuple[str, ...]) -> tuple[Loop, ...]:
    order = [d for d in permutation if d in dims] + [d for d in dims if d not in permutation]
    index = {d: i for i, d in enumerate(dims)}
    return tuple(Loop(d, int(factors[index[d]])) for d in order if factors[index[d]] > 1)


def evaluate_batch(arch: Arch, problem: Problem, temporal: np.ndarray, spatial: np.ndarray,
                   permutations: Sequence[str] | Sequence[Sequence[str]],
                   keeps: Sequence[Sequence[str]], energy_table: EnergyTable | None = None,
                   engine: BuiltinEngine | None = None) -> BatchResult:
    """Evaluate ``n`` mappings given as factor arrays (see the module docstring for layouts).

    Factor products and fan-outs are checked here (invalid rows get a reason); ``permutations``
    is one string per level (innermost loop first) or one such list per mapping.
    """
    engine = engine or BuiltinEngine()
    temporal = np.asarray(temporal, dtype=np.int64)
    spatial = np.asarray(spatial, dtype=np.int64)
    n, n_levels, n_dims = temporal.shape
    dims = problem.shape.dimensions
    levels = arch.inner_to_outer
    if n_levels != len(levels) or n_dims != len(dims) or spatial.shape != temporal.shape:
        raise ValueError(f"factor arrays must be (n, {len(levels)}, {len(dims)}), got "
                         f"{temporal.shape} and {spatial.shape}")
    bounds = np.array([problem.bounds[d] for d in dims], dtype=np.int64)
    products = (temporal * spatial).prod(axis=1)
    fanout = np.array([np.prod(arch.fanout(lv.name)) for lv in levels], dtype=np.int64)
    fits = (spatial.prod(axis=2) <= fanout[None, :]).all(axis=1)
    ok = (products == bounds[None, :]).all(axis=1) & fits & (temporal >= 1).all(axis=(1, 2))
    valid = np.zeros(n, dtype=bool)
    energy = np.full(n, np.nan)
    cycles = np.zeros(n, dtype=np.int64)
    utilization = np.zeros(n)
    reasons: list[str | None] = [None] * n
    try:
        factors = engine._packing_factors(arch, problem)
    except PrecisionError as exc:
        return BatchResult(valid, energy, cycles, utilization, (str(exc),) * n)
    shared_perm = bool(permutations) and isinstance(permutations[0], str)
    keep_sets = [frozenset(k) for k in keeps]
    for row in range(n):
        if not ok[row]:
            reasons[row] = "factors do not multiply to the problem bounds or exceed a fan-out"
            continue
        perms = permutations if shared_perm else permutations[row]
        nest = Nest(tuple(LevelLoops(lv.name, _loops(temporal[row, i], perms[i], dims),
                                     _loops(spatial[row, i], "", dims), keep_sets[i])
                          for i, lv in enumerate(levels)), dims)
        stats = engine.evaluate_nest(arch, problem, nest, factors, energy_table)
        valid[row] = stats.valid
        reasons[row] = stats.reason
        if stats.valid:
            energy[row], cycles[row], utilization[row] = stats.energy_pj, stats.cycles, stats.utilization
    return BatchResult(valid, energy, cycles, utilization, tuple(reasons))

