"""Parser for Timeloop's one-row ``*.stats.csv`` summary.

The CSV carries the totals at more digits than stats.txt's summary (utilization 0.666667 instead
of 0.67), so it is used to cross-check a parsed stats.txt: a mismatch means the output files come
from different runs or were truncated, which must not pass silently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from ..errors import BackendError

# CSV header -> field of CsvSummary; columns are looked up by name, not position.
_COLUMNS = {
    "pJ/Compute": "pj_per_compute",
    "Utilization": "utilization",
    "Cycles": "cycles",
    "Energy [uJ]": "energy_uj",
    "EDP [J*cycle]": "edp_j_cycle",
    "Area [mm^2]": "area_mm2",
    "LastLevelAccesses": "last_level_accesses",
    "MAC energy [pJ]": "mac_energy_pj_per_compute",
    "Computes": "computes",
    "Algorithmic computes": "algorithmic_computes",
}


@dataclass(frozen=True)
class CsvSummary:
    """The totals of one evaluation as written to stats.csv."""

    pj_per_compute: float
    utilization: float
    cycles: int
    energy_uj: float
    edp_j_cycle: float
    area_mm2: float
    last_level_accesses: int
    mac_energy_pj_per_compute: float
    computes: int
    algorithmic_computes: int


def parse_stats_csv(text: str, source: str = "stats.csv") -> CsvSummary:
    """Parse the header and first data row; BackendError when a column is missing or not numeric."""
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        raise BackendError("stats.csv has no data row", file=source, log_tail=text[-2000:],
                           fix="the run did not finish; see its log")
    header, values = [h.strip() for h in rows[0]], rows[1]
    fields: dict[str, float] = {}
    for column, name in _COLUMNS.items():
        if column not in header:
            raise BackendError(f"stats.csv lacks column '{column}'", file=source,
                               log_tail=text[-2000:], fix="use a Timeloop build that writes it")
        try:
            fields[name] = float(values[header.index(column)])
        except (IndexError, ValueError):
            raise BackendError(f"stats.csv column '{column}' is not a number", file=source,
                               log_tail=text[-2000:], fix="the output is corrupt; rerun") from None
    ints = {"cycles", "last_level_accesses", "computes", "algorithmic_computes"}
    return CsvSummary(**{k: int(round(v)) if k in ints else v for k, v in fields.items()})
