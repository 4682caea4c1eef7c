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

from ..errors import QuantMapError, SpecError, unknown_name_fix
from .entries import entry_frame
from .settings import Rule
from .v04 import is_v04, problem_dataspaces, tree_from_nodes, variables_scope
from .yamlio import load_specs

_INSTANCE_RANGE = re.compile(r"^(?P<base>[^\[]+)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")
_COMPUTE_CLASSES = ("mac", "compute", "alu")
DEFAULT_WORD_BITS = 16  # Timeloop's word (storage and arithmetic) when a component names none
MAX_INSTANCES = 1 << 20
MAX_BOUND = 1 << 31
CONSTRAINT_TYPES = ("temporal", "spatial", "bypass", "datatype", "utilization", "parallelism")


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
    maxima: Mapping[str, int] = field(default_factory=dict)  # 'D<=n': the factor is at most n
    minimum: float | None = None  # utilization (fraction) or parallelism (instances) minimum
    source: str | None = field(default=None, compare=False)  # the file it was read from

    def __hash__(self) -> int:
        return hash((self.target, self.type, tuple(sorted(self.factors.items())), self.permutation,
                     self.split, self.keep, self.bypass, self.origin,
                     tuple(sorted(self.maxima.items())), self.minimum))


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
    # Defaults Timeloop applies silently that change numbers, one line each (file and field).
    notes: tuple[str, ...] = field(default=(), compare=False, hash=False)

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


# What each attribute may be. Bounds are far beyond real hardware and keep every product
# (capacities, instance counts, bit totals) well inside 64-bit integers.
_WORD_BITS = Rule(int, minimum=1, maximum=4096, example=16)
_ATTRIBUTE_RULES: dict[str, Rule] = {
    "word-bits": _WORD_BITS,
    "width": Rule(int, minimum=1, maximum=1 << 20, example=64),
    "depth": Rule(int, minimum=1, maximum=1 << 40, example=1024),
    "block-size": Rule(int, minimum=1, maximum=1 << 16, example=4),
    "cluster-size": Rule(int, minimum=1, maximum=1 << 16, example=1),
    "meshX": Rule(int, minimum=1, maximum=MAX_INSTANCES, example=4),
    "bandwidth": Rule(float, minimum=0.0, maximum=1e12, example=16),
    "multiple-buffering": Rule(float, above=0.0, maximum=1e6, example=1),
}


def _split_instances(name: Any, where: str, source: str | None) -> tuple[str, int]:
    """``PE[0..167]`` -> (``PE``, 168); a name without a range is one instance."""
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise SpecError(f"name {name!r} is not text", file=source, field=f"{where}.name",
                        fix="write a name such as 'PE[0..167]' or 'buffer'")
    match = _INSTANCE_RANGE.match(str(name).strip())
    if not match:
        return str(name).strip(), 1
    low, high = int(match["lo"]), int(match["hi"])
    if high < low or high - low + 1 > MAX_INSTANCES:
        raise SpecError(f"instance range [{low}..{high}] is empty or larger than {MAX_INSTANCES}",
                        file=source, field=f"{where}.name",
                        fix="write [first..last] with first <= last, e.g. PE[0..167]")
    return match["base"].strip(), high - low + 1


def _first(attrs: Mapping[str, Any], *keys: str) -> tuple[str | None, Any]:
    for key in keys:
        if key in attrs and attrs[key] is not None:
            return key, attrs[key]
    return None, None


