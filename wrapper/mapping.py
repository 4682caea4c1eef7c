"""``python -m wrapper.mapping check FILES...``: validate a mapping against its architecture and
problem (the files timeloop-model takes)."""

from __future__ import annotations

import sys
from typing import Sequence

from .errors import QuantMapError, report_error
from .spec.inputs import load_inputs
from .spec.mapping import validate_mapping


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wrapper.mapping check ARCH... PROBLEM MAPPING``: validate a mapping."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "check" or len(argv) < 2:
        print("usage: python -m wrapper.mapping check SPEC_FILES... (arch, problem, mapping)",
              file=sys.stderr)
        return 2
    try:
        inputs = load_inputs(argv[1:], required=("architecture", "problem", "mapping"))
        arch, problem = inputs.arch, inputs.problem
        validate_mapping(inputs.mapping(), arch, problem, inputs.origin["mapping"])
    except QuantMapError as exc:
        return report_error(exc)
    print(f"ok: mapping fits {arch.name} and the problem ({problem.macs} MACs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
