"""Batch evaluation of many mappings of one (arch, problem): the mapper's entry point.

NOTE for callers (the mapper): ``evaluate_batch`` is fully vectorized (numpy over the mapping
axis), so pass large batches (thousands of rows) in one call. Its signature is unchanged;
``permutations`` may now also be an integer array ``[n, level, dim]`` (or ``[level, dim]`` shared)
of dimension indices, innermost loop first (`nest.loop_order` of a string), which skips string
parsing per row. `BatchResult` keeps its fields and adds ``macs``, ``mac_energy_pj`` and
``levels`` (per level ``cycles``/``energy_pj`` and per kept dataspace ``utilized_capacity``,
``reads``, ``fills``, ``updates``, ``operands_per_word``, ``energy_pj`` arrays, exactly as
`Stats`), plus ``last_level_accesses`` and ``stats(row)``. The scalar path
(`MappingEvaluator.evaluate`) is this same code on a batch of one, so the numbers are identical.

Mappings come as numpy arrays: ``temporal[n, level, dim]`` and ``spatial[n, level, dim]`` factors
(levels innermost first as in `Arch.inner_to_outer`, dims in `problem.shape.dimensions` order),
plus per level a temporal permutation and the kept dataspaces (shared by the batch; ``None`` for a
level keeps every dataspace).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PrecisionError
from ..spec.arch import Arch
from ..spec.ert import EnergyTable
from ..spec.problem import Problem
from ..spec.stats import DataspaceStats, LevelStats, Stats
from ..spec.costmodel import FORK
from .analysis import analyse
from .energy_lookup import compute_energy, storage_energies
from .nest import NestBatch, orders_array
from .pricing import (
    PackedCounts,
    capacity_needed,
    capacity_reason,
    dataspace_energy,
    level_cycles,
    pack,
    packing_factors,
)

FACTOR_REASON = "factors do not multiply to the problem bounds or exceed a fan-out"


@dataclass(frozen=True)
class DataspaceArrays:
    """Per-instance counts (packed words) and total energy of one dataspace at one level."""

    utilized_capacity: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    operands_per_word: int
    energy_pj: np.ndarray


@dataclass(frozen=True)
class LevelArrays:
    """One storage level over the batch: energy (all instances), cycles, kept dataspaces."""

    name: str
    energy_pj: np.ndarray
    cycles: np.ndarray
    dataspaces: dict[str, DataspaceArrays]


@dataclass(frozen=True)
class BatchResult:
    """Per-mapping results; totals of invalid mappings are NaN energy / 0 cycles with a reason
    (their per-level arrays hold whatever the analysis computed and mean nothing)."""

    valid: np.ndarray
    energy_pj: np.ndarray
    cycles: np.ndarray
    utilization: np.ndarray
    reasons: tuple[str | None, ...]
    macs: int = 0
    mac_energy_pj: float = 0.0
    levels: tuple[LevelArrays, ...] = ()

    @property
    def edp(self) -> np.ndarray:
        return self.energy_pj * self.cycles

    @property
    def last_level_accesses(self) -> np.ndarray:
        """Reads + fills + updates of the outermost level summed over dataspaces (0 if invalid)."""
        total = np.zeros(len(self.valid), dtype=np.int64)
        for d in (self.levels[-1].dataspaces.values() if self.levels else ()):
            total = total + d.reads + d.fills + d.updates
        return np.where(self.valid, total, 0)

    def stats(self, row: int) -> Stats:
        """The `Stats` of one mapping (what `MappingEvaluator.evaluate` returns for it)."""
        if not self.valid[row]:
            return Stats.invalid(str(self.reasons[row]))
        levels = tuple(LevelStats(lv.name, float(lv.energy_pj[row]), int(lv.cycles[row]), {
            ds: DataspaceStats(int(d.utilized_capacity[row]), int(d.reads[row]), int(d.fills[row]),
                               int(d.updates[row]), d.operands_per_word, float(d.energy_pj[row]))
            for ds, d in lv.dataspaces.items()}) for lv in self.levels)
        energy = float(self.energy_pj[row])
        return Stats(valid=True, reason=None, energy_pj=energy, cycles=int(self.cycles[row]),
                     utilization=float(self.utilization[row]), macs=self.macs,
                     pj_per_mac=energy / self.macs if self.macs else 0.0,
                     mac_energy_pj=self.mac_energy_pj, levels=levels)


def _all_invalid(n: int, reason: str) -> BatchResult:
    return BatchResult(np.zeros(n, dtype=bool), np.full(n, np.nan), np.zeros(n, dtype=np.int64),
                       np.zeros(n), (reason,) * n)


def evaluate_nests(arch: Arch, problem: Problem, nest: NestBatch, valid: np.ndarray,
                   reasons: list[str | None], energy_table: EnergyTable | None,
                   accounting: str = FORK) -> BatchResult:
    """Analyse (under the ``accounting`` of one Timeloop version), pack, check capacities and
    price ``nest`` (rows with ``valid`` False keep their ``reasons``); the one evaluation core of
    the scalar and batch paths."""
    n = nest.size
    try:
        factors = packing_factors(arch, problem, nest.keeps)
    except PrecisionError as exc:
        return _all_invalid(n, str(exc))
    raw = analyse(nest, problem, accounting)
    compute_cycles = nest.compute_cycles()
    valid = valid.copy()
    cycles = compute_cycles
    storage_total = np.zeros(n)
    levels = []
    for level, counts, ks in zip(arch.inner_to_outer, raw, factors):
        packed: dict[str, PackedCounts] = {ds: pack(c, ks[ds]) for ds, c in counts.items()}
        if level.size_words is not None and packed:
            overflow = valid & (capacity_needed(packed, n) > level.size_words)
            for row in np.flatnonzero(overflow):
                reasons[row] = capacity_reason(level, packed, int(row))
            valid &= ~overflow
        energies = storage_energies(level, energy_table)
        spaces = {}
        level_energy = np.zeros(n)
        for ds, c in packed.items():
            energy = dataspace_energy(level, c, energies.read, energies.write)
            spaces[ds] = DataspaceArrays(c.capacity, c.reads, c.fills, c.updates, c.k, energy)
            level_energy = level_energy + energy
        lc = level_cycles(level, list(packed.values()), compute_cycles)
        cycles = np.maximum(cycles, lc)
        storage_total = storage_total + level_energy
        levels.append(LevelArrays(level.name, level_energy, lc, spaces))
    macs = problem.macs
    mac_energy = macs * compute_energy(arch.arithmetic, energy_table)
    total = mac_energy + storage_total
    utilization = nest.used_macs() / arch.arithmetic.instances * compute_cycles / cycles
    return BatchResult(valid, np.where(valid, total, np.nan), np.where(valid, cycles, 0),
                       np.where(valid, utilization, 0.0), tuple(reasons), macs, mac_energy,
                       tuple(levels))


def evaluate_batch(arch: Arch, problem: Problem, temporal: np.ndarray, spatial: np.ndarray,
                   permutations: Sequence[str] | Sequence[Sequence[str]] | np.ndarray,
                   keeps: Sequence[Sequence[str] | None], energy_table: EnergyTable | None = None,
                   engine: object | None = None, accounting: str = FORK) -> BatchResult:
    """Evaluate ``n`` mappings given as factor arrays (see the module docstring for layouts).

    Factor products and fan-outs are checked here (invalid rows get a reason); ``permutations``
    is one string per level (innermost loop first), one such list per mapping, or an integer
    array of loop orders. ``engine`` is accepted for compatibility and unused; ``accounting`` is
    the Timeloop version whose counts to reproduce (`analysis.TIMELOOP_VERSIONS`).
    """
    temporal = np.asarray(temporal, dtype=np.int64)
    spatial = np.asarray(spatial, dtype=np.int64)
    n, n_levels, n_dims = temporal.shape
    dims = problem.shape.dimensions
    levels = arch.inner_to_outer
    if n_levels != len(levels) or n_dims != len(dims) or spatial.shape != temporal.shape:
        raise ValueError(f"factor arrays must be (n, {len(levels)}, {len(dims)}), got "
                         f"{temporal.shape} and {spatial.shape}")
    bounds = np.array([problem.bounds[d] for d in dims], dtype=np.int64)
    fanout = np.array([np.prod(arch.fanout(lv.name)) for lv in levels], dtype=np.int64)
    ok = (((temporal * spatial).prod(axis=1) == bounds).all(axis=1)
          & (spatial.prod(axis=2) <= fanout).all(axis=1)
          & (temporal >= 1).all(axis=(1, 2)) & (spatial >= 1).all(axis=(1, 2)))
    reasons: list[str | None] = [None if good else FACTOR_REASON for good in ok.tolist()]
    # rows with bad factors are analysed with all-ones factors so no array math can overflow
    temporal = np.where(ok[:, None, None], temporal, 1)
    spatial = np.where(ok[:, None, None], spatial, 1)
    spaces = problem.shape.dataspace_names
    keep_sets = tuple(frozenset(spaces if k is None else k) for k in keeps)
    nest = NestBatch(temporal, spatial, orders_array(permutations, n, n_levels, dims), keep_sets, dims)
    return evaluate_nests(arch, problem, nest, ok, reasons, energy_table, accounting)
