"""``quantmap workload MODEL --resolution R [--bits i8w4o8 ...] -o DIR``: one Timeloop
problem YAML per Conv2d/Linear call of a network (a registry name, ``package.module:callable`` or
``path/to/file.py:callable``; depthwise and grouped layers get their own shapes) plus
``layers.csv``."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from .cli import OneLineParser, add_model_arguments, model_kwargs
from ..errors import PrecisionError, QuantMapError, report_error
from ..network.layers import UnsupportedLayerWarning, extract_layers, write_workload
from ..network.registry import build_network
from ..qat.models import MAX_BITS, MIN_BITS
from ..spec.precision import Precision
from ..spec.settings import Rule

_OPTION_RULES = {"--resolution": Rule(int, minimum=1, maximum=4096, example=224),
                 "--width": Rule(float, above=0.0, maximum=16.0, example=1.0, optional=True),
                 "--classes": Rule(int, minimum=1, maximum=1_000_000, example=1000)}


def _label(text: str) -> Precision:
    """A --bits label, with the widths quantization-aware training and the search accept."""
    precision = Precision.from_label(text)
    for name, bits in precision.to_bitwidths().items():
        Rule(int, minimum=MIN_BITS, maximum=MAX_BITS).check(bits, f"--bits {text} ({name})",
                                                            "command line", PrecisionError)
    return precision


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Write the Timeloop problems (one YAML per layer) and a layers table of a "
                    "network.")
    add_model_arguments(parser, positional=True)
    parser.add_argument("--resolution", type=int, default=224, help="input size (default 224)")
    parser.add_argument("--width", type=float, default=None,
                        help="MobileNets: width multiplier (default 1.0)")
    parser.add_argument("--skip-unsupported", action="store_true",
                        help="leave compute the problems cannot express (Conv1d, attention, ...) "
                             "out, with a warning, instead of failing")
    parser.add_argument("--classes", type=int, default=1000, help="classes (default 1000)")
    parser.add_argument("--bits", nargs="+", default=None, metavar="LABEL",
                        help="bit widths such as i8w8o8: one for all layers or one per layer "
                             "(default: native, no bitwidths key)")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "quantmap workload") -> int:
    args = None
    try:
        args = _parser(prog).parse_args(argv)
        for option, rule in _OPTION_RULES.items():
            rule.check(getattr(args, option.lstrip("-")), option, "command line")
        precision = None if args.bits is None else [_label(b) for b in args.bits]
        model = build_network(args.model, model_kwargs(args), state_dict=args.state_dict,
                              width_mult=args.width, num_classes=args.classes)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnsupportedLayerWarning)
            layers = extract_layers(model, args.resolution,
                                    skip_unsupported=args.skip_unsupported)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        written = write_workload(layers, args.out, precision)
    except QuantMapError as exc:  # the model and every setting come from the command line
        return report_error(exc if args is None else exc.located("command line"))
    macs = sum(layer.macs for layer in layers)
    weights = sum(layer.weight_count for layer in layers)
    print(f"{args.model}: {len(layers)} layers, {macs / 1e6:.1f}M MACs, {weights / 1e6:.3f}M "
          f"weights -> {written.table.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
