"""Shared pieces of the command-line tools: one-line argument errors, ``--set`` options, stats
output. Every ``quantmap VERB`` parses its arguments here and calls library code."""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from ..spec.costmodel import FORK, TIMELOOP_VERSIONS, EngineSettings
from ..errors import ConfigError, SpecError
from ..spec.stats import Stats
from ..spec.yamlio import parse_yaml_text, write_text_atomic


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message, field="command line", fix=f"see '{self.prog} --help'")


def parse_set_options(items: Sequence[str], option: str = "--set",
                      example: str = "pe_rows=16") -> dict[str, Any]:
    """``--set key=value`` options; values are read as YAML scalars (16 -> int, 45nm -> str)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} '{item}' is not key=value", field=option,
                              fix=f"write {option} {example}")
        value = parse_yaml_text(raw, option) if raw.strip() else None
        params[key.strip()] = value
    return params


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """The engine flags shared by evaluate, map and explore (the same meaning in both engines):
    ``--timeloop-version`` picks whose accounting the numbers follow, ``--mac-width-scaling``
    scales the MAC energy to the operand widths. Not given, they stay None (explore's config
    decides; evaluate and map use the defaults, see `engine_settings`)."""
    parser.add_argument("--timeloop-version", choices=TIMELOOP_VERSIONS, default=None,
                        help="count as the authors' fork and its base 4a74d71 ('fork', the "
                             "default) or as stock Timeloop v3.0.3 ('v3')")
    parser.add_argument("--mac-width-scaling", action="store_true", default=None,
                        help="without an ERT, scale the MAC energy to the operand widths (the "
                             "built-in model's multiplier law; the real tools get the MAC's "
                             "width rendered for Accelergy); default off")


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    """The `EngineSettings` of the engine flags of evaluate and map (defaults where not given)."""
    return EngineSettings(timeloop_version=args.timeloop_version or FORK,
                          mac_width_scaling=bool(args.mac_width_scaling))


MODEL_HELP = ("network: a registry name (mobilenet_v1, mobilenet_v2, resnet18, resnet50, "
              "resnet20), package.module:callable or path/to/file.py:callable")


def add_model_arguments(parser: argparse.ArgumentParser, *, positional: bool) -> None:
    """The model string (positional, or ``--model``), ``--model-arg KEY=VALUE`` (repeatable) and
    ``--state-dict FILE``: the same model options in every command that builds a net."""
    if positional:
        parser.add_argument("model", help=MODEL_HELP)
    else:
        parser.add_argument("--model", default="mobilenet_v1", help=MODEL_HELP)
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument of the model callable (YAML scalar value); "
                             "repeatable")
    parser.add_argument("--state-dict", default=None, metavar="FILE",
                        help="float state_dict file to load into the net")


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--model-arg`` options as the model's keyword arguments."""
    return parse_set_options(args.model_arg, "--model-arg", "num_classes=10")


def emit_stats_json(stats: Stats, json_out: str | None) -> None:
    """Write the stats JSON atomically to ``json_out``, or print it when no file is given."""
    text = json.dumps(stats.to_dict(), indent=2)
    if not json_out:
        print(text)
        return
    try:
        write_text_atomic(text + "\n", json_out, "--json")
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=json_out, field="--json",
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
