"""Result types of one (arch, layer, precision, mapping) evaluation, shared by every cost model.

The field names and nesting equal the JSON schema of ``quantmap evaluate`` so that the
built-in engine and the real Timeloop backend are interchangeable and results serialize 1:1.
Counts are per instance, as in Timeloop's stats; levels are listed innermost first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .certificate import Certificate


@dataclass(frozen=True)
class DataspaceStats:
    """Per-instance access counts of one dataspace at one storage level (packed words)."""

    utilized_capacity: int
    reads: int
    fills: int
    updates: int
    operands_per_word: int
    energy_pj: float


@dataclass(frozen=True)
class LevelStats:
    """One storage level: its total energy (all instances), its cycles, its kept dataspaces."""

    name: str
    energy_pj: float
    cycles: int
    dataspaces: dict[str, DataspaceStats] = field(default_factory=dict)


@dataclass(frozen=True)
class Stats:
    """Totals and per-level statistics of one mapping; ``valid`` is False with a ``reason``."""

    valid: bool
    reason: str | None = None
    energy_pj: float = 0.0
    cycles: int = 0
    utilization: float = 0.0
    macs: int = 0
    pj_per_mac: float = 0.0
    mac_energy_pj: float = 0.0
    levels: tuple[LevelStats, ...] = ()
    # What the mapper proved about this mapping (None for a plain evaluation, or a mapper that
    # proves nothing): optimal in its constrained mapspace, or the most it can be above that.
    certificate: Certificate | None = None
    # The engine settings the numbers were obtained under (set by the file-level entry points,
    # None where the caller knows them): the accounting version and operand-width MAC scaling.
    timeloop_version: str | None = None
    mac_width_scaling: bool | None = None

    @property
    def edp(self) -> float:
        """Energy-delay product in pJ x cycles."""
        return self.energy_pj * self.cycles

    @property
    def last_level_accesses(self) -> int:
        """Reads + fills + updates of the outermost level (DRAM), summed over dataspaces."""
        if not self.levels:
            return 0
        return sum(d.reads + d.fills + d.updates for d in self.levels[-1].dataspaces.values())

    @classmethod
    def invalid(cls, reason: str) -> "Stats":
        """An invalid mapping: what was violated, where, needed vs available."""
        return cls(valid=False, reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """The ``wrapper.evaluate`` JSON object."""
        out = asdict(self)
        out["levels"] = [asdict(level) for level in self.levels]
        for key in ("certificate", "timeloop_version", "mac_width_scaling"):
            if out[key] is None:
                out.pop(key)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Stats":
        """Inverse of :meth:`to_dict`."""
        levels = tuple(
            LevelStats(name=lv["name"], energy_pj=float(lv["energy_pj"]), cycles=int(lv["cycles"]),
                       dataspaces={ds: DataspaceStats(**vals) for ds, vals in lv["dataspaces"].items()})
            for lv in data.get("levels", []))
        scalars = {k: data[k] for k in ("valid", "reason", "energy_pj", "cycles", "utilization", "macs",
                                         "pj_per_mac", "mac_energy_pj", "timeloop_version",
                                         "mac_width_scaling") if k in data}
        certificate = data.get("certificate")
        return cls(levels=levels, **scalars,
                   certificate=None if certificate is None else Certificate(**certificate))
