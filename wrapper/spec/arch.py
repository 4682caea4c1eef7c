"""Timeloop v0.3 architecture specifications read into the `Arch` value type.

An `Arch` lists the storage levels top-down (DRAM first) with everything a cost model needs
(capacity in words, word bits, block size, instances, mesh, bandwidths), the arithmetic level,
and the architecture/mapspace constraints. It keeps the raw spec so a backend can re-emit it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import SpecError, unknown_name_fix
from .v04 import is_v04, tree_from_nodes
from .yamlio import load_specs

_INSTANCE_RANGE = re.compile(r"^(?P<base>[^\[]+)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")
_COMPUTE_CLASSES = ("mac", "compute", "alu")
CONSTRAINT_TYPES = ("temporal", "spatial", "bypass", "datatype", "utilization",
                    "max_overbooked_proportion")


@dataclass(frozen=True)
class StorageLevel:
    """One storage level of the hierarchy (all its instances share these specs)."""

    name: str
    cls: str
    path: str
    depth: int | None
    width_bits: int | None
    word_bits: int
    block_size: int
    cluster_size: int
    instances: int
    mesh_x: int
    mesh_y: int
    read_bandwidth: float | None = None
    write_bandwidth: float | None = None
    shared_bandwidth: float | None = None
    multiple_buffering: float = 1.0
    technology: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def size_words(self) -> int | None:
        """Capacity in words (depth x block size); None for unbounded levels such as DRAM."""
        return None if self.depth is None else self.depth * self.block_size


@dataclass(frozen=True)
class ArithmeticLevel:
    """The compute units (MACs) at the bottom of the hierarchy."""

    name: str
    cls: str
    path: str
    instances: int
    mesh_x: int
    mesh_y: int
    word_bits: int
    attributes: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Constraint:
    """One architecture or mapspace constraint on a level, as Timeloop's constraint files say."""

    target: str
    type: str
    factors: Mapping[str, int] = field(default_factory=dict)
    permutation: str | None = None
    split: int | None = None
    keep: tuple[str, ...] | None = None
    bypass: tuple[str, ...] | None = None
    origin: str = "architecture"

    def __hash__(self) -> int:
        return hash((self.target, self.type, tuple(sorted(self.factors.items())), self.permutation,
                     self.split, self.keep, self.bypass, self.origin))


