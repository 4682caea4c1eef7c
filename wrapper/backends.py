"""The cost model by name, and the file-level evaluate/map entry points of both engines.

The built-in engine and the real Timeloop binaries sit behind the same `CostModel` protocol;
this module is the one place that picks one, so the command-line tools and the main job take the
same path (inputs, ERT/ART, depthwise adaptation, errors) whichever engine runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from .engine.builtin import BuiltinEngine
from .engine.constraints import build_mapspace
from .engine.costmodel import BuiltinCostModel
from .engine.energy_model import builtin_energy_table
from .errors import ConfigError, unknown_name_fix
from .spec.costmodel import OUT_PREFIX, CostModel, mapper_settings
from .spec.ert import EnergyTable, art_areas, ert_from_dict
from .spec.inputs import load_inputs
from .spec.mapping import Mapping, dump_mapping
from .spec.problem import Problem
from .spec.stats import Stats
from .timeloop.cli_backend import evaluate_files as evaluate_with_timeloop
from .timeloop.costmodel import TimeloopCostModel

ENGINES = {"builtin": BuiltinCostModel, "timeloop": TimeloopCostModel}


def get_cost_model(name: str = "builtin", **options: Any) -> CostModel:
    """Instantiate a cost model by name ('builtin' or 'timeloop')."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine '{name}'", field="engine",
                          fix=unknown_name_fix(name, sorted(ENGINES), "engines"))
    return ENGINES[name](**options)


def energy_table_for(data: dict[str, Any], origin: dict[str, str], arch: Any,
                     problem: Problem) -> EnergyTable:
    """The ERT/ART among the inputs if any (what timeloop-model would use), else the built-in model."""
    if "ERT" in data:
        return ert_from_dict(data["ERT"], origin.get("ERT"), data.get("ART"), origin.get("ART"))
    table = builtin_energy_table(arch, problem.precision)
    if "ART" in data:
        return EnergyTable(table.actions, art_areas(data["ART"], origin.get("ART")), table.source)
    return table


def evaluate_files(paths: Sequence[str | Path], engine: str = "builtin") -> Stats:
    """Evaluate the mapping in merged timeloop-model input files with the chosen engine."""
    if engine != "builtin":
        return evaluate_with_timeloop(paths)
    inputs = load_inputs(paths, required=("architecture", "problem", "mapping"))
    table = energy_table_for(inputs.data, inputs.origin, inputs.arch, inputs.problem)
    return BuiltinEngine().evaluate(inputs.arch, inputs.problem, inputs.mapping(), table)


def map_files(paths: Sequence[str | Path], out_dir: str | Path,
              engine: str = "builtin") -> tuple[Path, Mapping, Stats]:
    """Search the best mapping for the merged input files; write ``<name>.map.yaml``."""
    inputs = load_inputs(paths)
    data, origin, arch, problem = inputs.data, inputs.origin, inputs.arch, inputs.problem
    space_notes = build_mapspace(arch, problem).notes if engine == "builtin" else ()
    for note in (*inputs.notes, *space_notes):
        print(f"note: {note}", file=sys.stderr)
    settings = mapper_settings(data.get("mapper"), origin.get("mapper"))
    if engine == "builtin":
        model = get_cost_model("builtin", energy_table=energy_table_for(data, origin, arch, problem))
    else:
        model = get_cost_model(engine)
    mapping, stats = model.search(arch, problem, settings)
    section = data.get("mapper") or {}
    name = OUT_PREFIX.check(section.get("out_prefix") or Path(origin["problem"]).stem,
                            "mapper.out_prefix", origin.get("mapper"))
    path = dump_mapping(mapping, Path(out_dir) / f"{name}.map.yaml")
    return path, mapping, stats
