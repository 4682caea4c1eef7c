"""Accelergy energy/area reference tables (ERT/ART) as QuantMap reads them.

`EnergyTable` is the one type every energy source produces (Accelergy tables read here, the
built-in energy model elsewhere): component name -> action -> energy per vector access (pJ), and
component name -> area (um^2). Component names are the last segment of Accelergy's hierarchical
name with any instance range removed (``system.eyeriss.PE[0..167].ifmap_spad`` -> ``ifmap_spad``),
which is how Timeloop matches table entries to architecture levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpecError
from .settings import Rule
from .yamlio import load_yaml_file

READ_ACTION = "read"
WRITE_ACTION = "write"

# DRAM interface + array energy per bit transferred.
# LPDDR4: 8 pJ/bit, fitted to real Accelergy estimates (CactiDRAM: 512 pJ per 64-bit access on both specs).
# HBM2 3.9 pJ/bit and GDDR5 14 pJ/bit: O'Connor et al., "Fine-Grained DRAM", MICRO 2017.
# DDR3 about 70 pJ/bit: Malladi et al., "Towards Energy-Proportional Datacenter Memory with
# Mobile DRAM", ISCA 2012 (DDR3 incl. I/O and termination).
# The templates accept these DRAM types; the built-in energy model prices them.
DRAM_PJ_PER_BIT: Mapping[str, float] = {"LPDDR4": 8.0, "HBM2": 3.9, "GDDR5": 14.0, "DDR3": 70.0}
_RANGE = re.compile(r"\[\d+\.\.\d+\]")


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


def component_name(hierarchical: str) -> str:
    """``a.b.PE[0..167].ifmap_spad`` -> ``ifmap_spad``; ``a.PEWeightBuffer[0..3]`` -> ``PEWeightBuffer``."""
    return _RANGE.sub("", str(hierarchical)).rsplit(".", 1)[-1]


_ENERGY = Rule(float, minimum=0.0, maximum=1e12, example=1.5, help="pJ per access")


def ert_from_dict(data: Any, source: str | None = None, art: Any = None,
                  art_source: str | None = None) -> EnergyTable:
    """Build an EnergyTable from parsed ERT (and optional ART) YAML (Accelergy 0.3/0.4 tables)."""
    root = data.get("ERT", data) if isinstance(data, Mapping) else None
    tables = root.get("tables") if isinstance(root, Mapping) else None
    if not isinstance(tables, list):
        raise SpecError("no ERT 'tables' list found", file=source, field="ERT.tables",
                        fix="pass the ERT.yaml that Accelergy wrote (top-level key 'ERT')")
    energies: dict[str, dict[str, float]] = {}
    for i, table in enumerate(tables):
        where = f"ERT.tables[{i}]"
        if not isinstance(table, Mapping) or "name" not in table:
            raise SpecError("table entry without a name", file=source, field=where,
                            fix="each entry needs 'name' and 'actions'")
        acts = table.get("actions") or []
        if not isinstance(acts, list) or not all(isinstance(a, Mapping) for a in acts):
            raise SpecError("actions is not a list of named actions", file=source,
                            field=f"{where}.actions", fix="pass the ERT.yaml that Accelergy wrote")
        per_action = energies.setdefault(component_name(table["name"]), {})
        for j, act in enumerate(acts):
            # argument variants of an action are entries of the same name: keep the costliest,
            # as Timeloop does
            name = str(act.get("name"))
            energy = _ENERGY.check(act["energy"], f"{where}.actions[{j}].energy", source,
                                   SpecError) if "energy" in act else 0.0
            per_action[name] = max(energy, per_action.get(name, 0.0))
    return EnergyTable(energies, art_areas(art, art_source) if art is not None else {}, source)


_AREA = Rule(float, minimum=0.0, maximum=1e15, example=100.0, help="um^2")


def art_areas(data: Any, source: str | None = None) -> dict[str, float]:
    """Component -> area from parsed ART YAML."""
    root = data.get("ART", data) if isinstance(data, Mapping) else data
    tables = root.get("tables") if isinstance(root, Mapping) else None
    if not isinstance(tables, list):
        raise SpecError("ART 'tables' is not a list", file=source, field="ART.tables",
                        fix="pass the ART.yaml that Accelergy wrote (top-level key 'ART')")
    return {component_name(t["name"]): _AREA.check(t.get("area", 0.0), f"ART.tables[{i}].area",
                                                   source, SpecError)
            for i, t in enumerate(tables) if isinstance(t, Mapping) and "name" in t}


def load_energy_table(ert_path: str | Path, art_path: str | Path | None = None) -> EnergyTable:
    """Read an Accelergy ERT file (and ART file) into an EnergyTable."""
    art = load_yaml_file(art_path) if art_path is not None else None
    return ert_from_dict(load_yaml_file(ert_path), str(ert_path), art,
                         None if art_path is None else str(art_path))
