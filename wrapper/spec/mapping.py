"""Timeloop mappings: read, write and validate the ``mapping:`` YAML that timeloop-model takes.

A mapping is, per storage level, temporal factors with a loop order, spatial factors with a
loop order and an X/Y split, and the dataspaces the level keeps or bypasses. Permutation strings
follow Timeloop: innermost loop first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from typing import Mapping as MappingType

from ..errors import (
    MappingError,
    PrecisionError,
    require_keys,
    unknown_name_fix,
)
from .arch import Arch, name_list, parse_factors, permutation_text
from .entries import entry_frame
from .precision import packing_problem
from .problem import Problem
from .settings import Rule
from .yamlio import dump_yaml_file, load_yaml_file

ENTRY_TYPES = ("temporal", "spatial", "datatype", "bypass")
_ENTRY_KEYS = {"temporal": ("factors", "permutation"),
               "spatial": ("factors", "permutation", "split"),
               "datatype": ("keep", "bypass"), "bypass": ("keep", "bypass")}
_SPLIT = Rule(int, minimum=0, maximum=64, example=1)


@dataclass(frozen=True)
class LevelMapping:
    """The loops and dataspace choices of one storage level."""

    target: str
    temporal: MappingType[str, int] = field(default_factory=dict)
    temporal_permutation: str = ""
    spatial: MappingType[str, int] = field(default_factory=dict)
    spatial_permutation: str = ""
    split: int | None = None
    keep: tuple[str, ...] | None = None
    bypass: tuple[str, ...] | None = None

    def __hash__(self) -> int:
        return hash((self.target, tuple(sorted(self.temporal.items())), self.temporal_permutation,
                     tuple(sorted(self.spatial.items())), self.spatial_permutation, self.split,
                     self.keep, self.bypass))

    def kept(self, dataspaces: Sequence[str]) -> frozenset[str]:
        """What this level keeps: everything unless told; ``keep`` minus ``bypass`` when a keep
        list is given; everything but ``bypass`` when only a bypass list is given."""
        base = frozenset(dataspaces) if self.keep is None else frozenset(self.keep)
        return base - frozenset(self.bypass or ())

    def spatial_xy(self) -> tuple[dict[str, int], dict[str, int]]:
        """Spatial factors along X (the first ``split`` dims of the permutation) and along Y."""
        order = [d for d in self.spatial_permutation if d in self.spatial]
        order += [d for d in self.spatial if d not in order]
        split = len(order) if self.split is None else self.split
        x = {d: self.spatial[d] for d in order[:split]}
        y = {d: self.spatial[d] for d in order[split:]}
        return x, y


@dataclass(frozen=True)
class Mapping:
    """A complete mapping: one `LevelMapping` per storage level, in file order."""

    levels: tuple[LevelMapping, ...]

    def for_level(self, name: str) -> LevelMapping:
        """The mapping of a level (all factors 1 when the file does not mention it)."""
        for level in self.levels:
            if level.target == name:
                return level
        return LevelMapping(name)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(level.target for level in self.levels)


def mapping_from_dict(data: Any, source: str | None = None) -> Mapping:
    """Parse the ``mapping:`` list (entries of type temporal, spatial, datatype/bypass)."""
    if isinstance(data, MappingType) and "mapping" in data:
        data = data["mapping"]
    if not isinstance(data, list):
        raise MappingError("no 'mapping' list found", file=source, field="mapping",
                           fix="the file needs a top-level 'mapping:' list of target entries")
    merged: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(data):
        where = f"mapping[{i}]"
        if not isinstance(entry, MappingType):
            raise MappingError("entry is not a map", file=source, field=where,
                               fix="write '- target: <level>\\n  type: temporal\\n  factors: ...'")
        require_keys(entry, ("target", "type"), where, source, MappingError)
        etype, target = entry_frame(entry, where, source, _ENTRY_KEYS, MappingError,
                                    "entry", "entries")
        level = merged.setdefault(target, {"target": target})
        if etype in level.get("_types", ()):
            raise MappingError(f"a second {etype} entry for {target}", file=source, field=where,
                               fix=f"give one {etype} entry per level")
        level.setdefault("_types", set()).add("datatype" if etype == "bypass" else etype)
        factors = parse_factors(entry.get("factors"), where, source, MappingError)
        perm = permutation_text(entry.get("permutation"), where, source, MappingError) or ""
        if etype == "temporal":
            level.update(temporal=factors, temporal_permutation=perm)
        elif etype == "spatial":
            split = entry.get("split")
            level.update(spatial=factors, spatial_permutation=perm,
                         split=None if split is None else _SPLIT.check(
                             split, f"{where}.split", source, MappingError))
        else:
            keep = name_list(entry.get("keep"), f"{where}.keep", source, MappingError) or ()
            bypass = name_list(entry.get("bypass"), f"{where}.bypass", source, MappingError) or ()
            both = set(keep) & set(bypass)
            if both:
                raise MappingError(f"{sorted(both)[0]} is both kept and bypassed", file=source,
                                   field=f"{where}.keep",
                                   fix="name each dataspace in keep or bypass, not both")
            level.update(keep=keep, bypass=bypass)
    for level in merged.values():
        level.pop("_types")
    return Mapping(tuple(LevelMapping(**level) for level in merged.values()))


def load_mapping(path: str | Path) -> Mapping:
    """Read a mapping YAML file."""
    return mapping_from_dict(load_yaml_file(path), str(path))


def _factor_text(factors: MappingType[str, int]) -> str:
    return " ".join(f"{dim}{value}" for dim, value in factors.items())


def mapping_to_dict(mapping: Mapping) -> dict[str, Any]:
    """Timeloop's own layout: datatype entries first, then per level spatial and temporal."""
    entries: list[dict[str, Any]] = []
    for level in mapping.levels:
        if level.keep is not None or level.bypass is not None:
            entries.append({"target": level.target, "type": "datatype",
                            "keep": list(level.keep or ()), "bypass": list(level.bypass or ())})
    for level in mapping.levels:
        if level.spatial or level.spatial_permutation:
            entry: dict[str, Any] = {"target": level.target, "type": "spatial",
                                     "factors": _factor_text(level.spatial),
                                     "permutation": level.spatial_permutation}
            if level.split is not None:
                entry["split"] = level.split
            entries.append(entry)
        if level.temporal or level.temporal_permutation:
            entries.append({"target": level.target, "type": "temporal",
                            "factors": _factor_text(level.temporal),
                            "permutation": level.temporal_permutation})
    return {"mapping": entries}


