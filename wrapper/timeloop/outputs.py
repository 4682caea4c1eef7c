"""Read the output files of one timeloop-model/-mapper run from its work directory into ``Stats``.

stats.txt is primary; stats.csv, when present, must agree with it on cycles and computes, so a
half-written or mixed-up output folder is reported instead of producing a wrong number.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import BackendError
from ..spec.stats import Stats
from .stats_csv import parse_stats_csv
from .stats_text import StatsText, split_stats_txt, stats_from_text

# timeloop-model's words when a mapping does not fit (it then exits 1 without stats).
_COULD_NOT_MAP = re.compile(r"ERROR: couldn't map level (\S+?): (.+)")


def invalid_mapping_reason(log: str) -> str | None:
    """Timeloop's reason(s) for refusing a mapping, from its log; None for any other failure."""
    found = [f"{level}: {reason.strip()}" for level, reason in _COULD_NOT_MAP.findall(log)]
    return "; ".join(found) or None


def output_file(work_dir: Path, prefix: str, suffix: str) -> Path:
    """Where Timeloop writes ``<prefix>.<suffix>`` (e.g. ``timeloop-model.stats.txt``)."""
    return Path(work_dir) / f"{prefix}.{suffix}"


def read_stats(work_dir: Path, prefix: str, log_tail: str = "") -> Stats:
    """Parse ``<prefix>.stats.txt`` and cross-check ``<prefix>.stats.csv`` when it exists."""
    return read_stats_text(work_dir, prefix, log_tail)[0]


def read_stats_text(work_dir: Path, prefix: str, log_tail: str = "") -> tuple[Stats, StatsText]:
    """``read_stats`` plus the split stats.txt, for callers that need more than ``Stats``."""
    txt = output_file(work_dir, prefix, "stats.txt")
    if not txt.is_file() or txt.stat().st_size == 0:
        raise BackendError(f"{txt.name} was not written", file=str(txt), log_tail=log_tail,
                           fix="the tool stopped before writing stats; see the log tail")
    parsed = split_stats_txt(txt.read_text(errors="replace"), str(txt))
    stats = stats_from_text(parsed, str(txt))
    csv_path = output_file(work_dir, prefix, "stats.csv")
    if csv_path.is_file():
        summary = parse_stats_csv(csv_path.read_text(errors="replace"), str(csv_path))
        if (summary.cycles, summary.computes) != (stats.cycles, stats.macs):
            raise BackendError(
                f"stats.csv (cycles {summary.cycles}, computes {summary.computes}) disagrees with "
                f"stats.txt (cycles {stats.cycles}, computes {stats.macs})", file=str(csv_path),
                log_tail=log_tail, fix="outputs of different runs are mixed; use a fresh work dir")
    return stats, parsed