@dataclass(frozen=True)
class Arch:
    """An accelerator: storage levels top-down, arithmetic level, constraints, raw spec."""

    name: str
    levels: tuple[StorageLevel, ...]
    arithmetic: ArithmeticLevel
    constraints: tuple[Constraint, ...] = ()
    components: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    source: str | None = field(default=None, compare=False)

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    @property
    def inner_to_outer(self) -> tuple[StorageLevel, ...]:
        """Storage levels innermost first, the order of Timeloop's stats."""
        return tuple(reversed(self.levels))

    def level(self, name: str) -> StorageLevel:
        """The storage level called ``name`` (SpecError suggesting the closest name otherwise)."""
        for level in self.levels:
            if level.name == name:
                return level
        raise SpecError(f"unknown storage level '{name}'", file=self.source, field="target",
                        fix=unknown_name_fix(name, self.level_names, "levels"))

    def index(self, name: str) -> int:
        """Top-down index of a storage level."""
        return self.level_names.index(self.level(name).name)

    def child_mesh(self, name: str) -> tuple[int, int]:
        """Mesh (x, y) of whatever sits directly below level ``name``."""
        i = self.index(name)
        below = self.levels[i + 1] if i + 1 < len(self.levels) else self.arithmetic
        return below.mesh_x, below.mesh_y

    def fanout(self, name: str) -> tuple[int, int]:
        """Spatial fan-out (x, y) from one instance of ``name`` to the level below it."""
        level = self.level(name)
        child_x, child_y = self.child_mesh(name)
        return max(1, child_x // level.mesh_x), max(1, child_y // level.mesh_y)

    def constraints_for(self, target: str, ctype: str | None = None) -> tuple[Constraint, ...]:
        """Constraints on a level (optionally of one type), in file order."""
        return tuple(c for c in self.constraints
                     if c.target == target and (ctype is None or c.type == ctype))


def _split_instances(name: str) -> tuple[str, int]:
    match = _INSTANCE_RANGE.match(name.strip())
    if not match:
        return name.strip(), 1
    return match["base"].strip(), int(match["hi"]) - int(match["lo"]) + 1


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in attrs and attrs[key] is not None:
            return attrs[key]
    return None


class _ArchReader:
    """Walks the v0.3 tree, accumulating instance counts and inherited attributes."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.storage: list[StorageLevel] = []
        self.arithmetic: list[ArithmeticLevel] = []

    def error(self, message: str, field_name: str, fix: str) -> SpecError:
        return SpecError(message, file=self.source, field=field_name, fix=fix)

    def number(self, attrs: Mapping[str, Any], where: str, *keys: str) -> float | None:
        value = _first(attrs, *keys)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"{keys[0]} = {value!r} is not a number", f"{where}.attributes.{keys[0]}",
                             "write a plain number")
        if value < 0:
            raise self.error(f"{keys[0]} = {value} is negative", f"{where}.attributes.{keys[0]}",
                             "use a value >= 0")
        return value

    def walk(self, nodes: Any, prefix: str, multiplicity: int, inherited: Mapping[str, Any],
             where: str) -> None:
        if not isinstance(nodes, list):
            raise self.error("expected a list of nodes", where, "write '- name: ...' entries")
        for i, node in enumerate(nodes):
            node_where = f"{where}[{i}]"
            if not isinstance(node, Mapping) or "name" not in node:
                raise self.error("node without a name", node_where, "give every node a 'name:'")
            base, count = _split_instances(str(node["name"]))
            attrs = {**inherited, **(node.get("attributes") or {})}
            path = f"{prefix}.{node['name']}" if prefix else str(node["name"])
            for j, leaf in enumerate(node.get("local") or []):
                self.leaf(leaf, path, multiplicity * count, attrs, f"{node_where}.local[{j}]")
            if "subtree" in node:
                self.walk(node["subtree"], path, multiplicity * count, attrs, f"{node_where}.subtree")

    def leaf(self, leaf: Any, prefix: str, multiplicity: int, inherited: Mapping[str, Any],
             where: str) -> None:
        if not isinstance(leaf, Mapping) or "name" not in leaf or "class" not in leaf:
            raise self.error("component needs 'name' and 'class'", where,
                             "write '- name: buf\\n  class: SRAM\\n  attributes: {...}'")
        base, count = _split_instances(str(leaf["name"]))
        instances = multiplicity * count
        attrs = {**inherited, **(leaf.get("attributes") or {})}
        cls = str(leaf.get("subclass") or leaf["class"])
        kind = str(leaf["class"]).lower()
        path = f"{prefix}.{leaf['name']}"
        where = f"{where} ({base})"
        mesh_x = int(self.number(attrs if "meshX" in (leaf.get("attributes") or {}) else {},
                                 where, "meshX") or instances)
        if mesh_x < 1 or instances % mesh_x:
            raise self.error(f"meshX = {mesh_x} does not divide the {instances} instances",
                             f"{where}.attributes.meshX", "use a divisor of the instance count")
        mesh_y = instances // mesh_x
        word_bits = self.number(attrs, where, "word-bits", "word_bits", "datawidth")
        if any(key in kind for key in _COMPUTE_CLASSES):
            self.arithmetic.append(ArithmeticLevel(base, cls, path, instances, mesh_x, mesh_y,
                                                   int(word_bits or 16), attrs))
            return
        if word_bits is None or word_bits < 1:
            raise self.error("storage level has no word bits", f"{where}.attributes.word-bits",
                             "add 'word-bits: 16' (bits per operand word)")
        width = self.number(attrs, where, "width", "memory_width")
        depth = self.number(attrs, where, "depth", "memory_depth")
        block = self.number(attrs, where, "block-size", "block_size")
        if block is None:
            block = width // word_bits if width else 1
        if block < 1:
            raise self.error(f"block size {block} < 1", f"{where}.attributes.block-size",
                             "use block-size >= 1 (words per access)")
        is_dram = "dram" in kind or "dram" in cls.lower()
        self.storage.append(StorageLevel(
            name=base, cls=cls, path=path,
            depth=None if is_dram or depth is None else int(depth),
            width_bits=None if width is None else int(width),
            word_bits=int(word_bits), block_size=int(block),
            cluster_size=int(self.number(attrs, where, "cluster-size", "cluster_size") or 1),
            instances=instances, mesh_x=mesh_x, mesh_y=mesh_y,
            read_bandwidth=self.number(attrs, where, "read_bandwidth", "read-bandwidth"),
            write_bandwidth=self.number(attrs, where, "write_bandwidth", "write-bandwidth"),
            shared_bandwidth=self.number(attrs, where, "shared_bandwidth", "shared-bandwidth"),
            multiple_buffering=float(self.number(attrs, where, "multiple-buffering",
                                                 "multiple_buffering") or 1.0),
            technology=_first(attrs, "technology"), attributes=attrs))


def parse_factors(raw: Any, where: str, source: str | None) -> dict[str, int]:
    """Factors as 'C=3 M=1', ['C=3', 'M=1'], 'C3 M1' or {C: 3}."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items()]
    else:
        tokens = raw.split() if isinstance(raw, str) else [str(t) for t in raw]
        items = []
        for token in tokens:
            match = re.fullmatch(r"([A-Za-z_]\w*?)=?(\d+)", token.strip())
            if not match:
                raise SpecError(f"factor '{token}' is not like 'C=4' or 'C4'", file=source,
                                field=f"{where}.factors", fix="write factors as 'C=4 M=1'")
            items.append((match[1], int(match[2])))
    out: dict[str, int] = {}
    for dim, value in items:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(f"factor {dim}={value!r} is not an integer >= 0", file=source,
                            field=f"{where}.factors", fix="use a whole number (0 = fill the rest)")
        out[dim] = value
    return out


def name_list(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(str(x) for x in (raw if isinstance(raw, list) else [raw]))


def parse_constraints(data: Mapping[str, Any], source: str | None = None) -> tuple[Constraint, ...]:
    """Read ``architecture_constraints`` and ``mapspace_constraints`` target lists."""
    out: list[Constraint] = []
    for section, origin in (("architecture_constraints", "architecture"),
                            ("mapspace_constraints", "mapspace"), ("constraints", "architecture")):
        block = data.get(section)
        if block is None:
            continue
        targets = block.get("targets") if isinstance(block, Mapping) else block
        for i, entry in enumerate(targets or []):
            where = f"{section}.targets[{i}]"
            if not isinstance(entry, Mapping) or "target" not in entry or "type" not in entry:
                raise SpecError("constraint needs 'target' and 'type'", file=source, field=where,
                                fix="write '- target: <level>\\n  type: temporal|spatial|bypass'")
            ctype = str(entry["type"])
            if ctype not in CONSTRAINT_TYPES:
                raise SpecError(f"unknown constraint type '{ctype}'", file=source, field=f"{where}.type",
                                fix=unknown_name_fix(ctype, CONSTRAINT_TYPES, "types"))
            perm = entry.get("permutation")
            if isinstance(perm, list):
                perm = "".join(str(p) for p in perm)
            out.append(Constraint(target=str(entry["target"]), type=ctype,
                                  factors=parse_factors(entry.get("factors"), where, source),
                                  permutation=None if perm is None else str(perm),
                                  split=None if entry.get("split") is None else int(entry["split"]),
                                  keep=name_list(entry.get("keep")),
                                  bypass=name_list(entry.get("bypass")), origin=origin))
    return tuple(out)


def arch_from_dict(data: Mapping[str, Any], source: str | None = None,
                   name: str | None = None) -> Arch:
    """Build an Arch from merged spec data (``architecture`` plus optional components/constraints)."""
    if not isinstance(data, Mapping) or "architecture" not in data:
        raise SpecError("missing key 'architecture'", file=source, field="architecture",
                        fix="give the architecture file (top-level 'architecture:')")
    spec = data["architecture"]
    if is_v04(spec):  # read as the v0.3 tree, which is also what Timeloop and Accelergy get
        spec = tree_from_nodes(spec, source)
        data = {**data, "architecture": spec}
    if not isinstance(spec, Mapping) or "subtree" not in spec:
        raise SpecError("missing key 'subtree'", file=source, field="architecture.subtree",
                        fix="use Timeloop v0.3 format: architecture: {version: 0.3, subtree: [...]}")
    reader = _ArchReader(source)
    reader.walk(spec["subtree"], "", 1, {}, "architecture.subtree")
    if not reader.storage:
        raise SpecError("no storage levels found", file=source, field="architecture.subtree",
                        fix="add storage components (DRAM, SRAM, regfile, ...)")
    if len(reader.arithmetic) != 1:
        raise SpecError(f"expected exactly one arithmetic component, found {len(reader.arithmetic)}",
                        file=source, field="architecture.subtree",
                        fix="give one MAC component (class intmac/compute) at the bottom")
    names = [lv.name for lv in reader.storage]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise SpecError(f"storage level name '{duplicate}' is used twice", file=source,
                        field="architecture.subtree", fix="give every level a unique name")
    components = {str(c.get("name")): c for c in
                  ((data.get("compound_components") or {}).get("classes") or [])}
    arch_name = name or _default_name(spec["subtree"])
    arch = Arch(arch_name, tuple(reader.storage), reader.arithmetic[0],
                parse_constraints(data, source), components, dict(data), source)
    for constraint in arch.constraints:
        if constraint.target not in arch.level_names:
            raise SpecError(f"constraint targets unknown level '{constraint.target}'", file=source,
                            field=f"{constraint.origin}_constraints.target",
                            fix=unknown_name_fix(constraint.target, arch.level_names, "levels"))
    return arch


def _default_name(subtree: Sequence[Any]) -> str:
    """The name of the first named sub-system below the root (e.g. 'eyeriss')."""
    node = subtree[0] if subtree else {}
    inner = node.get("subtree") or []
    return str((inner[0] if inner else node).get("name", "arch"))


def load_arch(*paths: str | Path, name: str | None = None) -> Arch:
    """Read an architecture from one or more YAML files (arch, components, constraints)."""
    data, origin = load_specs(paths)
    return arch_from_dict(data, origin.get("architecture", str(paths[0]) if paths else None), name)
