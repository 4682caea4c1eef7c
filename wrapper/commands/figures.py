"""``quantmap figures [-o DIR] [--evaluations N] [--workers N] [--run RUN]``: the paper's
hardware figures with the built-in engine (``make figures``): MobileNetV1 energy vs uniform
weight bits on Eyeriss-like and Simba-like, and the energy saved by remapping under packing; with
``--run RUN``, the accuracy-vs-energy figure of a finished explore run instead."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from .cli import OneLineParser
from ..errors import QuantMapError, report_error
from ..explore.figures import make_figures, run_figure


def main(argv: Sequence[str] | None = None, prog: str = "quantmap figures") -> int:
    parser = OneLineParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="results/figures", help="output folder")
    parser.add_argument("--evaluations", type=int, default=3000,
                        help="mapper evaluations per layer (default 3000)")
    parser.add_argument("--workers", type=int, default=2, help="mapper processes (default 2)")
    parser.add_argument("--exact", action="store_true",
                        help="prove every layer's mapping optimal (slow on Simba at 224 px)")
    parser.add_argument("--run", metavar="RUN", help="results folder of a finished explore run: "
                        "draw its accuracy-vs-energy figure")
    try:
        args = parser.parse_args(argv)
        if args.run:
            print(f"figure: {run_figure(Path(args.run), Path(args.out)).resolve()}")
            return 0
        points = make_figures(Path(args.out), args.evaluations, args.workers, args.exact)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"{'arch':8s} {'w':>2s} {'k':>2s} {'energy uJ':>11s} {'kept-16b uJ':>12s} {'saved':>6s}")
    for p in points:
        print(f"{p.arch:8s} {p.weight_bits:2d} {16 // p.weight_bits:2d} "
              f"{p.remapped_pj * 1e-6:11.1f} {p.kept_pj * 1e-6:12.1f} "
              f"{100 * p.saved_by_remapping:5.1f}%")
    print(f"figures: {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
