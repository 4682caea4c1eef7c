"""How the engine prices one action, as timeloop-model does.

Timeloop's lookup, reproduced by `storage_energies` / `compute_energy` (checked against the golden
runs): an action's energy is the maximum over its argument variants; ``read`` feeds reads and
``write`` feeds fills and updates. When the table has no such action for a level (e.g. a register
that Accelergy describes only by ``access``) or no entry at all, Timeloop falls back to its built-in
power-area table (PAT): DRAM 200 pJ per 16 bits of vector width; SRAM a linear fit in capacity
(1 unit at 0.5 KB, 6 units at 100 KB per 16-bit access, scaled by vector width and shared over a
cluster); a multiplier (bits_a/16)*(bits_b/16) pJ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec.ert import READ_ACTION, WRITE_ACTION, EnergyTable

COMPUTE_ACTIONS = ("compute", "mac_random", "multiply_random")


@dataclass(frozen=True)
class LevelEnergies:
    """Energy per vector access of a storage level by operation, and where it came from."""

    read: float
    write: float
    source: str  # "ERT" or "PAT", as Timeloop prints "Vector access energy source"


def pat_sram_energy(entries: int, width_bits: int) -> float:
    """Timeloop's placeholder SRAM model: linear in KB between (0.5 KB, 1) and (100 KB, 6) units
    per 16-bit access, scaled by the access width."""
    slope = (6.0 - 1.0) / (100.0 - 0.5)
    kbytes = entries * width_bits / (8 * 1024)
    return (slope * (kbytes - 0.5) + 1.0) * width_bits / 16


def pat_dram_energy(width_bits: int) -> float:
    """Timeloop's placeholder DRAM model: 200 pJ per 16 bits of vector width."""
    return 200.0 * width_bits / 16


def pat_storage_energy(level: Any) -> float:
    """Built-in vector access energy of a storage level (per instance of a cluster)."""
    width = level.word_bits * level.block_size
    if (level.technology or "").upper() == "DRAM" or level.cls.upper() == "DRAM":
        return pat_dram_energy(width)
    if level.depth is None:
        return 0.0
    cluster = max(1, level.cluster_size)
    return pat_sram_energy(level.depth, width * cluster) / cluster


def storage_energies(level: Any, table: EnergyTable | None) -> LevelEnergies:
    """Read and write energy per vector access of ``level`` as timeloop-model would use them."""
    read = table.action(level.name, READ_ACTION) if table else None
    write = table.action(level.name, WRITE_ACTION) if table else None
    if read is None or write is None:
        fallback = pat_storage_energy(level)
        source = "ERT" if (table is not None and table.has(level.name)) else "PAT"
        return LevelEnergies(fallback if read is None else read,
                             fallback if write is None else write, source)
    return LevelEnergies(read, write, "ERT")


def compute_energy(arithmetic: Any, table: EnergyTable | None) -> float:
    """Energy of one MAC: the table's compute action, else the PAT multiplier model."""
    if table is not None and table.has(arithmetic.name):
        acts = table.actions[arithmetic.name]
        for name in COMPUTE_ACTIONS:
            if name in acts:
                return acts[name]
        if acts:
            return max(acts.values())
    bits = arithmetic.word_bits
    return (bits / 16.0) * (bits / 16.0)
