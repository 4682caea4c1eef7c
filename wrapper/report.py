"""``python -m wrapper.report finetune DIR [--points N] [--epochs N]``: steps on a finished explore
results folder (retrain chosen Pareto points longer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from .cli import OneLineParser
from .errors import QuantMapError, report_error
from .explore.config import load_config
from .explore.experiment import CONFIG_NAME, Experiment
from .explore.finetune import finetune, front_genomes
from .spec.settings import Rule


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m wrapper.report",
                           description="Steps on a finished explore results folder.")
    sub = parser.add_subparsers(dest="command", required=True)
    tune = sub.add_parser("finetune", help="retrain chosen Pareto points longer")
    tune.add_argument("folder", help="results folder of an explore run")
    tune.add_argument("--points", type=int, default=3, help="how many points (default 3)")
    tune.add_argument("--epochs", type=int, default=10, help="QAT epochs (default 10)")
    try:
        args = parser.parse_args(argv)
        for option, value in (("--points", args.points), ("--epochs", args.epochs)):
            Rule(int, minimum=1, example=3).check(value, option, "command line")
        out = Path(args.folder)
        genomes = front_genomes(out)
        config = load_config(out / CONFIG_NAME)
        with Experiment(config, out) as experiment:
            path = finetune(experiment.accuracy, experiment.executor, genomes, args.points,
                            args.epochs, out)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"fine-tuned: {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
