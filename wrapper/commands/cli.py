"""Shared pieces of the command-line tools: one-line argument errors, ``--set`` options, stats
output. Every ``quantmap VERB`` parses its arguments here and calls library code."""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from ..errors import ConfigError, SpecError
from ..spec.stats import Stats
from ..spec.yamlio import parse_yaml_text, write_text_atomic


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message, field="command line", fix=f"see '{self.prog} --help'")


def parse_set_options(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` options; values are read as YAML scalars (16 -> int, 45nm -> str)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{item}' is not key=value", field="--set",
                              fix="write --set pe_rows=16")
        value = parse_yaml_text(raw, "--set") if raw.strip() else None
        params[key.strip()] = value
    return params


def emit_stats_json(stats: Stats, json_out: str | None) -> None:
    """Write the stats JSON atomically to ``json_out``, or print it when no file is given."""
    text = json.dumps(stats.to_dict(), indent=2)
    if not json_out:
        print(text)
        return
    try:
        write_text_atomic(text + "\n", json_out, "--json")
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=json_out, field="--json",
                        fix="check the output path") from None


def summary(stats: Stats) -> str:
    """A short human summary for stderr."""
    if not stats.valid:
        return f"invalid mapping: {stats.reason}"
    lines = [f"energy {stats.energy_pj / 1e6:.3f} uJ ({stats.pj_per_mac:.3f} pJ/MAC), "
             f"cycles {stats.cycles}, utilization {stats.utilization:.2%}, MACs {stats.macs}"]
    for level in stats.levels:
        lines.append(f"  {level.name:<16} {level.energy_pj / 1e6:10.3f} uJ  {level.cycles} cycles")
    return "\n".join(lines)
