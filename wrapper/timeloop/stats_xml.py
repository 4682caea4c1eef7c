"""Parser for the boost-serialized ``*.map+stats.xml`` of timeloop-model/-mapper (optional).

stats.txt prints energies with two decimals; the XML keeps every digit, so when it is present the
XML gives the exact per-dataspace energies. It names no dataspaces (values are per-dataspace
lists in the order of the problem shape's data-spaces), hence the caller passes that order.
Network energies are not read here: they need per-network instance counts the XML does not hold,
and stats.txt already reports them.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Sequence

from ..errors import BackendError
from ..spec.precision import DATASPACES
from ..spec.stats import DataspaceStats, LevelStats, Stats
from .stats_text import utilization


def _bad(reason: str, source: str) -> BackendError:
    return BackendError(f"unreadable map+stats.xml: {reason}", file=source,
                        fix="parse stats.txt instead (it is the primary output)")


def _text(node: ET.Element | None, path: str, source: str) -> str:
    found = node.find(path) if node is not None else None
    if found is None or found.text is None:
        raise _bad(f"missing element '{path}'", source)
    return found.text.strip()


def _per_dataspace(stats: ET.Element, tag: str, source: str) -> list[float]:
    node = stats.find(f"{tag}/PerDataSpace")
    if node is None:
        raise _bad(f"missing per-dataspace list '{tag}'", source)
    values = [float(item.text) if item.text and item.text.strip() != "-nan" else math.nan
              for item in node.findall("item")]
    return values


def _buffer_level(px: ET.Element, dataspaces: Sequence[str], source: str) -> LevelStats:
    name = _text(px, "specs_/name/t_", source)
    stats = px.find("stats_")
    if stats is None:
        raise _bad(f"level {name} has no stats_", source)
    lists = {tag: _per_dataspace(stats, tag, source) for tag in (
        "keep", "utilized_capacity", "utilized_instances", "reads", "fills", "updates",
        "operands_per_word", "energy", "temporal_reduction_energy", "addr_gen_energy")}
    if len(lists["keep"]) != len(dataspaces):
        raise _bad(f"level {name} has {len(lists['keep'])} dataspaces, expected "
                   f"{len(dataspaces)} ({', '.join(dataspaces)})", source)
    kept: dict[str, DataspaceStats] = {}
    for i, dataspace in enumerate(dataspaces):
        if not lists["keep"][i]:
            continue
        per_instance = (lists["energy"][i] + lists["temporal_reduction_energy"][i]
                        + lists["addr_gen_energy"][i])
        kept[dataspace] = DataspaceStats(
            utilized_capacity=int(lists["utilized_capacity"][i]), reads=int(lists["reads"][i]),
            fills=int(lists["fills"][i]), updates=int(lists["updates"][i]),
            operands_per_word=int(lists["operands_per_word"][i]),
            energy_pj=per_instance * lists["utilized_instances"][i])
    return LevelStats(name=name, energy_pj=sum(d.energy_pj for d in kept.values()),
                      cycles=int(_text(stats, "cycles", source)), dataspaces=kept)


def parse_map_stats_xml(text: str, source: str = "map+stats.xml",
                        dataspaces: Sequence[str] = DATASPACES) -> Stats:
    """Parse the XML into ``Stats`` (arithmetic + storage levels; exact energies)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise _bad(f"not XML ({exc})", source) from None
    items = root.findall("engine/topology_/levels_/item")
    if not items:
        raise _bad("no engine/topology_/levels_ items", source)
    arithmetic = items[0].find("px")
    mac_energy = float(_text(arithmetic, "energy_", source))
    macs = int(_text(arithmetic, "algorithmic_computes_", source))
    instances = float(_text(arithmetic, "specs_/instances/t_", source))
    levels = tuple(_buffer_level(item.find("px"), dataspaces, source)  # type: ignore[arg-type]
                   for item in items[1:])
    energy = mac_energy + sum(level.energy_pj for level in levels)
    cycles = max([int(_text(arithmetic, "cycles_", source))] + [lv.cycles for lv in levels])
    return Stats(valid=True, energy_pj=energy, cycles=cycles,
                 utilization=utilization(macs, cycles, instances), macs=macs,
                 pj_per_mac=energy / macs if macs else 0.0, mac_energy_pj=mac_energy,
                 levels=levels)
