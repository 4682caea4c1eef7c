"""``quantmap final DIR [--points N] [--seeds N] [--epochs N]``: the final evaluation of a
finished explore results folder (retrain chosen front points and the uniform references with more
seeds or epochs, and rewrite its report). Nothing already in the folder's store is computed
again."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from .cli import OneLineParser
from ..errors import QuantMapError, report_error
from ..explore.experiment import resolve_config, run_experiment
from ..spec.settings import Rule


def main(argv: Sequence[str] | None = None, prog: str = "quantmap final") -> int:
    parser = OneLineParser(prog=prog, description="Retrain chosen Pareto points and the uniform "
                           "references of an explore results folder with fresh seeds; rewrite "
                           "its report.")
    parser.add_argument("folder", help="results folder of an explore run")
    parser.add_argument("--points", type=int, help="front points to evaluate")
    parser.add_argument("--seeds", type=int, help="fresh QAT seeds per configuration")
    parser.add_argument("--epochs", type=int, help="QAT epochs of each retraining")
    try:
        args = parser.parse_args(argv)
        for option, value in (("--points", args.points), ("--seeds", args.seeds),
                              ("--epochs", args.epochs)):
            Rule(int, optional=True, minimum=1, example=3).check(value, option, "command line")
        out = Path(args.folder)
        overrides = {f"final.{name}": value for name, value in
                     (("points", args.points), ("seeds", args.seeds), ("epochs", args.epochs))
                     if value is not None}
        result = run_experiment(resolve_config(None, overrides, out, resume=True), out,
                                resume=True)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"report: {(result.out / 'report.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
