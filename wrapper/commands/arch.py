"""``quantmap arch``: render the architecture templates into Timeloop v0.3 or v0.4 YAML
(``render NAME [--set k=v ...] -o DIR [--shape S] [--format v0.3|v0.4]``, ``params NAME``) or show the levels of any
architecture spec as QuantMap reads them (``show FILES...``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .cli import OneLineParser, parse_set_options
from ..errors import ConfigError, QuantMapError, report_error, unknown_name_fix
from ..spec.arch import load_arch
from ..spec.problem import BUILTIN_SHAPES, ProblemShape, load_problem
from ..spec.templates import FORMATS, available_templates, default_parameters, write_arch


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
    render.add_argument("--format", choices=FORMATS, default="v0.3",
                        help="Timeloop spec version of the architecture file (default v0.3)")
    params = sub.add_parser("params", help="list a template's parameters and defaults")
    params.add_argument("template")
    show = sub.add_parser("show", help="print the levels of an architecture spec as QuantMap "
                                       "reads them")
    show.add_argument("files", nargs="+", metavar="FILE", help="architecture YAML files or folders")
    return parser


def _show(files: Sequence[str]) -> None:
    """Print every level of an architecture spec as QuantMap reads it."""
    arch = load_arch(*files)
    for level in arch.levels:
        print(f"{level.name:16s} size={level.size_words} word_bits={level.word_bits} "
              f"block={level.block_size} instances={level.instances} fanout={arch.fanout(level.name)}")


def main(argv: Sequence[str] | None = None, prog: str = "quantmap arch") -> int:
    """CLI: ``render NAME [--set k=v ...] -o DIR [--shape S]``, ``params NAME``, ``show FILES``."""
    try:
        args = _build_parser(prog).parse_args(argv)
        if args.command == "show":
            _show(args.files)
            return 0
        if args.command == "params":
            for key, value in default_parameters(args.template).items():
                print(f"{key} = {value}")
            return 0
        paths = write_arch(args.template, parse_set_options(args.set), args.out,
                           _shape_option(args.shape), spec_format=args.format)
    except QuantMapError as exc:
        return report_error(exc)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
