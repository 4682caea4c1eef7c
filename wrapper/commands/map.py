"""``quantmap map FILE... -o DIR``: find the best mapping, a timeloop-mapper drop-in.

Takes the YAML files timeloop-mapper takes (arch, components, constraints, problem, optional
ERT/ART, optional ``mapper:`` section; top-level keys merged), writes the best mapping as
Timeloop mapping YAML to ``DIR/<name>.map.yaml`` (``<name>`` = the mapper section's
``out_prefix``, else the problem file's stem) and its `Stats` JSON (the schema of
``quantmap evaluate``) to ``--json OUT`` or stdout; a summary goes to stderr.

Mapper section keys: ``metric``, ``secondary-metric``, ``budget``/``max-evaluations``,
``max-seconds``, ``seed``, ``exact`` (prove the optimum first; default true), ``exact-budget`` and
``exact-seconds``; and timeloop-mapper's own keys in either spelling (``optimization-metric`` or
``optimization_metrics``): ``optimization-metric(s)`` (one name or a lexicographic list: first =
metric, second = tie-breaker) and ``search-size`` (the budget) are honoured, the rest (algorithm,
num-threads, timeout, victory-condition, live-status, log-*, diagnostics, ...) are accepted with
one ``note:`` line each saying why they do not apply. The built-in mapper's certificate
(optimal, or the gap bound) is the ``certificate`` key of the stats JSON and the first line of
the mapping file.
"""

from __future__ import annotations

import sys
from typing import Sequence

from ..backends import ENGINES, map_files
from .cli import OneLineParser, add_engine_options, emit_stats_json, engine_settings, summary
from ..errors import QuantMapError, report_error
from ..spec.yamlio import check_file_path


def main(argv: Sequence[str] | None = None, prog: str = "quantmap map") -> int:
    parser = OneLineParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="YAML inputs (arch, components, constraints, "
                        "problem, optional ERT/ART and mapper section)")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for <name>.map.yaml")
    parser.add_argument("--json", dest="json_out", help="write the stats JSON here (default: stdout)")
    parser.add_argument("--engine", choices=ENGINES, default="builtin")
    add_engine_options(parser)
    try:
        args = parser.parse_args(argv)
        if args.json_out:
            check_file_path(args.json_out, "--json")  # before the search, not after it
        path, _, stats = map_files(args.files, args.out_dir, args.engine,
                                   engine_settings(args))

        emit_stats_json(stats, args.json_out)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"mapping: {path}", file=sys.stderr)
    print(summary(stats), file=sys.stderr)
    if stats.certificate is not None:
        print(stats.certificate.comment(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