def dump_mapping(mapping: Mapping, path: str | Path) -> Path:
    """Write a mapping YAML file (atomically) that timeloop-model accepts."""
    return dump_yaml_file(mapping_to_dict(mapping), path)


def check_precision(arch: Arch, problem: Problem, mapping: Mapping | None = None,
                    source: str | None = None) -> None:
    """Refuse bit widths a level cannot store: wider than its word, or <= 0 (PrecisionError)."""
    names = problem.shape.dataspace_names
    for level in arch.levels:
        kept = names if mapping is None else mapping.for_level(level.name).kept(names)
        for dataspace in (d for d in names if d in kept):
            bits = problem.precision.bits(dataspace) if dataspace in ("Inputs", "Weights", "Outputs") else None
            problem_text = packing_problem(bits, level.word_bits)
            if problem_text:
                raise PrecisionError(f"{dataspace} at level {level.name}: {problem_text}", file=source,
                                     field=f"problem.instance.bitwidths.{dataspace}",
                                     fix=f"use a bit width between 1 and {level.word_bits}")


def validate_mapping(mapping: Mapping, arch: Arch, problem: Problem,
                     source: str | None = None) -> None:
    """Check names, factor products, spatial fan-out and bit widths; raise MappingError."""
    dims = problem.shape.dimensions
    spaces = problem.shape.dataspace_names
    products = {d: 1 for d in dims}
    for level in mapping.levels:
        where = f"mapping target {level.target}"
        if level.target not in arch.level_names:
            raise MappingError(f"unknown level '{level.target}'", file=source, field=where,
                               fix=unknown_name_fix(level.target, arch.level_names, "levels"))
        for kind, factors in (("temporal", level.temporal), ("spatial", level.spatial)):
            for dim, value in factors.items():
                if dim not in products:
                    raise MappingError(f"unknown dimension '{dim}' in {kind} factors", file=source,
                                       field=f"{where} ({kind}).factors",
                                       fix=unknown_name_fix(dim, dims, "dimensions"))
                if value < 1:
                    raise MappingError(f"{kind} factor {dim}={value} must be >= 1", file=source,
                                       field=f"{where} ({kind}).factors",
                                       fix="a complete mapping gives every factor as an integer >= 1")
                products[dim] *= value
        for kind, perm in (("temporal", level.temporal_permutation),
                           ("spatial", level.spatial_permutation)):
            for dim in perm:
                if dim not in products:
                    raise MappingError(f"unknown dimension '{dim}' in {kind} permutation",
                                       file=source, field=f"{where} ({kind}).permutation",
                                       fix=unknown_name_fix(dim, dims, "dimensions"))
        for name in (level.keep or ()) + (level.bypass or ()):
            if name not in spaces:
                raise MappingError(f"unknown dataspace '{name}' in keep/bypass", file=source,
                                   field=f"{where} (datatype)",
                                   fix=unknown_name_fix(name, spaces, "dataspaces"))
        _check_fanout(level, arch, source)
    outer = arch.levels[0].name
    missing = [ds for ds in spaces if ds not in mapping.for_level(outer).kept(spaces)]
    if missing:
        raise MappingError(f"the outermost level {outer} does not keep {', '.join(missing)}, so "
                           "it would have no storage", file=source,
                           field=f"mapping target {outer} (datatype)",
                           fix=f"keep every dataspace at {outer} (Timeloop requires it)")
    for dim in dims:
        if products[dim] != problem.bounds[dim]:
            raise MappingError(f"factors of {dim} multiply to {products[dim]}, but the problem has "
                               f"{dim} = {problem.bounds[dim]}", file=source, field=f"mapping factors {dim}",
                               fix=f"make the {dim} factors over all levels multiply to {problem.bounds[dim]}")
    check_precision(arch, problem, mapping, source)


def _check_fanout(level: LevelMapping, arch: Arch, source: str | None) -> None:
    fan_x, fan_y = arch.fanout(level.target)
    x, y = level.spatial_xy()
    used_x, used_y = _product(x.values()), _product(y.values())
    if level.split is None:
        fits, used, available = used_x * used_y <= fan_x * fan_y, used_x * used_y, fan_x * fan_y
    else:
        fits = used_x <= fan_x and used_y <= fan_y
        used, available = f"{used_x}x{used_y}", f"{fan_x}x{fan_y}"
    if not fits:
        raise MappingError(f"spatial factors need a fan-out of {used} (X x Y), level has {available}",
                           file=source, field=f"mapping target {level.target} (spatial)",
                           fix="reduce the spatial factors or move them to another level")


def _product(values: Any) -> int:
    total = 1
    for value in values:
        total *= value
    return total
