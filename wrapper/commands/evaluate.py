"""``quantmap evaluate FILE...``: evaluate one mapping, a timeloop-model drop-in.

Takes the YAML files timeloop-model takes (arch, components, problem, mapping, optional ERT/ART;
top-level keys merged), writes the `Stats` JSON (``--json OUT`` or stdout) and a short summary on
stderr. An invalid mapping is a result (``valid: false`` with the reason, exit 0); unreadable or
malformed files are errors (one line on stderr, exit 2).
"""

from __future__ import annotations

import sys
from typing import Sequence

from ..backends import ENGINES, evaluate_files
from .cli import OneLineParser, add_engine_options, emit_stats_json, engine_settings, summary
from ..errors import QuantMapError, report_error


def main(argv: Sequence[str] | None = None, prog: str = "quantmap evaluate") -> int:
    parser = OneLineParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="YAML inputs (arch, components, problem, mapping, ERT, ART)")
    parser.add_argument("--json", dest="json_out", help="write the result JSON here (default: stdout)")
    parser.add_argument("--engine", choices=ENGINES, default="builtin")
    add_engine_options(parser)
    try:
        args = parser.parse_args(argv)
        stats = evaluate_files(args.files, args.engine, engine_settings(args))
        emit_stats_json(stats, args.json_out)
    except QuantMapError as exc:
        return report_error(exc)
    print(summary(stats), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
