"""Parser for ``timeloop-model``/``timeloop-mapper`` ``*.stats.txt`` (the fork's primary output).

stats.txt is the one output every Timeloop build writes in the same layout, so it is the source of
truth for ``Stats``; the XML and CSV parsers only refine or cross-check it. The text is split into
blocks by its fixed headers ("Level N", "=== name ===", "Network N", "Summary Stats") and every
"key : value" line is kept as text until a converter needs it, so a new key in a newer Timeloop
never breaks parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import BackendError
from ..spec.stats import DataspaceStats, LevelStats, Stats

_LEVEL = re.compile(r"^Level (\d+)\s*$")
_NAME = re.compile(r"^=== (.+) ===\s*$")
_NETWORK = re.compile(r"^Network (\d+)\s*$")
_KEY_VALUE = re.compile(r"^(\s*)([^:]+?)\s*:\s*(.*?)\s*$")
_SUBSECTION = re.compile(r"^\s*(SPECS|MAPPING|STATS)\s*$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")

# Energy lines of one dataspace at a storage level whose sum is that dataspace's energy.
_DATASPACE_ENERGY_KEYS = ("Energy (total)", "Temporal Reduction Energy (total)",
                          "Address Generation Energy (total)")
_NETWORK_ENERGY_KEYS = ("Energy (total)", "Link transfer energy (total)",
                        "Spatial Reduction Energy (total)")


@dataclass(frozen=True)
class TextBlock:
    """One "Level N" or "Network N" block: its name, SPECS, STATS and per-dataspace stats."""

    name: str
    specs: dict[str, str] = field(default_factory=dict)
    stats: dict[str, str] = field(default_factory=dict)
    dataspaces: dict[str, dict[str, str]] = field(default_factory=dict)
    loop_nest: tuple[str, ...] = ()


@dataclass(frozen=True)
class StatsText:
    """The parsed stats.txt: levels innermost first (level 0 = arithmetic), networks, summary."""

    levels: tuple[TextBlock, ...]
    networks: tuple[TextBlock, ...]
    summary: dict[str, str]


def number(text: str | None) -> float | None:
    """The leading number of a value such as ``"168 (14*12)"`` or ``"3.00 pJ"``; None for ``-``."""
    if text is None:
        return None
    match = _NUMBER.match(text.strip())
    return float(match.group(0)) if match else None


def _garbage(reason: str, source: str, text: str) -> BackendError:
    return BackendError(f"unreadable Timeloop output: {reason}", file=source, log_tail=text[-2000:],
                        fix="check the tool's log; rerun with the same inputs and keep_work=True")


class _BlockBuilder:
    """Accumulates the lines of one block; knows which subsection and dataspace it is in."""

    def __init__(self, header_name: str) -> None:
        self.name = header_name
        self.specs: dict[str, str] = {}
        self.stats: dict[str, str] = {}
        self.dataspaces: dict[str, dict[str, str]] = {}
        self.loop_nest: list[str] = []
        self.section = ""
        self.dataspace: str | None = None

    def feed(self, line: str) -> None:
        stripped = line.strip()
        if not stripped or set(stripped) == {"-"}:
            return
        named = _NAME.match(stripped)
        if named:
            self.name = named.group(1)
            return
        sub = _SUBSECTION.match(line)
        if sub:
            self.section, self.dataspace = sub.group(1), None
            return
        if self.section == "MAPPING":
            if stripped != "Loop nest:":
                self.loop_nest.append(stripped)
            return
        match = _KEY_VALUE.match(line)
        if match is None:
            if not self.section and "<==>" in stripped:
                self.name = stripped
            return
        indent, key, value = match.groups()
        if self.section == "STATS" and value == "" and len(indent) <= 4:
            self.dataspace = key
            self.dataspaces[key] = {}
        elif self.section == "STATS" and self.dataspace is not None and len(indent) > 4:
            self.dataspaces[self.dataspace].setdefault(key, value)
        elif self.section == "STATS":
            self.stats[key] = value
        elif self.section == "SPECS":
            self.specs[key] = value

    def build(self) -> TextBlock:
        return TextBlock(self.name, self.specs, self.stats, self.dataspaces, tuple(self.loop_nest))


def split_stats_txt(text: str, source: str = "stats.txt") -> StatsText:
    """Split stats.txt into level, network and summary blocks (values kept as text)."""
    levels: list[TextBlock] = []
    networks: list[TextBlock] = []
    summary: dict[str, str] = {}
    current: _BlockBuilder | None = None
    target: list[TextBlock] | None = None
    in_summary = False

    def close() -> None:
        if current is not None and target is not None:
            target.append(current.build())

    for line in text.splitlines():
        stripped = line.strip()
        if _LEVEL.match(line) or _NETWORK.match(line):
            close()
            target = levels if line.startswith("Level") else networks
            current = _BlockBuilder("")
            continue
        if stripped in ("Operational Intensity Stats", "Summary Stats"):
            close()
            current, target = None, None
            in_summary = stripped == "Summary Stats"
            continue
        if in_summary:
            key, sep, value = stripped.partition(":") if ":" in stripped else stripped.partition("=")
            if sep:
                summary.setdefault(key.strip(), value.strip())
        elif current is not None:
            current.feed(line)
    close()
    if not levels:
        raise _garbage("no 'Level N' blocks", source, text)
    if "Cycles" not in summary or "Computes" not in summary:
        raise _garbage("no 'Summary Stats' with Cycles and Computes", source, text)
    return StatsText(tuple(levels), tuple(networks), summary)


def _int(values: dict[str, str], key: str, where: str, source: str) -> int:
    value = number(values.get(key))
    if value is None:
        raise BackendError(f"missing '{key}' in {where}", file=source,
                           fix="the output is truncated or from an unsupported Timeloop version")
    return int(round(value))


def _energy(values: dict[str, str], keys: tuple[str, ...]) -> float:
    return sum(number(values.get(key)) or 0.0 for key in keys)


def _dataspace_stats(values: dict[str, str], where: str, source: str) -> DataspaceStats:
    return DataspaceStats(
        utilized_capacity=_int(values, "Utilized capacity", where, source),
        reads=_int(values, "Scalar reads (per-instance)", where, source),
        fills=_int(values, "Scalar fills (per-instance)", where, source),
        updates=_int(values, "Scalar updates (per-instance)", where, source),
        operands_per_word=int(number(values.get("Data operands per word")) or 1),
        energy_pj=_energy(values, _DATASPACE_ENERGY_KEYS))


def level_stats(block: TextBlock, source: str) -> LevelStats:
    """``LevelStats`` of one storage-level block (energy summed over its dataspaces)."""
    dataspaces = {name: _dataspace_stats(values, f"{block.name}.{name}", source)
                  for name, values in block.dataspaces.items()}
    return LevelStats(name=block.name, energy_pj=sum(d.energy_pj for d in dataspaces.values()),
                      cycles=_int(block.stats, "Cycles", block.name, source), dataspaces=dataspaces)


def stats_from_text(parsed: StatsText, source: str = "stats.txt") -> Stats:
    """Convert the split blocks into ``Stats``; the total is the sum of component energies."""
    arithmetic, storage = parsed.levels[0], parsed.levels[1:]
    mac_energy = number(arithmetic.stats.get("Energy (total)")) or 0.0
    levels = tuple(level_stats(block, source) for block in storage)
    network_energy = sum(_energy(values, _NETWORK_ENERGY_KEYS)
                         for net in parsed.networks for values in net.dataspaces.values())
    energy = mac_energy + sum(level.energy_pj for level in levels) + network_energy
    macs = _int(parsed.summary, "Computes", "Summary Stats", source)
    cycles = _int(parsed.summary, "Cycles", "Summary Stats", source)
    instances = number(arithmetic.specs.get("Instances")) or 0.0
    return Stats(valid=True, energy_pj=energy, cycles=cycles,
                 utilization=utilization(macs, cycles, instances), macs=macs,
                 pj_per_mac=energy / macs if macs else 0.0, mac_energy_pj=mac_energy, levels=levels)


def occupancy(parsed: StatsText, source: str = "stats.txt"
              ) -> tuple[int, dict[tuple[str, str], int]]:
    """Compute cycles (the arithmetic level's) and utilized instances per (level, dataspace)."""
    compute = _int(parsed.levels[0].stats, "Cycles", parsed.levels[0].name, source)
    instances = {(block.name, name): _int(values, "Utilized instances (max)",
                                          f"{block.name}.{name}", source)
                 for block in parsed.levels[1:] for name, values in block.dataspaces.items()}
    return compute, instances


def utilization(macs: int, cycles: int, instances: float) -> float:
    """Timeloop's utilization: computes over (cycles x MAC instances), so stalls count as idle."""
    return macs / (cycles * instances) if cycles and instances else 0.0


def parse_stats_txt(text: str, source: str = "stats.txt") -> Stats:
    """Parse a whole stats.txt into ``Stats`` (raises BackendError on unreadable text)."""
    return stats_from_text(split_stats_txt(text, source), source)
