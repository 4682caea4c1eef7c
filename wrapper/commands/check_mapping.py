"""``quantmap check-mapping FILES...``: validate a mapping against its architecture and
problem (the files timeloop-model takes)."""

from __future__ import annotations

from typing import Sequence

from .cli import OneLineParser
from ..engine.evaluator import MappingEvaluator
from ..errors import MappingError, QuantMapError, report_error
from ..spec.inputs import load_inputs
from ..spec.mapping import validate_mapping


def main(argv: Sequence[str] | None = None, prog: str = "quantmap check-mapping") -> int:
    """``quantmap check-mapping ARCH... PROBLEM MAPPING``: validate a mapping."""
    parser = OneLineParser(prog=prog, description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="architecture, problem and mapping YAML files (folders too)")
    try:
        args = parser.parse_args(argv)
        inputs = load_inputs(args.files, required=("architecture", "problem", "mapping"))
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
