"""``quantmap explore [--config exp.yaml] [--set key=value ...] [--resume] [-o DIR]``

With no arguments it runs the default experiment (digits data, MobileNetV1 x0.25, Eyeriss-like,
built-in engine, small budget) and prints where the results are.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Sequence

from .cli import OneLineParser, add_engine_options, parse_set_options
from ..errors import QuantMapError, report_error
from ..spec.yamlio import check_folder_path
from ..explore.config import load_config
from ..explore.executors import EXECUTORS
from ..explore.experiment import resolve_config, run_experiment


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog,
                     description="Joint NSGA-II search of per-layer bit widths and mappings.")
    parser.add_argument("--config", help="experiment YAML (default: the built-in demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. search.generations=10 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in the -o folder")
    parser.add_argument("-o", "--out", help="results folder (default: results/<name>)")
    add_engine_options(parser)
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="where mapper and QAT jobs run (default: local process pool)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="an existing Ray cluster (host:port or 'auto'; implies --executor "
                             "ray); without it --executor ray starts a local instance")
    return parser


def executor_overrides(executor: str | None, ray_address: str | None) -> dict[str, object]:
    """The config overrides of --executor / --ray-address (a cluster address implies Ray)."""
    overrides: dict[str, object] = {}
    if executor is not None or ray_address is not None:
        overrides["executor.kind"] = executor or "ray"
    if ray_address is not None:
        overrides["executor.address"] = ray_address
    return overrides


def engine_overrides(timeloop_version: str | None,
                     mac_width_scaling: bool | None) -> dict[str, object]:
    """The config overrides of the engine flags (those not given: the config decides)."""
    overrides: dict[str, object] = {}
    if timeloop_version is not None:
        overrides["engine.timeloop_version"] = timeloop_version
    if mac_width_scaling is not None:
        overrides["engine.mac_width_scaling"] = mac_width_scaling
    return overrides


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the run stops its workers and tools and closes its store."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, prog: str = "quantmap explore") -> int:
    args = None
    out: Path | None = None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args = _parser(prog).parse_args(argv)
        overrides = {**parse_set_options(args.set),
                     **executor_overrides(args.executor, args.ray_address),
                     **engine_overrides(args.timeloop_version, args.mac_width_scaling)}
        if args.out:
            out = check_folder_path(args.out, "-o")
        else:
            out = Path("results") / load_config(args.config, overrides).name
        config = resolve_config(args.config, overrides, out, args.resume)
        folder = run_experiment(config, out, resume=args.resume).out
    except KeyboardInterrupt:
        if out is None:
            return 130
        print(f"interrupted; the results so far are kept: resume with 'quantmap explore "
              f"--resume -o {out}'", file=sys.stderr)
        return 130
    except QuantMapError as exc:
        if args is not None:  # all explore does follows from its config
            exc = exc.located(args.config or "<default experiment>")
        return report_error(exc)
    print(f"results: {folder.resolve()} (pareto.csv, pareto.json, candidates.csv, plots/, "
          "mappings/, report.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
