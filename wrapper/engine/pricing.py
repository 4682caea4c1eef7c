"""From unpacked counts to words, capacity checks, energy and cycles, over arrays of mappings.

Packing follows docs/packing.md: every count of a dataspace at a level becomes
ceil(count / k) words with k = floor(W / b), checked only where the level keeps the dataspace (a
narrow-word level that bypasses a dataspace never stores it). Energy is priced exactly as Timeloop
does: per operation ceil(words / block size) vector accesses times the energy per vector access,
spread over the clusters of a level. Every function works elementwise on numpy arrays and keeps
the scalar path's floating-point order, so one mapping priced alone or in a batch gives
bit-identical numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import PrecisionError
from ..spec.arch import Arch, StorageLevel
from ..spec.precision import packed_count, packing_factor
from ..spec.problem import Problem
from .analysis import RawCounts


@dataclass(frozen=True)
class PackedCounts:
    """Per-instance counts of one dataspace at one level in packed words (one entry per mapping)."""

    capacity: np.ndarray
    reads: np.ndarray
    fills: np.ndarray
    updates: np.ndarray
    k: int
    instances: np.ndarray


def packing_factors(arch: Arch, problem: Problem, keeps: Sequence[frozenset[str]]
                    ) -> list[dict[str, int]]:
    """k per (level innermost first, kept dataspace); PrecisionError names level, dataspace, b, W
    for a kept dataspace the level cannot store."""
    out = []
    for level, kept in zip(arch.inner_to_outer, keeps):
        ks = {}
        for ds in problem.shape.dataspace_names:
            if ds not in kept:
                continue
            bits = problem.precision.bits(ds) if ds in ("Inputs", "Weights", "Outputs") else None
            try:
                ks[ds] = packing_factor(bits, level.word_bits)
            except PrecisionError as exc:
                raise PrecisionError(f"{ds} at level {level.name}: {exc.problem} "
                                     f"(b = {bits}, W = {level.word_bits})",
                                     field=f"problem.instance.bitwidths.{ds}", fix=exc.fix) from None
        out.append(ks)
    return out


def pack(raw: RawCounts, k: int) -> PackedCounts:
    """Counts of operands -> counts of words holding k operands each."""
    return PackedCounts(packed_count(raw.tile, k), packed_count(raw.reads, k),
                        packed_count(raw.fills, k), packed_count(raw.updates, k), k, raw.instances)


def utilized_clusters(level: StorageLevel, instances: np.ndarray | int) -> np.ndarray | int:
    """Clusters sharing an access. Timeloop assumes the utilized instances are spread over all
    clusters of a clustered level, one per cluster until every cluster holds one (golden Simba
    PEWeightRegs: 4 of 4 clusters at 4 or more utilized instances, 3 at 3); unclustered levels:
    one per instance."""
    if level.cluster_size <= 1:
        return instances
    return np.minimum(instances, max(1, -(-level.instances // level.cluster_size)))


def dataspace_energy(level: StorageLevel, counts: PackedCounts, read_pj: float,
                     write_pj: float) -> np.ndarray:
    """Energy of all instances: vector accesses per operation times energy per vector access."""
    block = max(1, level.block_size)
    per_cluster = (packed_count(counts.reads, block) * read_pj
                   + packed_count(counts.fills, block) * write_pj
                   + packed_count(counts.updates, block) * write_pj)
    return per_cluster * utilized_clusters(level, counts.instances)


def level_cycles(level: StorageLevel, counts: Sequence[PackedCounts],
                 compute_cycles: np.ndarray) -> np.ndarray:
    """Cycles of one level: compute cycles stretched by its most limiting bandwidth.

    Timeloop sums the needed words per cycle over dataspaces (last dataspace first) and divides
    the compute cycles by the throttling factor bandwidth / need; the floating-point order matters
    for the last cycle, so it is kept.
    """
    read_need = write_need = np.zeros(compute_cycles.shape)
    for c in reversed(counts):
        read_need = read_need + c.reads / compute_cycles
        write_need = write_need + c.updates / compute_cycles
        write_need = write_need + c.fills / compute_cycles
    throttle = np.ones(compute_cycles.shape)
    for bandwidth, need in ((level.read_bandwidth, read_need), (level.write_bandwidth, write_need),
                            (level.shared_bandwidth, read_need + write_need)):
        if bandwidth:
            over = need > bandwidth
            throttle = np.where(over, np.minimum(throttle, bandwidth / np.where(over, need, 1.0)),
                                throttle)
    return np.ceil(compute_cycles / throttle).astype(np.int64)


def capacity_needed(counts: dict[str, PackedCounts], n: int) -> np.ndarray:
    """Words of all kept tiles of a level after packing."""
    needed = np.zeros(n, dtype=np.int64)
    for c in counts.values():
        needed = needed + c.capacity
    return needed


def capacity_reason(level: StorageLevel, counts: dict[str, PackedCounts], row: int) -> str:
    """Why the kept tiles of mapping ``row`` do not fit ``level`` (sizes in words after packing)."""
    parts = ", ".join(f"{ds} {int(c.capacity[row])}" for ds, c in counts.items())
    needed = sum(int(c.capacity[row]) for c in counts.values())
    return (f"capacity exceeded at level {level.name}: needs {needed} words ({parts}), "
            f"has {level.size_words} words")
