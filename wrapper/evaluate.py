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

from .engine import BuiltinEngine
from .engine.energy_model import builtin_energy_table
from .errors import QuantMapError, SpecError, report_error
from .ert import EnergyTable, art_areas, ert_from_dict
from .problem import Problem
from .specfiles import load_inputs
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


def evaluate_builtin(paths: Sequence[str | Path]) -> Stats:
    """Evaluate merged input files with the built-in engine."""
    inputs = load_inputs(paths, required=("architecture", "problem", "mapping"))
    table = energy_table_for(inputs.data, inputs.origin, inputs.arch, inputs.problem)
    return BuiltinEngine().evaluate(inputs.arch, inputs.problem, inputs.mapping(), table)


def evaluate_timeloop(paths: Sequence[str | Path]) -> Stats:
    """Hook for the real-tool backend (wrapper/timeloop): same files, same Stats."""
    from .timeloop.cli_backend import evaluate_files
    return evaluate_files(paths)


def emit_stats_json(stats: Stats, json_out: str | None, extra: dict[str, Any] | None = None) -> None:
    """Write the stats JSON (plus the ``extra`` keys) atomically to ``json_out``, or print it
    when no file is given."""
    text = json.dumps({**stats.to_dict(), **(extra or {})}, indent=2)
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
        stats = (evaluate_builtin if args.engine == "builtin" else evaluate_timeloop)(args.files)
        emit_stats_json(stats, args.json_out)
    except QuantMapError as exc:
        return report_error(exc)
    print(summary(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