class _ArchReader:
    """Walks the v0.3 tree, accumulating instance counts and inherited attributes."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.storage: list[StorageLevel] = []
        self.arithmetic: list[ArithmeticLevel] = []
        self.notes: list[str] = []

    def error(self, message: str, field_name: str, fix: str) -> SpecError:
        return SpecError(message, file=self.source, field=field_name, fix=fix)

    def number(self, attrs: Mapping[str, Any], where: str, rule: str, *keys: str) -> Any:
        """The attribute under the first of ``keys`` present, checked by rule ``rule``."""
        key, value = _first(attrs, *keys)
        if key is None:
            return None
        return _ATTRIBUTE_RULES[rule].check(value, f"{where}.attributes.{key}", self.source,
                                            SpecError)

    def attributes(self, node: Mapping[str, Any], inherited: Mapping[str, Any],
                   where: str) -> dict[str, Any]:
        own = node.get("attributes")
        if own is not None and not isinstance(own, Mapping):
            raise self.error(f"attributes {own!r} is not a map", f"{where}.attributes",
                             "write 'attributes: {depth: 1024, word-bits: 16}'")
        return {**inherited, **(own or {})}

    def children(self, node: Mapping[str, Any], key: str, where: str) -> list[Any]:
        value = node.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(f"'{key}' is not a list", f"{where}.{key}",
                             f"write '{key}:' followed by '- name: ...' entries")
        return value

    def walk(self, nodes: Any, prefix: str, multiplicity: int, inherited: Mapping[str, Any],
             where: str) -> None:
        if not isinstance(nodes, list) or not nodes:
            raise self.error("expected a non-empty list of nodes", where,
                             "write '- name: ...' entries")
        for i, node in enumerate(nodes):
            node_where = f"{where}[{i}]"
            if not isinstance(node, Mapping) or "name" not in node:
                raise self.error("node without a name", node_where, "give every node a 'name:'")
            base, count = _split_instances(node["name"], node_where, self.source)
            instances = self.instances(multiplicity, count, node_where)
            attrs = self.attributes(node, inherited, node_where)
            path = f"{prefix}.{node['name']}" if prefix else str(node["name"])
            for j, leaf in enumerate(self.children(node, "local", node_where)):
                self.leaf(leaf, path, instances, attrs, f"{node_where}.local[{j}]")
            if "subtree" in node:
                self.walk(node["subtree"], path, instances, attrs, f"{node_where}.subtree")

    def instances(self, multiplicity: int, count: int, where: str) -> int:
        if multiplicity * count > MAX_INSTANCES:
            raise self.error(f"{multiplicity * count} instances is more than {MAX_INSTANCES}",
                             f"{where}.name", "use smaller instance ranges")
        return multiplicity * count

    def leaf(self, leaf: Any, prefix: str, multiplicity: int, inherited: Mapping[str, Any],
             where: str) -> None:
        if not isinstance(leaf, Mapping) or "name" not in leaf or "class" not in leaf:
            raise self.error("component needs 'name' and 'class'", where,
                             "write '- name: buf\\n  class: SRAM\\n  attributes: {...}'")
        base, count = _split_instances(leaf["name"], where, self.source)
        instances = self.instances(multiplicity, count, where)
        attrs = self.attributes(leaf, inherited, where)
        cls = str(leaf.get("subclass") or leaf["class"])
        kind = str(leaf["class"]).lower()
        path = f"{prefix}.{leaf['name']}"
        where = f"{where} ({base})"
        own = leaf.get("attributes") or {}
        mesh_x = self.number(own, where, "meshX", "meshX") or instances
        if instances % mesh_x:
            raise self.error(f"meshX = {mesh_x} does not divide the {instances} instances",
                             f"{where}.attributes.meshX", "use a divisor of the instance count")
        mesh_y = instances // mesh_x
        word_bits = self.number(attrs, where, "word-bits", "word-bits", "word_bits", "word_width",
                                "datawidth")
        if word_bits is None:  # Timeloop's default word, applied without a word
            word_bits = DEFAULT_WORD_BITS
            self.notes.append(f"{self.source or 'architecture'}: {where}.attributes.word-bits: "
                              f"not given, {DEFAULT_WORD_BITS} bits assumed (Timeloop's default)")
        if any(key in kind for key in _COMPUTE_CLASSES):
            self.arithmetic.append(ArithmeticLevel(base, cls, path, instances, mesh_x, mesh_y,
                                                   word_bits, attrs))
            return
        width = self.number(attrs, where, "width", "width", "memory_width")
        depth = self.number(attrs, where, "depth", "depth", "memory_depth")
        block = self.number(attrs, where, "block-size", "block-size", "block_size")
        if width is not None and width % word_bits:
            raise self.error(f"width {width} is not a multiple of the {word_bits}-bit word",
                             f"{where}.attributes.width",
                             f"use a width that is a multiple of {word_bits} (word-bits)")
        if block is None:
            block = width // word_bits if width else 1
        is_dram = "dram" in kind or "dram" in cls.lower()
        self.storage.append(StorageLevel(
            name=base, cls=cls, path=path,
            depth=None if is_dram else depth, width_bits=width,
            word_bits=word_bits, block_size=block,
            cluster_size=self.number(attrs, where, "cluster-size", "cluster-size",
                                     "cluster_size") or 1,
            instances=instances, mesh_x=mesh_x, mesh_y=mesh_y,
            read_bandwidth=self.number(attrs, where, "bandwidth", "read_bandwidth",
                                       "read-bandwidth"),
            write_bandwidth=self.number(attrs, where, "bandwidth", "write_bandwidth",
                                        "write-bandwidth"),
            shared_bandwidth=self.number(attrs, where, "bandwidth", "shared_bandwidth",
                                         "shared-bandwidth"),
            multiple_buffering=self.number(attrs, where, "multiple-buffering",
                                           "multiple-buffering", "multiple_buffering") or 1.0,
            technology=_first(attrs, "technology")[1], attributes=attrs))


_FACTOR = Rule(int, minimum=0, maximum=MAX_BOUND, example=4)  # 0 = the rest of the dimension
_MAXIMUM = Rule(int, minimum=1, maximum=MAX_BOUND, example=4)
_FACTOR_TOKEN = re.compile(r"([A-Za-z_][A-Za-z_]*)(<=|=)?(\d+)")


def parse_factor_terms(raw: Any, where: str, source: str | None,
                       error: type[QuantMapError] = SpecError) -> tuple[dict[str, int], dict[str, int]]:
    """Fixed factors and maxima from 'C=3 M<=4', ['C=3', 'M1'], 'C3 M1' or {C: 3}."""
    field_name = f"{where}.factors"
    if raw is None:
        return {}, {}
    items: list[tuple[str, str, Any]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), "=", v) for k, v in raw.items()]
    elif isinstance(raw, (str, list)):
        tokens = raw.split() if isinstance(raw, str) else raw
        for token in tokens:
            match = _FACTOR_TOKEN.fullmatch(token.strip()) if isinstance(token, str) else None
            if not match:
                raise error(f"factor {token!r} is not like 'C=4', 'C4' or 'C<=4'", file=source,
                            field=field_name, fix="write factors as 'C=4 M=1'")
            items.append((match[1], match[2] or "=", int(match[3])))
    else:
        raise error(f"factors {raw!r} is not text, a list or a map", file=source,
                    field=field_name, fix="write factors as 'C=4 M=1'")
    fixed: dict[str, int] = {}
    maxima: dict[str, int] = {}
    for dim, relation, value in items:
        if dim in fixed or dim in maxima:
            raise error(f"{dim} is given twice", file=source, field=field_name,
                        fix=f"give one factor of {dim}")
        rule = _FACTOR if relation == "=" else _MAXIMUM
        value = rule.check(value, f"{field_name}.{dim}", source, error)
        (fixed if relation == "=" else maxima)[dim] = value
    return fixed, maxima


def parse_factors(raw: Any, where: str, source: str | None,
                  error: type[QuantMapError] = SpecError) -> dict[str, int]:
    """Exact factors (no 'D<=n' maxima: those only make sense as constraints)."""
    fixed, maxima = parse_factor_terms(raw, where, source, error)
    if maxima:
        raise error(f"a maximum ({next(iter(maxima))}<=...) is not an exact factor", file=source,
                    field=f"{where}.factors", fix="give every factor as D=n")
    return fixed


_NAME_LIST = Rule(tuple, item=Rule(str), example=["Weights", "Inputs"])


def name_list(raw: Any, where: str, source: str | None,
              error: type[QuantMapError] = SpecError) -> tuple[str, ...] | None:
    """A dataspace list (one name or a list of names)."""
    if raw is None:
        return None
    return _NAME_LIST.check(raw, where, source, error)


def permutation_text(raw: Any, where: str, source: str | None,
                 error: type[QuantMapError] = SpecError) -> str | None:
    """Loop order as dimension letters, innermost first (blanks ignored, each letter once)."""
    if raw is None:
        return None
    if isinstance(raw, list):
        raw = "".join(str(p) for p in raw)
    if not isinstance(raw, str):
        raise error(f"permutation {raw!r} is not text", file=source, field=f"{where}.permutation",
                    fix="write the loop order as dimension letters, e.g. 'RSCMNPQ'")
    perm = "".join(raw.split())
    repeated = next((d for d in perm if perm.count(d) > 1), None)
    if repeated is not None:
        raise error(f"permutation '{raw}' names {repeated} twice", file=source,
                    field=f"{where}.permutation", fix="name each dimension at most once")
    return perm


# The keys each constraint type may carry (besides target and type).
_CONSTRAINT_KEYS = {"temporal": ("factors", "permutation"),
                    "spatial": ("factors", "permutation", "split"),
                    "bypass": ("keep", "bypass"), "datatype": ("keep", "bypass"),
                    "utilization": ("min",), "parallelism": ("min",)}
_SPLIT = Rule(int, minimum=0, maximum=1 << 16, example=1)  # past the dimension count: all in X
_MINIMUMS = {"utilization": Rule(float, above=0.0, maximum=1.0, example=0.5,
                                 help="fraction of the fan-out below the target"),
             "parallelism": Rule(int, minimum=1, maximum=MAX_INSTANCES, example=4,
                                 help="spatial instances used below the target")}


def _constraint(entry: Any, where: str, origin: str, source: str | None) -> Constraint:
    if not isinstance(entry, Mapping) or "target" not in entry or "type" not in entry:
        raise SpecError("constraint needs 'target' and 'type'", file=source, field=where,
                        fix="write '- target: <level>\\n  type: temporal|spatial|bypass'")
    ctype, target = entry_frame(entry, where, source, _CONSTRAINT_KEYS, SpecError,
                                "constraint", "constraints")
    if ctype in _MINIMUMS:
        if "min" not in entry:
            raise SpecError(f"{ctype} constraint without 'min'", file=source, field=f"{where}.min",
                            fix=f"give 'min:' {_MINIMUMS[ctype].help}")
        minimum = _MINIMUMS[ctype].check(entry["min"], f"{where}.min", source, SpecError)
    else:
        minimum = None
    factors, maxima = parse_factor_terms(entry.get("factors"), where, source)
    keep = name_list(entry.get("keep"), f"{where}.keep", source)
    bypass = name_list(entry.get("bypass"), f"{where}.bypass", source)
    both = set(keep or ()) & set(bypass or ())
    if both:
        raise SpecError(f"{sorted(both)[0]} is both kept and bypassed", file=source,
                        field=f"{where}.keep", fix="name each dataspace in keep or bypass, not both")
    split = entry.get("split")
    return Constraint(target=target, type=ctype, factors=factors, maxima=maxima,
                      permutation=permutation_text(entry.get("permutation"), where, source),
                      split=None if split is None else _SPLIT.check(split, f"{where}.split", source,
                                                                    SpecError),
                      keep=keep, bypass=bypass, minimum=minimum, origin=origin, source=source)


def parse_constraints(data: Mapping[str, Any], source: str | None = None,
                      origins: Mapping[str, str] | None = None) -> tuple[Constraint, ...]:
    """Read ``architecture_constraints`` and ``mapspace_constraints`` target lists; each
    constraint remembers the file it came from (``origins``: section -> file)."""
    out: list[Constraint] = []
    for section, origin in (("architecture_constraints", "architecture"),
                            ("mapspace_constraints", "mapspace"), ("constraints", "architecture")):
        block = data.get(section)
        if block is None:
            continue
        section_source = (origins or {}).get(section, source)
        targets = block.get("targets") if isinstance(block, Mapping) else block
        if targets is None:
            continue
        if not isinstance(targets, list):
            raise SpecError(f"{section} targets is not a list", file=section_source,
                            field=f"{section}.targets",
                            fix="write 'targets:' followed by '- target: ...' entries")
        out.extend(_constraint(entry, f"{section}.targets[{i}]", origin, section_source)
                   for i, entry in enumerate(targets))
    return tuple(out)


def _components(data: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    """Compound component classes by name (``compound_components.classes``)."""
    block = data.get("compound_components")
    classes = block.get("classes") if isinstance(block, Mapping) else block
    if classes is None:
        return {}
    if not isinstance(classes, list) or not all(isinstance(c, Mapping) and "name" in c
                                                for c in classes):
        raise SpecError("classes must be a list of named component classes", file=source,
                        field="compound_components.classes",
                        fix="write '- name: smartbuffer_SRAM' entries with attributes and subcomponents")
    return {str(c["name"]): c for c in classes}


def arch_from_dict(data: Mapping[str, Any], source: str | None = None,
                   name: str | None = None, origins: Mapping[str, str] | None = None) -> Arch:
    """Build an Arch from merged spec data (``architecture`` plus optional components/constraints);
    ``origins`` names the file of each top-level section, for error messages."""
    origins = origins or {}
    if not isinstance(data, Mapping) or "architecture" not in data:
        raise SpecError("missing key 'architecture'", file=source, field="architecture",
                        fix="give the architecture file (top-level 'architecture:')")
    spec = data["architecture"]
    if is_v04(spec):  # read as the v0.3 tree, which is also what Timeloop and Accelergy get
        scope = variables_scope(data, origins.get("variables", source))
        spec, node_constraints = tree_from_nodes(spec, source, scope,
                                                 problem_dataspaces(data.get("problem")))
        data = {**data, "architecture": spec}
        if node_constraints:
            data["architecture_constraints"] = _with_targets(
                data.get("architecture_constraints"), node_constraints, source,
                origins.get("architecture_constraints"))
            origins = {**origins, "architecture_constraints": source}
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
    components = _components(data, origins.get("compound_components", source))
    arch_name = name or _default_name(spec["subtree"])
    arch = Arch(arch_name, tuple(reader.storage), reader.arithmetic[0],
                parse_constraints(data, source, origins), components, dict(data), source,
                tuple(reader.notes))
    for constraint in arch.constraints:
        if constraint.target not in arch.level_names:
            raise SpecError(f"constraint targets unknown level '{constraint.target}'",
                            file=constraint.source,
                            field=f"{constraint.origin}_constraints.target",
                            fix=unknown_name_fix(constraint.target, arch.level_names, "levels"))
    return arch


def _with_targets(block: Any, targets: list[dict[str, Any]], source: str | None,
                  block_source: str | None) -> dict[str, Any]:
    """Node-level constraints of a v0.4 spec joined with a separate constraint file's targets:
    both hold, as for Timeloop, which reads every constraint it is given."""
    if block is None:
        return {"targets": targets}
    given = block.get("targets") if isinstance(block, Mapping) else block
    if given is not None and not isinstance(given, list):
        raise SpecError("architecture_constraints targets is not a list", file=block_source,
                        field="architecture_constraints.targets",
                        fix="write 'targets:' followed by '- target: ...' entries")
    return {"targets": [*targets, *(given or [])]}


def _default_name(subtree: Sequence[Any]) -> str:
    """The name of the first named sub-system below the root (e.g. 'eyeriss')."""
    node = subtree[0] if subtree else {}
    inner = node.get("subtree") or []
    return str((inner[0] if inner else node).get("name", "arch"))


def load_arch(*paths: str | Path, name: str | None = None) -> Arch:
    """Read an architecture from one or more YAML files (arch, components, constraints)."""
    data, origin = load_specs(paths)
    return arch_from_dict(data, origin.get("architecture", str(paths[0]) if paths else None), name,
                          origin)
