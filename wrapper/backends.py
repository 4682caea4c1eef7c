"""The cost model by name, and the file-level evaluate/map entry points of both engines.

The built-in engine and the real Timeloop binaries sit behind the same `CostModel` protocol;
this module is the one place that picks one, so the command-line tools and the main job take the
same path (inputs, ERT/ART, depthwise adaptation, errors) whichever engine runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from .engine.constraints import build_mapspace
from .engine.costmodel import BuiltinCostModel
from .engine.energy_model import builtin_energy_table
from .errors import ConfigError, unknown_name_fix
from .spec.costmodel import OUT_PREFIX, CostModel, EngineSettings, mapper_settings
from .spec.ert import EnergyTable, art_areas, ert_from_dict
from .spec.inputs import SpecInputs, load_inputs
from .spec.mapping import Mapping, dump_mapping
from .spec.problem import Problem
from .spec.stats import Stats
from .spec.yamlio import check_file_path, write_text_atomic
from .timeloop.costmodel import TimeloopCostModel
from .timeloop.energy_tables import tables_from_inputs

ENGINES = {"builtin": BuiltinCostModel, "timeloop": TimeloopCostModel}


def get_cost_model(name: str = "builtin", **options: Any) -> CostModel:
    """Instantiate a cost model by name ('builtin' or 'timeloop')."""
    if name not in ENGINES:
        raise ConfigError(f"unknown engine '{name}'", field="engine",
                          fix=unknown_name_fix(name, sorted(ENGINES), "engines"))
    return ENGINES[name](**options)


def energy_table_for(data: dict[str, Any], origin: dict[str, str], arch: Any,
                     problem: Problem, mac_width_scaling: bool = False) -> EnergyTable:
    """The ERT/ART among the inputs if any (what timeloop-model would use), else the built-in
    model (its MAC scaled to the problem's operand widths only with ``mac_width_scaling``)."""
    if "ERT" in data:
        return ert_from_dict(data["ERT"], origin.get("ERT"), data.get("ART"), origin.get("ART"))
    table = builtin_energy_table(arch, problem.precision if mac_width_scaling else None)
    if "ART" in data:
        return EnergyTable(table.actions, art_areas(data["ART"], origin.get("ART")), table.source)
    return table


def cost_model_for(engine: str, inputs: SpecInputs, settings: EngineSettings) -> CostModel:
    """The engine for merged input files, with the ERT/ART among them: the built-in engine gets
    the table read from them (else its built-in energy model), the real tools get the files.
    ``settings`` mean the same in both engines (`EngineSettings`)."""
    options = settings.options()
    if engine == "timeloop":
        return get_cost_model("timeloop", **options,
                              energy_tables=tables_from_inputs(inputs.data, inputs.origin))
    return get_cost_model(engine, **options, energy_table=energy_table_for(
        inputs.data, inputs.origin, inputs.arch, inputs.problem, settings.mac_width_scaling))


def print_notes(inputs: SpecInputs, model: CostModel) -> None:
    """What changed the inputs or how the numbers were obtained, one ``note:`` line each."""
    for note in (*inputs.notes, *getattr(model, "notes", ())):
        print(f"note: {note}", file=sys.stderr)


def evaluate_files(paths: Sequence[str | Path], engine: str = "builtin",
                   settings: EngineSettings = EngineSettings()) -> Stats:
    """Evaluate the mapping among the merged timeloop-model input files with ``engine``; the
    stats name the engine ``settings`` they were obtained under."""
    inputs = load_inputs(paths, required=("architecture", "problem", "mapping"))
    model = cost_model_for(engine, inputs, settings)
    stats = model.evaluate(inputs.arch, inputs.problem, inputs.mapping())
    print_notes(inputs, model)
    return settings.stamp(stats)


def map_files(paths: Sequence[str | Path], out_dir: str | Path,
              engine: str = "builtin", settings: EngineSettings = EngineSettings()
              ) -> tuple[Path, Mapping, Stats]:
    """Search the best mapping for the merged timeloop-mapper input files with ``engine``;
    write ``<name>.map.yaml`` (``<name>``: the mapper section's ``out_prefix``, else the problem
    file's stem)."""
    inputs = load_inputs(paths)
    mapper_notes: list[str] = []
    search = mapper_settings(inputs.data.get("mapper"), inputs.origin.get("mapper"),
                             notes=mapper_notes)
    for note in mapper_notes:  # Timeloop's own keys that QuantMap's mapper does not use
        print(f"note: {note}", file=sys.stderr)
    section = inputs.data.get("mapper") or {}
    name = OUT_PREFIX.check(section.get("out_prefix") or Path(inputs.origin["problem"]).stem,
                            "mapper.out_prefix", inputs.origin.get("mapper"))
    target = check_file_path(Path(out_dir) / f"{name}.map.yaml", "-o")  # before the search
    model = cost_model_for(engine, inputs, settings)
    if engine == "builtin":  # what the constraint resolution relaxed, as Timeloop does
        for note in build_mapspace(inputs.arch, inputs.problem).notes:
            print(f"note: {note}", file=sys.stderr)
    mapping, stats = model.find_mapping(inputs.arch, inputs.problem, search)
    stats = settings.stamp(stats)
    print_notes(inputs, model)
    path = dump_mapping(mapping, target)
    if stats.certificate is not None:  # the proof heads the mapping file as a comment
        write_text_atomic(f"# {stats.certificate.comment()}\n{path.read_text()}", path)
    return path, mapping, stats
