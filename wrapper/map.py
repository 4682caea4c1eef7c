"""``python -m wrapper.map FILE... -o DIR``: find the best mapping, a timeloop-mapper drop-in.

Takes the YAML files timeloop-mapper takes (arch, components, constraints, problem, optional
ERT/ART, optional ``mapper:`` section; top-level keys merged), writes the best mapping as
Timeloop mapping YAML to ``DIR/<name>.map.yaml`` (``<name>`` = the mapper section's
``out_prefix``, else the problem file's stem) and its `Stats` JSON (the schema of
``python -m wrapper.evaluate``) to ``--json OUT`` or stdout; a summary goes to stderr.

Mapper section keys: ``metric`` or Timeloop's ``optimization-metrics`` (first = metric, second =
tie-breaker), ``secondary-metric``, ``budget``/``max-evaluations``, ``max-seconds``, ``seed``,
``exact`` (prove the optimum first; default true) and ``exact-budget``. The built-in mapper's
certificate (optimal, or the gap bound) is the ``certificate`` key of the stats JSON and the
first line of the mapping file.
Timeloop's own search knobs (algorithm, threads, victory condition, ...) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping as MappingType
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .costmodel import MapperSettings, get_cost_model
from .engine.certificate import Certificate
from .errors import ConfigError, QuantMapError, report_error, unknown_name_fix
from .evaluate import ENGINES, emit_stats_json, energy_table_for, summary
from .mapping import Mapping, dump_mapping
from .specfiles import load_inputs
from .stats import Stats
from .yamlio import write_text_atomic

_SETTING_KEYS = {"metric": "metric", "secondary-metric": "secondary_metric",
                 "secondary_metric": "secondary_metric", "budget": "max_evaluations",
                 "max-evaluations": "max_evaluations", "max_evaluations": "max_evaluations",
                 "max-seconds": "max_seconds", "max_seconds": "max_seconds", "seed": "seed",
                 "exact": "exact", "exact-budget": "exact_budget", "exact_budget": "exact_budget"}
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
    if "exact" in values and not isinstance(values["exact"], bool):
        raise ConfigError(f"exact = {values['exact']!r} is not true or false", file=source,
                          field="mapper.exact", fix="write exact: true or exact: false")
    for name in ("max_evaluations", "seed", "exact_budget"):
        if name in values and (isinstance(values[name], bool) or not isinstance(values[name], int)):
            raise ConfigError(f"{name} = {values[name]!r} is not an integer", file=source,
                              field=f"mapper.{name}", fix="use a whole number")
    return MapperSettings(**values)


def map_files(paths: Sequence[str | Path], out_dir: str | Path, engine: str = "builtin"
              ) -> tuple[Path, Mapping, Stats, Certificate | None]:
    """Search the best mapping for the merged input files; write ``<name>.map.yaml`` (headed by
    the certificate of the built-in mapper's answer as a comment)."""
    inputs = load_inputs(paths)
    data, origin, arch, problem = inputs.data, inputs.origin, inputs.arch, inputs.problem
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    settings = mapper_settings(data.get("mapper"), origin.get("mapper"))
    certificate = None
    if engine == "builtin":
        model = get_cost_model("builtin", energy_table=energy_table_for(data, origin, arch, problem))
        mapping, stats, certificate = model.certified_search(arch, problem, settings)
    else:
        mapping, stats = get_cost_model(engine).search(arch, problem, settings)
    section = data.get("mapper") or {}
    name = str(section.get("out_prefix") or Path(origin["problem"]).stem)
    path = dump_mapping(mapping, Path(out_dir) / f"{name}.map.yaml")
    if certificate is not None:
        write_text_atomic(f"# {certificate.comment()}\n{path.read_text()}", path)
    return path, mapping, stats, certificate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wrapper.map", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="YAML inputs (arch, components, constraints, "
                        "problem, optional ERT/ART and mapper section)")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for <name>.map.yaml")
    parser.add_argument("--json", dest="json_out", help="write the stats JSON here (default: stdout)")
    parser.add_argument("--engine", choices=ENGINES, default="builtin")
    args = parser.parse_args(argv)
    try:
        path, _, stats, certificate = map_files(args.files, args.out_dir, args.engine)
        emit_stats_json(stats, args.json_out,
                        {"certificate": certificate.to_dict()} if certificate else None)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"mapping: {path}", file=sys.stderr)
    print(summary(stats), file=sys.stderr)
    if certificate is not None:
        print(certificate.comment(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
