"""`BuiltinEngine`: the embedded timeloop-model replacement (scalar path).

It checks a mapping (factors, fan-out, bit widths, capacities with packing), runs the nest
analysis, applies word packing (METHOD.md section 2: every count at a level becomes
ceil(count / k) words with k = floor(W / b)), and prices the packed counts with an `EnergyTable`
exactly as Timeloop does: per operation ceil(words / block size) vector accesses times the energy
per vector access, spread over the instances of a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..arch import Arch, StorageLevel
from ..ert import EnergyTable, compute_energy, storage_energies
from ..errors import MappingError, PrecisionError
from ..mapping import Mapping, validate_mapping
from ..precision import packed_count, packing_factor
from ..problem import Problem
from ..stats import DataspaceStats, LevelStats, Stats
from .analysis import RawCounts, analyse
from .nest import Nest, build_nest


@dataclass(frozen=True)
class PackedCounts:
    """Per-instance counts of one dataspace at one level in packed words."""

    capacity: int
    reads: int
    fills: int
    updates: int
    k: int
    instances: int


def pack(raw: RawCounts, k: int) -> PackedCounts:
    """Counts of operands -> counts of words holding k operands each."""
    return PackedCounts(packed_count(raw.tile, k), packed_count(raw.reads, k),
                        packed_count(raw.fills, k), packed_count(raw.updates, k), k, raw.instances)


def utilized_clusters(level: StorageLevel, instances: int) -> int:
    """Clusters sharing an access. Timeloop reports all clusters of a clustered level as used
    (golden Simba PEWeightRegs: 4 of 4 at any utilization); unclustered levels: one per instance."""
    if level.cluster_size <= 1:
        return instances
    return max(1, -(-level.instances // level.cluster_size))


def dataspace_energy(level: StorageLevel, counts: PackedCounts, read_pj: float, write_pj: float) -> float:
    """Energy of all instances: vector accesses per operation times energy per vector access."""
    block = max(1, level.block_size)
    per_cluster = (math.ceil(counts.reads / block) * read_pj
                   + math.ceil(counts.fills / block) * write_pj
                   + math.ceil(counts.updates / block) * write_pj)
    return per_cluster * utilized_clusters(level, counts.instances)


def level_cycles(level: StorageLevel, counts: dict[str, PackedCounts], compute_cycles: int) -> int:
    """Cycles of one level: compute cycles stretched by its most limiting bandwidth.

    Timeloop sums the needed words per cycle over dataspaces (last dataspace first) and divides
    the compute cycles by the throttling factor bandwidth / need; the floating-point order matters
    for the last cycle, so it is kept.
    """
    if compute_cycles == 0:
        return 0
    read_need = write_need = 0.0
    for c in reversed(list(counts.values())):
        read_need += c.reads / compute_cycles
        write_need += c.updates / compute_cycles
        write_need += c.fills / compute_cycles
    throttle = 1.0
    for bandwidth, need in ((level.read_bandwidth, read_need), (level.write_bandwidth, write_need),
                            (level.shared_bandwidth, read_need + write_need)):
        if bandwidth and need > bandwidth:
            throttle = min(throttle, bandwidth / need)
    return math.ceil(compute_cycles / throttle)


def capacity_problem(level: StorageLevel, counts: dict[str, PackedCounts]) -> str | None:
    """Why the kept tiles do not fit ``level`` (sizes in words after packing), or None."""
    size = level.size_words
    if size is None or not counts:
        return None
    needed = sum(c.capacity for c in counts.values())
    if needed <= size:
        return None
    parts = ", ".join(f"{ds} {c.capacity}" for ds, c in counts.items())
    return (f"capacity exceeded at level {level.name}: needs {needed} words ({parts}), "
            f"has {size} words")


class BuiltinEngine:
    """Analytical model of timeloop-model for uniform mappings (see `analysis` for semantics)."""

    name = "builtin"

    def evaluate(self, arch: Arch, problem: Problem, mapping: Mapping,
                 energy_table: EnergyTable | None = None) -> Stats:
        """Stats of one mapping; an invalid mapping gives ``Stats(valid=False, reason=...)``."""
        try:
            factors = self._packing_factors(arch, problem)
            validate_mapping(mapping, arch, problem)
        except (MappingError, PrecisionError) as exc:
            return Stats.invalid(str(exc))
        nest = build_nest(arch, problem, mapping)
        return self.evaluate_nest(arch, problem, nest, factors, energy_table)

    @staticmethod
    def _packing_factors(arch: Arch, problem: Problem) -> list[dict[str, int]]:
        """k per (level innermost first, dataspace); PrecisionError names level, dataspace, b, W."""
        out = []
        for level in arch.inner_to_outer:
            ks = {}
            for ds in problem.shape.dataspace_names:
                bits = problem.precision.bits(ds) if ds in ("Inputs", "Weights", "Outputs") else None
                try:
                    ks[ds] = packing_factor(bits, level.word_bits)
                except PrecisionError as exc:
                    raise PrecisionError(f"{ds} at level {level.name}: {exc.problem} "
                                         f"(b = {bits}, W = {level.word_bits})",
                                         field=f"problem.instance.bitwidths.{ds}", fix=exc.fix) from None
            out.append(ks)
        return out

    def evaluate_nest(self, arch: Arch, problem: Problem, nest: Nest, factors: list[dict[str, int]],
                      energy_table: EnergyTable | None) -> Stats:
        """Stats of an already-validated nest (shared by the scalar and batch paths' tests)."""
        raw = analyse(nest, problem)
        levels = arch.inner_to_outer
        packed = [{ds: pack(c, factors[i][ds]) for ds, c in raw[i].items()} for i in range(len(levels))]
        for level, counts in zip(levels, packed):
            problem_text = capacity_problem(level, counts)
            if problem_text:
                return Stats.invalid(problem_text)
        compute_cycles = nest.temporal_iterations()
        level_stats = []
        cycles = compute_cycles
        for level, counts in zip(levels, packed):
            energies = storage_energies(level, energy_table)
            spaces = {}
            for ds, c in counts.items():
                energy = dataspace_energy(level, c, energies.read, energies.write)
                spaces[ds] = DataspaceStats(c.capacity, c.reads, c.fills, c.updates, c.k, energy)
            lc = level_cycles(level, counts, compute_cycles)
            cycles = max(cycles, lc)
            level_stats.append(LevelStats(level.name, sum(s.energy_pj for s in spaces.values()), lc,
                                          spaces))
        macs = problem.macs
        mac_energy = macs * compute_energy(arch.arithmetic, energy_table)
        total = mac_energy + sum(lv.energy_pj for lv in level_stats)
        used_units = nest.instances_above(-1)
        utilization = used_units / arch.arithmetic.instances * compute_cycles / cycles if cycles else 0.0
        return Stats(valid=True, reason=None, energy_pj=total, cycles=cycles, utilization=utilization,
                     macs=macs, pj_per_mac=total / macs if macs else 0.0, mac_energy_pj=mac_energy,
                     levels=tuple(level_stats))
