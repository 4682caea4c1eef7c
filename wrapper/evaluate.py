"""``python -m wrapper.evaluate FILE...``: evaluate one mapping, a timeloop-model drop-in.

Takes the YAML files timeloop-model takes (arch, components, problem, mapping, optional ERT/ART;
top-level keys merged), writes the `Stats` JSON (``--json OUT`` or stdout) and a short summary on
stderr. An invalid mapping is a result (``valid: false`` with the reason, exit 0); unreadable or
malformed files are errors (one line on stderr, exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .costmodel import CostModel, get_cost_model
from .engine.energy_model import builtin_energy_table
from .errors import QuantMapError, SpecError, report_error
from .ert import EnergyTable, art_areas, ert_from_dict
from .problem import Problem
from .specfiles import SpecInputs, load_inputs
from .stats import Stats
from .yamlio import write_text_atomic

ENGINES = ("builtin", "timeloop")


def energy_table_for(data: dict[str, Any], origin: dict[str, str], arch: Any,
                     problem: Problem) -> EnergyTable:
    """The ERT/ART among the inputs if any (what timeloop-model would use), else the built-in model."""
    if "ERT" in data:
        return ert_from_dict(data["ERT"], origin.get("ERT"), data.get("ART"))
    table = builtin_energy_table(arch, problem.precision)
    if "ART" in data:
        return EnergyTable(table.actions, art_areas(data["ART"]), table.source)
    return table


def cost_model_for(engine: str, inputs: SpecInputs) -> CostModel:
    """The engine, given the ERT/ART among the inputs (the real tools get the files themselves)."""
    if engine == "timeloop":
        from .timeloop.energy_tables import tables_from_inputs
        return get_cost_model("timeloop", energy_tables=tables_from_inputs(inputs.data,
                                                                           inputs.origin))
    return get_cost_model(engine, energy_table=energy_table_for(
        inputs.data, inputs.origin, inputs.arch, inputs.problem))


def print_notes(inputs: SpecInputs, model: CostModel) -> None:
    """What changed the inputs or how the numbers were obtained, one ``note:`` line each."""
    for note in (*inputs.notes, *getattr(model, "notes", ())):
        print(f"note: {note}", file=sys.stderr)


def evaluate_files(paths: Sequence[str | Path], engine: str = "builtin") -> Stats:
    """Evaluate the mapping among the merged input files with ``engine``."""
    inputs = load_inputs(paths, required=("architecture", "problem", "mapping"))
    model = cost_model_for(engine, inputs)
    stats = model.evaluate(inputs.arch, inputs.problem, inputs.mapping())
    print_notes(inputs, model)
    return stats


def emit_stats_json(stats: Stats, json_out: str | None) -> None:
    """Write the stats JSON atomically to ``json_out``, or print it when no file is given."""
    text = json.dumps(stats.to_dict(), indent=2)
    if not json_out:
        print(text)
        return
    try:
        write_text_atomic(text + "\n", json_out)
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=json_out,
                        fix="check the output path") from None


def summary(stats: Stats) -> str:
    """A short human summary for stderr."""
    if not stats.valid:
        return f"invalid mapping: {stats.reason}"
    lines = [f"energy {stats.energy_pj / 1e6:.3f} uJ ({stats.pj_per_mac:.3f} pJ/MAC), "
             f"cycles {stats.cycles}, utilization {stats.utilization:.2%}, MACs {stats.macs}"]
    for level in stats.levels:
        lines.append(f"  {level.name:<16} {level.energy_pj / 1e6:10.3f} uJ  {level.cycles} cycles")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wrapper.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="YAML inputs (arch, components, problem, mapping, ERT, ART)")
    parser.add_argument("--json", dest="json_out", help="write the result JSON here (default: stdout)")
    parser.add_argument("--engine", choices=ENGINES, default="builtin")
    args = parser.parse_args(argv)
    try:
        stats = evaluate_files(args.files, args.engine)
        emit_stats_json(stats, args.json_out)
    except QuantMapError as exc:
        return report_error(exc)
    print(summary(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
