"""``python -m wrapper.arch``: render the architecture templates into Timeloop v0.3 YAML
(``render NAME [--set k=v ...] -o DIR [--shape S]``, ``params NAME``) or show the levels of any
architecture spec as QuantMap reads them (``show FILES...``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .cli import OneLineParser, parse_set_options
from .errors import ConfigError, QuantMapError, report_error, unknown_name_fix
from .spec.arch import load_arch
from .spec.problem import BUILTIN_SHAPES, ProblemShape, load_problem
from .spec.templates import available_templates, default_parameters, write_arch


def _shape_option(value: str | None) -> ProblemShape | None:
    """--shape: a built-in shape name (depthwise, cnn-layer) or a problem YAML file."""
    if value is None:
        return None
    if value.lower() in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[value.lower()]
    if Path(value).is_file():
        return load_problem(value).shape
    raise ConfigError(f"--shape '{value}' is neither a built-in shape nor a file", field="--shape",
                      fix=unknown_name_fix(value, sorted(BUILTIN_SHAPES), "shapes (or a problem file)"))


def _build_parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description="Render QuantMap architecture templates to Timeloop YAML.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="write arch, components and constraints to a folder")
    render.add_argument("template", help=f"one of: {', '.join(available_templates())}")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a template parameter (repeatable)")
    render.add_argument("-o", "--out", required=True, help="output folder")
    render.add_argument("--shape", help="adapt constraints to a problem shape: depthwise, "
                        "cnn-layer, or a problem YAML file")
    params = sub.add_parser("params", help="list a template's parameters and defaults")
    params.add_argument("template")
    return parser


def render_main(argv: Sequence[str] | None = None, prog: str = "python -m wrapper.arch") -> int:
    """CLI: ``render NAME [--set k=v ...] -o DIR [--shape S]`` and ``params NAME``."""
    try:
        args = _build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.command == "params":
            for key, value in default_parameters(args.template).items():
                print(f"{key} = {value}")
            return 0
        paths = write_arch(args.template, parse_set_options(args.set), args.out,
                           _shape_option(args.shape))
    except QuantMapError as exc:
        return report_error(exc)
    for path in paths:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wrapper.arch``: render templates, or show a spec's levels (``show FILES``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "show":
        try:
            arch = load_arch(*argv[1:])
        except QuantMapError as exc:
            return report_error(exc)
        for level in arch.levels:
            print(f"{level.name:16s} size={level.size_words} word_bits={level.word_bits} "
                  f"block={level.block_size} instances={level.instances} fanout={arch.fanout(level.name)}")
        return 0
    return render_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
