"""Accelergy energy/area reference tables (ERT/ART) and Timeloop's per-level energy lookup.

`EnergyTable` is the one type every energy source produces (Accelergy tables read here, the
built-in energy model elsewhere): component name -> action -> energy per vector access (pJ), and
component name -> area (um^2). Component names are the last segment of Accelergy's hierarchical
name with any instance range removed (``system.eyeriss.PE[0..167].ifmap_spad`` -> ``ifmap_spad``),
which is how Timeloop matches table entries to architecture levels.

Timeloop's lookup, reproduced by `storage_energies` / `compute_energy` (checked against the golden
runs): an action's energy is the maximum over its argument variants; ``read`` feeds reads and
``write`` feeds fills and updates. When the table has no such action for a level (e.g. a register
that Accelergy describes only by ``access``) or no entry at all, Timeloop falls back to its built-in
power-area table (PAT): DRAM 200 pJ per 16 bits of vector width; SRAM a linear fit in capacity
(1 unit at 0.5 KB, 6 units at 100 KB per 16-bit access, scaled by vector width and shared over a
cluster); a multiplier (bits_a/16)*(bits_b/16) pJ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import SpecError
from .yamlio import load_yaml_file

READ_ACTION = "read"
WRITE_ACTION = "write"
_RANGE = re.compile(r"\[\d+\.\.\d+\]")
COMPUTE_ACTIONS = ("compute", "mac_random", "multiply_random")


@dataclass(frozen=True)
class EnergyTable:
    """Per-component action energies (pJ per vector access) and areas (um^2)."""

    actions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    areas: Mapping[str, float] = field(default_factory=dict)
    source: str | None = None

    def action(self, component: str, action: str) -> float | None:
        """Energy of one action of a component, or None when the table lacks it."""
        return self.actions.get(component, {}).get(action)

    def has(self, component: str) -> bool:
        return component in self.actions


@dataclass(frozen=True)
class LevelEnergies:
    """Energy per vector access of a storage level by operation, and where it came from."""

    read: float
    write: float
    source: str  # "ERT" or "PAT", as Timeloop prints "Vector access energy source"


def component_name(hierarchical: str) -> str:
    """``a.b.PE[0..167].ifmap_spad`` -> ``ifmap_spad``; ``a.PEWeightBuffer[0..3]`` -> ``PEWeightBuffer``."""
    return _RANGE.sub("", str(hierarchical)).rsplit(".", 1)[-1]


def _action_energy(entries: Any) -> float:
    """Maximum energy over an action's argument variants (Timeloop keeps the costliest)."""
    if isinstance(entries, Mapping):
        entries = [entries]
    best = 0.0
    for entry in entries or []:
        if isinstance(entry, Mapping) and "energy" in entry:
            best = max(best, float(entry["energy"]))
    return best


def ert_from_dict(data: Any, source: str | None = None, art: Any = None) -> EnergyTable:
    """Build an EnergyTable from parsed ERT (and optional ART) YAML (Accelergy 0.3/0.4 tables)."""
    root = data.get("ERT", data) if isinstance(data, Mapping) else None
    tables = root.get("tables") if isinstance(root, Mapping) else None
    if not isinstance(tables, list):
        raise SpecError("no ERT 'tables' list found", file=source, field="ERT.tables",
                        fix="pass the ERT.yaml that Accelergy wrote (top-level key 'ERT')")
    actions: dict[str, dict[str, list[Any]]] = {}
    for i, table in enumerate(tables):
        if not isinstance(table, Mapping) or "name" not in table:
            raise SpecError("table entry without a name", file=source, field=f"ERT.tables[{i}]",
                            fix="each entry needs 'name' and 'actions'")
        per_action = actions.setdefault(component_name(table["name"]), {})
        for act in table.get("actions") or []:
            per_action.setdefault(str(act.get("name")), []).append(act)
    energies = {comp: {name: _action_energy(entries) for name, entries in acts.items()}
                for comp, acts in actions.items()}
    return EnergyTable(energies, art_areas(art) if art is not None else {}, source)


def art_areas(data: Any) -> dict[str, float]:
    """Component -> area from parsed ART YAML."""
    root = data.get("ART", data) if isinstance(data, Mapping) else {}
    return {component_name(t["name"]): float(t.get("area", 0.0))
            for t in (root.get("tables") or []) if isinstance(t, Mapping) and "name" in t}


def load_energy_table(ert_path: str | Path, art_path: str | Path | None = None) -> EnergyTable:
    """Read an Accelergy ERT file (and ART file) into an EnergyTable."""
    art = load_yaml_file(art_path) if art_path is not None else None
    return ert_from_dict(load_yaml_file(ert_path), str(ert_path), art)


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
