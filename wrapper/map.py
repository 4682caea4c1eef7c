"""``python -m wrapper.map FILE... -o DIR``: find the best mapping, a timeloop-mapper drop-in.

Takes the YAML files timeloop-mapper takes (arch, components, constraints, problem, optional
ERT/ART, optional ``mapper:`` section; top-level keys merged), writes the best mapping as
Timeloop mapping YAML to ``DIR/<name>.map.yaml`` (``<name>`` = the mapper section's
``out_prefix``, else the problem file's stem) and its `Stats` JSON (the schema of
``python -m wrapper.evaluate``) to ``--json OUT`` or stdout; a summary goes to stderr.

Mapper section keys: ``metric`` or Timeloop's ``optimization-metrics`` (first = metric, second =
tie-breaker), ``secondary-metric``, ``budget``/``max-evaluations``, ``max-seconds``, ``seed``.
Timeloop's own search knobs (algorithm, threads, victory condition, ...) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping as MappingType
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .costmodel import MapperSettings
from .errors import ConfigError, QuantMapError, report_error, unknown_name_fix
from .evaluate import ENGINES, cost_model_for, emit_stats_json, print_notes, summary
from .mapping import Mapping, dump_mapping
from .specfiles import load_inputs
from .stats import Stats

_SETTING_KEYS = {"metric": "metric", "secondary-metric": "secondary_metric",
                 "secondary_metric": "secondary_metric", "budget": "max_evaluations",
                 "max-evaluations": "max_evaluations", "max_evaluations": "max_evaluations",
                 "max-seconds": "max_seconds", "max_seconds": "max_seconds", "seed": "seed"}
_TIMELOOP_KEYS = ("out_prefix", "optimization-metrics", "optimization_metrics", "algorithm",
                  "num-threads", "num_threads", "timeout", "victory-condition", "victory_condition",
                  "search-size", "search_size", "max-permutations-per-if-visit", "live-status",
                  "log-stats", "log-suboptimal", "log-oaves", "log-oaves-mappings", "diagnostics",
                  "penalize-consecutive-bypass-fails", "sync-interval", "filter-revisits")


def mapper_settings(section: Any, source: str | None = None) -> MapperSettings:
    """MapperSettings from a ``mapper:`` section (None gives the defaults)."""
    if section is None:
        return MapperSettings()
    if not isinstance(section, MappingType):
        raise ConfigError("the mapper section must be a map", file=source, field="mapper",
                          fix="write e.g. 'mapper: {metric: edp, budget: 20000, seed: 0}'")
    values: dict[str, Any] = {}
    metrics = section.get("optimization-metrics", section.get("optimization_metrics"))
    if metrics is not None:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        values["metric"] = str(metrics[0])
        if len(metrics) > 1:
            values["secondary_metric"] = str(metrics[1])
    for key, value in section.items():
        if key in _SETTING_KEYS:
            values[_SETTING_KEYS[key]] = value
        elif key not in _TIMELOOP_KEYS:
            raise ConfigError(f"unknown mapper key '{key}'", file=source, field=f"mapper.{key}",
                              fix=unknown_name_fix(str(key), list(_SETTING_KEYS), "mapper keys"))
    for name in ("max_evaluations", "seed"):
        if name in values and (isinstance(values[name], bool) or not isinstance(values[name], int)):
            raise ConfigError(f"{name} = {values[name]!r} is not an integer", file=source,
                              field=f"mapper.{name}", fix="use a whole number")
    return MapperSettings(**values)


def map_files(paths: Sequence[str | Path], out_dir: str | Path,
              engine: str = "builtin") -> tuple[Path, Mapping, Stats]:
    """Search the best mapping for the merged input files; write ``<name>.map.yaml``."""
    inputs = load_inputs(paths)
    data, origin = inputs.data, inputs.origin
    settings = mapper_settings(data.get("mapper"), origin.get("mapper"))
    model = cost_model_for(engine, inputs)
    mapping, stats = model.search(inputs.arch, inputs.problem, settings)
    print_notes(inputs, model)
    section = data.get("mapper") or {}
    name = str(section.get("out_prefix") or Path(origin["problem"]).stem)
    path = dump_mapping(mapping, Path(out_dir) / f"{name}.map.yaml")
    return path, mapping, stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wrapper.map", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="YAML inputs (arch, components, constraints, "
                        "problem, optional ERT/ART and mapper section)")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for <name>.map.yaml")
    parser.add_argument("--json", dest="json_out", help="write the stats JSON here (default: stdout)")
    parser.add_argument("--engine", choices=ENGINES, default="builtin")
    args = parser.parse_args(argv)
    try:
        path, _, stats = map_files(args.files, args.out_dir, args.engine)
        emit_stats_json(stats, args.json_out)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"mapping: {path}", file=sys.stderr)
    print(summary(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
