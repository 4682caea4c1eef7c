"""``python -m wrapper.mapping check FILES...``: validate a mapping against its architecture and
problem (the files timeloop-model takes)."""

from __future__ import annotations

import sys
from typing import Sequence

from .engine.evaluator import MappingEvaluator
from .errors import MappingError, QuantMapError, report_error
from .spec.inputs import load_inputs
from .spec.mapping import validate_mapping


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m wrapper.mapping check ARCH... PROBLEM MAPPING``: validate a mapping."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or argv[0] != "check" or len(argv) < 2:
            raise MappingError("expected 'check' and the spec files", field="command line",
                               fix="python -m wrapper.mapping check ARCH... PROBLEM MAPPING")
        inputs = load_inputs(argv[1:], required=("architecture", "problem", "mapping"))
        arch, problem, mapping = inputs.arch, inputs.problem, inputs.mapping()
        source = inputs.origin["mapping"]
        validate_mapping(mapping, arch, problem, source)
        stats = MappingEvaluator().evaluate(arch, problem, mapping)
        if not stats.valid:  # what only the counts show, e.g. a tile that overflows a buffer
            raise MappingError(str(stats.reason), file=source, field="mapping",
                               fix="use smaller tiles at that level or bypass a dataspace there")
    except QuantMapError as exc:
        return report_error(exc)
    print(f"ok: mapping fits {arch.name} and the problem ({problem.macs} MACs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
