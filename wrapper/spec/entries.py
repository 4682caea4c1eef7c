"""The common frame of constraint and mapping entries: a map with a ``target`` level and a
``type`` from a fixed set, whose other keys depend on the type. Both file kinds are read through
`entry_frame`, so a wrong type, target or key gets the same message naming file and field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import QuantMapError, unknown_name_fix


def entry_frame(entry: Mapping[str, Any], where: str, source: str | None,
                keys_by_type: Mapping[str, tuple[str, ...]], error: type[QuantMapError],
                noun: str, plural: str) -> tuple[str, str]:
    """The (type, target) of one entry that has both keys, every other key checked against
    what its type allows. ``noun``/``plural`` name the entry kind in messages."""
    etype, target = entry["type"], entry["target"]
    if not isinstance(etype, str) or etype not in keys_by_type:
        raise error(f"unknown {noun} type {etype!r}", file=source, field=f"{where}.type",
                    fix=unknown_name_fix(str(etype), tuple(keys_by_type), "types"))
    if not isinstance(target, str):
        raise error(f"target {target!r} is not a level name", file=source,
                    field=f"{where}.target", fix="name one storage level")
    allowed = keys_by_type[etype]
    for key in entry:
        if key not in ("target", "type", *allowed):
            raise error(f"key '{key}' has no meaning in a {etype} {noun}", file=source,
                        field=f"{where}.{key}",
                        fix=unknown_name_fix(str(key), allowed, f"keys of {etype} {plural}"))
    return etype, target
