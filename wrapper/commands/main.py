"""``quantmap VERB ...``: the one front door. Each verb is a module of this package with a
``main(argv, prog)``; a verb's module is imported only when it runs, so ``quantmap evaluate``
does not load torch."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .cli import OneLineParser
from ..errors import QuantMapError, report_error

# verb -> (module in this package, one-line description for ``quantmap --help``)
VERBS: dict[str, tuple[str, str]] = {
    "explore": ("explore", "joint search of per-layer bit widths and mappings; writes a results "
                           "folder with report.md and pareto.csv"),
    "evaluate": ("evaluate", "evaluate one mapping (a timeloop-model drop-in)"),
    "map": ("map", "find the best mapping of one layer (a timeloop-mapper drop-in)"),
    "check-mapping": ("check_mapping", "validate a mapping against its architecture and problem"),
    "arch": ("arch", "architecture templates: render, show, params"),
    "workload": ("workload", "write the Timeloop problems of a network, one YAML per layer"),
    "qat": ("qat", "Brevitas QAT: train, finetune, eval"),
    "final": ("final", "final evaluation of an explore results folder with fresh seeds"),
    "figures": ("figures", "the paper's figures from small explore runs"),
}


def _parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {verb:<15} {text}" for verb, (_, text) in VERBS.items())
    parser = OneLineParser(prog="quantmap", formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Hardware-aware mixed-precision quantization and mapping "
                                       "search for CNN accelerators.",
                           epilog=f"verbs:\n{listing}\n\n'quantmap VERB --help' shows a verb's "
                                  "arguments.")
    parser.add_argument("verb", choices=VERBS, metavar="VERB", help="one of the verbs below")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``quantmap VERB ARGS...``: hand ARGS to the verb's module."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in VERBS:
        try:  # --help prints the verbs and exits 0; a missing or unknown verb is one line
            _parser().parse_args(argv[:1])
        except QuantMapError as exc:
            return report_error(exc)
    module = importlib.import_module(f"{__package__}.{VERBS[argv[0]][0]}")
    return module.main(argv[1:], prog=f"quantmap {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
