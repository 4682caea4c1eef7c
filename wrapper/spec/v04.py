"""Read Timeloop v0.4 specs (the format of the current front-end) as the v0.3 data QuantMap uses.

pytimeloop's front-end parses this format but needs a Timeloop v4 build with its Python bindings,
which the tools QuantMap supports (the fork, stock 4a74d71/v3.0.3) do not have. This reader turns
v0.4 into the v0.3 tree and constraint targets those tools read, the way the front-end does:

- the ``nodes:`` list is read top-down, outermost first; a ``!Container`` opens a new level of the
  tree and every node after it lies inside it; ``!Hierarchical`` nests its own ``nodes:``;
  ``!Parallel`` lists branches that sit side by side (each keeps its own dataspaces), which a
  linear Timeloop hierarchy holds as consecutive levels; ``!Nothing`` is an empty branch;
- ``!Component`` nodes are leaves (``class``, ``subclass``, ``attributes``); attributes of the
  enclosing containers are inherited, as in v0.3;
- ``spatial: {meshX, meshY}`` replicates a node; a container that carries constraints gets a
  one-word ``dummy_storage`` level named ``inter_<name>_spatial`` in front of its fan-out, holding
  its spatial constraints (as the front-end does), so two nested fan-outs keep their own factors,
  permutation and split; without constraints the fan-out stays with the level above;
- node-level ``constraints:`` become v0.3 targets: ``dataspace: {keep, bypass}`` a bypass entry,
  ``temporal`` and ``spatial`` their entries with the node as target;
- ``variables:`` (top level or per file) and Python-like arithmetic in attribute strings are
  evaluated (numbers, + - * / // % **, comparisons, ``if``/``else``, and the math functions the
  front-end offers); a string that does not evaluate stays text, as the front-end keeps it.

Sparse features (densities, sparse optimizations, metadata formats) are refused with one line:
QuantMap's engine counts dense accesses only.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import sys
from collections.abc import Mapping
from typing import Any, Callable

from ..errors import SpecError
from .yamlio import TAG_KEY

NODE_KINDS = ("Container", "Component", "Parallel", "Hierarchical", "Nothing")
DUMMY_CLASS = "dummy_storage"
_NOTED: set[str] = set()


def note(message: str) -> None:
    """One ``note:`` line on stderr per distinct message (a spec may be read several times)."""
    if message not in _NOTED:
        _NOTED.add(message)
        print(f"note: {message}", file=sys.stderr)


def is_v04(architecture: Any) -> bool:
    """True for a ``nodes:``-style (v0.4) architecture section."""
    return isinstance(architecture, Mapping) and "nodes" in architecture


def is_v04_problem(problem: Any) -> bool:
    """True for a v0.4 problem (``version: 0.4`` or ``data_spaces`` in its shape)."""
    if not isinstance(problem, Mapping):
        return False
    shape = problem.get("shape")
    return str(problem.get("version")) == "0.4" or (isinstance(shape, Mapping)
                                                      and "data_spaces" in shape)


# ---------------------------------------------------------------- expressions

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "ceil": math.ceil, "floor": math.floor, "log2": math.log2, "log": math.log, "sqrt": math.sqrt,
    "min": min, "max": max, "abs": abs, "round": round, "int": int, "float": float}
MAX_POWER = 1 << 12


class _Unresolved(Exception):
    """The text is not an expression over known names: the front-end keeps it as text."""


def _eval(node: ast.AST, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, scope)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in scope:
            return scope[node.id]
        raise _Unresolved(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
        value = _eval(node.operand, scope)
        return -value if isinstance(node.op, ast.USub) else (
            +value if isinstance(node.op, ast.UAdd) else not value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, scope), _eval(node.right, scope)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER:
            raise _Unresolved("power too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _eval(node.left, scope)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, scope)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, scope) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, scope) else node.orelse, scope)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS and not node.keywords):
        return _FUNCTIONS[node.func.id](*(_eval(a, scope) for a in node.args))
    raise _Unresolved(type(node).__name__)


def evaluate(value: Any, scope: Mapping[str, Any], where: str, source: str | None) -> Any:
    """An attribute's value: strings that are arithmetic over ``scope`` are computed, other
    strings stay text (the front-end keeps ``"LPDDR4"`` as text too); arithmetic that fails
    (division by zero, a math domain error) is an error naming the field."""
    if not isinstance(value, str) or len(value) > 1000:
        return value
    try:
        tree = ast.parse(value.strip(), mode="eval")
    except SyntaxError:
        return value
    try:
        return _eval(tree, scope)
    except _Unresolved:
        return value
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise SpecError(f"expression '{value}' fails: {exc}", file=source, field=where,
                        fix="correct the expression or the variables it uses") from None


def variables_scope(data: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    """The top-level ``variables:`` section evaluated in order (each may use the ones before)."""
    raw = data.get("variables")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError("variables is not a map", file=source, field="variables",
                        fix="write 'variables: {version: 0.4, name: value, ...}'")
    scope: dict[str, Any] = {}
    for key, value in raw.items():
        if key != "version":
            scope[str(key)] = evaluate(value, scope, f"variables.{key}", source)
    return scope


def _attributes(node: Mapping[str, Any], scope: Mapping[str, Any], where: str,
                source: str | None) -> dict[str, Any]:
    raw = node.get("attributes")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"attributes {raw!r} is not a map", file=source,
                        field=f"{where}.attributes", fix="write 'attributes: {depth: 1024, ...}'")
    local = dict(scope)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        out[str(key)] = local[str(key)] = evaluate(value, local, f"{where}.attributes.{key}",
                                                   source)
    return out


# ---------------------------------------------------------------- architecture

def _mesh(node: Mapping[str, Any], where: str, source: str | None) -> tuple[int, int]:
    spatial = node.get("spatial") or {}
    if not isinstance(spatial, Mapping):
        raise SpecError("spatial is not a map", file=source, field=f"{where}.spatial",
                        fix="write 'spatial: {meshX: 4, meshY: 2}'")
    unknown = set(spatial) - {"meshX", "meshY"}
    if unknown:
        raise SpecError(f"unknown spatial key '{sorted(unknown)[0]}'", file=source,
                        field=f"{where}.spatial", fix="give meshX and/or meshY")
    out = []
    for key in ("meshX", "meshY"):
        value = spatial.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 20:
            raise SpecError(f"{key} {value!r} is not a whole number from 1 to {1 << 20}",
                            file=source, field=f"{where}.spatial.{key}", fix=f"write {key}: 4")
        out.append(value)
    return out[0], out[1]


def _named(name: str, count: int) -> str:
    return f"{name}[0..{count - 1}]" if count > 1 else name


_CONSTRAINT_KINDS = ("dataspace", "temporal", "spatial")
_SPARSE_KEYS = ("sparse_optimizations", "compression", "metadata", "density")


class _TreeBuilder:
    """Walks the ``nodes:`` list, building the v0.3 tree and the constraint targets."""

    def __init__(self, source: str | None, scope: Mapping[str, Any],
                 dataspaces: tuple[str, ...]) -> None:
        self.source = source
        self.scope = dict(scope)
        self.dataspaces = dataspaces
        self.in_parallel = False
        self.constraints: list[dict[str, Any]] = []

    def fail(self, message: str, where: str, fix: str) -> SpecError:
        return SpecError(message, file=self.source, field=where, fix=fix)

    def node_constraints(self, node: Mapping[str, Any], target: str, where: str,
                         allowed: tuple[str, ...]) -> None:
        raw = node.get("constraints")
        if raw is None:
            return
        if not isinstance(raw, Mapping):
            raise self.fail("constraints is not a map", f"{where}.constraints",
                            "write 'constraints: {dataspace: {keep: [Inputs]}}'")
        for kind, body in raw.items():
            here = f"{where}.constraints.{kind}"
            if kind not in _CONSTRAINT_KINDS:
                raise self.fail(f"unknown constraint kind '{kind}'", here,
                                f"use one of {', '.join(_CONSTRAINT_KINDS)}")
            if kind not in allowed:
                raise self.fail(f"a {kind} constraint does not apply to this node", here,
                                f"this node takes {', '.join(allowed) or 'no constraints'}")
            if not isinstance(body, Mapping):
                raise self.fail(f"{kind} constraint is not a map", here,
                                "write e.g. {factors: [R=1], permutation: [C, M]}")
            entry: dict[str, Any] = {"target": target,
                                     "type": "bypass" if kind == "dataspace" else kind}
            keys = ("keep", "bypass") if kind == "dataspace" else (
                ("factors", "permutation", "split") if kind == "spatial"
                else ("factors", "permutation"))
            for key, value in body.items():
                if key not in keys:
                    raise self.fail(f"unknown key '{key}' in a {kind} constraint",
                                    f"{here}.{key}", f"use {', '.join(keys)}")
                entry[key] = value
            if kind == "dataspace" and self.in_parallel and "bypass" not in body and (
                    isinstance(body.get("keep"), list) and self.dataspaces):
                # a !Parallel branch holds only what it keeps: the rest flows past it
                entry["bypass"] = [d for d in self.dataspaces if d not in body["keep"]]
            self.constraints.append(entry)

    def walk(self, nodes: Any, parent: dict[str, Any], mesh_x: int, instances: int,
             inherited: Mapping[str, Any], where: str) -> None:
        if not isinstance(nodes, list):
            raise self.fail("nodes is not a list", where,
                            "write 'nodes:' followed by '- !Container', '- !Component' entries")
        current, current_x, current_n, attrs = parent, mesh_x, instances, dict(inherited)
        for i, node in enumerate(nodes):
            here = f"{where}[{i}]"
            if not isinstance(node, Mapping):
                raise self.fail("node is not a map", here,
                                "write '- !Component {name: buf, class: SRAM, attributes: {}}'")
            tag = node.get(TAG_KEY) or ("Component" if "class" in node else None)
            if tag not in NODE_KINDS:
                raise self.fail(f"unsupported node type {'!' + str(tag) if tag else '(none)'}",
                                here, "tag the node !Container, !Component, !Parallel, "
                                "!Hierarchical or !Nothing")
            if tag == "Nothing":
                continue
            if tag in ("Hierarchical", "Parallel"):
                if tag == "Parallel":
                    self.parallel(node.get("nodes"), current, current_x, current_n, attrs,
                                  f"{here}.nodes")
                else:
                    self.walk(node.get("nodes"), current, current_x, current_n, attrs,
                              f"{here}.nodes")
                continue
            name = self.name(node, here)
            for key in _SPARSE_KEYS:
                if key in node or key in (node.get("attributes") or {}):
                    raise self.fail(f"sparse feature '{key}' is not supported", f"{here}.{key}",
                                    "remove it: QuantMap's engine models dense accesses only")
            x, y = _mesh(node, here, self.source)
            own = _attributes(node, {**self.scope, **attrs}, here, self.source)
            if tag == "Container":
                if x * y > 1 and node.get("constraints"):
                    self.dummy(name, current, current_x, current_n, here)
                    self.node_constraints(node, f"inter_{name}_spatial", here, ("spatial",))
                elif node.get("constraints"):
                    raise self.fail(f"container '{name}' has constraints but no fan-out",
                                    f"{here}.constraints",
                                    "give it 'spatial: {meshX: ...}' or move the constraints to "
                                    "a component")
                child = {"name": _named(name, x * y), "attributes": own, "local": [],
                         "subtree": []}
                current.setdefault("subtree", []).append(child)
                current, current_x, current_n = child, current_x * x, current_n * x * y
                attrs = {**attrs, **own}
            else:
                self.component(node, name, x * y, own, current, current_x * x,
                               current_n * x * y, here)

    def parallel(self, nodes: Any, current: dict[str, Any], mesh_x: int, instances: int,
                 attrs: Mapping[str, Any], where: str) -> None:
        """Branches side by side: each is a component (or an empty !Nothing); a branch that
        opens containers would need a branching hierarchy, which Timeloop v3 cannot express."""
        if not isinstance(nodes, list):
            raise self.fail("nodes is not a list", where, "list the parallel branches")
        for i, node in enumerate(nodes):
            tag = node.get(TAG_KEY) if isinstance(node, Mapping) else None
            if tag in ("Container", "Hierarchical", "Parallel"):
                raise self.fail(f"a !{tag} inside !Parallel is not supported", f"{where}[{i}]",
                                "put only !Component (or !Nothing) branches in a !Parallel")
        self.in_parallel = True
        self.walk(nodes, current, mesh_x, instances, attrs, where)
        self.in_parallel = False

    def name(self, node: Mapping[str, Any], where: str) -> str:
        name = node.get("name")
        if not isinstance(name, str) or not name.strip() or "[" in name or "." in name:
            raise self.fail(f"name {name!r} is missing or not a plain name", f"{where}.name",
                            "give every !Container and !Component a 'name:' (letters, digits, _)")
        return name.strip()

    def dummy(self, name: str, current: dict[str, Any], mesh_x: int, instances: int,
              where: str) -> None:
        """The front-end's stand-in level for a container's fan-out: it stores nothing and has
        no temporal loops (the mapspace gives every ``dummy_storage`` level those rules)."""
        level = f"inter_{name}_spatial"
        attributes: dict[str, Any] = {"width": 1, "depth": 1, "datawidth": 1}
        if instances > 1:
            attributes["meshX"] = mesh_x
        current.setdefault("local", []).append({"name": level, "class": DUMMY_CLASS,
                                                "attributes": attributes})

    def component(self, node: Mapping[str, Any], name: str, copies: int,
                  attributes: dict[str, Any],
                  current: dict[str, Any], mesh_x: int, instances: int, where: str) -> None:
        if "class" not in node:
            raise self.fail(f"component '{name}' has no class", f"{where}.class",
                            "add 'class: <storage or compute class>'")
        if instances > 1 or "spatial" in node:
            attributes.setdefault("meshX", mesh_x)
        leaf = {"name": _named(name, copies), "class": node["class"], "attributes": attributes}
        if "subclass" in node:
            leaf["subclass"] = node["subclass"]
        current.setdefault("local", []).append(leaf)
        self.node_constraints(node, name, where, _CONSTRAINT_KINDS)


def tree_from_nodes(architecture: Mapping[str, Any], source: str | None = None,
                    scope: Mapping[str, Any] | None = None, dataspaces: tuple[str, ...] = ()
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The v0.3 ``architecture`` section (``subtree``/``local``) of a v0.4 ``nodes:`` section,
    and the constraint targets its nodes carry (v0.3 ``architecture_constraints`` entries).
    ``dataspaces`` (the problem's, when known) completes the bypass list of a !Parallel branch
    that names only what it keeps, as the front-end does."""
    builder = _TreeBuilder(source, scope or {}, dataspaces)
    root: dict[str, Any] = {"subtree": []}
    builder.walk(architecture.get("nodes"), root, 1, 1, {}, "architecture.nodes")
    return {"version": 0.3, "subtree": _prune(root["subtree"])}, builder.constraints


def _prune(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop empty ``local``/``subtree``/``attributes`` lists so the tree reads like hand-written v0.3."""
    for node in nodes:
        for key in ("local", "subtree", "attributes"):
            if not node.get(key):
                node.pop(key, None)
        if "subtree" in node:
            _prune(node["subtree"])
    return nodes


# ---------------------------------------------------------------- problem

_PROBLEM_RENAMES = {"data_spaces": "data-spaces"}
_DATASPACE_RENAMES = {"read_write": "read-write"}


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def problem_to_v03(problem: Mapping[str, Any], source: str | None) -> dict[str, Any]:
    """The v0.4 problem with v0.3 key names; densities and sparse settings are refused (the
    engine counts dense accesses, so accepting them would give numbers for another problem)."""
    instance = problem.get("instance")
    if isinstance(instance, Mapping):
        densities = instance.get("densities")
        if densities:
            raise SpecError("densities are not supported", file=source,
                            field="problem.instance.densities",
                            fix="remove them: QuantMap's engine models dense tensors only")
        instance = {k: v for k, v in instance.items() if k != "densities"}
    shape = problem.get("shape")
    if isinstance(instance, Mapping) and isinstance(shape, Mapping):
        known = set(_names(shape.get("dimensions"))) | {"bitwidths", "commonBitwidth"}
        coefficients = shape.get("coefficients")
        known |= {str(c.get("name")) for c in coefficients
                  if isinstance(c, Mapping)} if isinstance(coefficients, list) else set()
        for key in [k for k in instance if str(k) not in known]:
            note(f"{source}: problem.instance.{key} is neither a dimension nor a coefficient; "
                 "ignored, as Timeloop ignores it")
            instance = {k: v for k, v in instance.items() if k != key}
    if isinstance(shape, Mapping):
        shape = {_PROBLEM_RENAMES.get(k, k): v for k, v in shape.items()}
        spaces = shape.get("data-spaces")
        if isinstance(spaces, list):
            shape["data-spaces"] = [
                {_DATASPACE_RENAMES.get(k, k): v for k, v in ds.items()}
                if isinstance(ds, Mapping) else ds for ds in spaces]
    out = {k: v for k, v in problem.items() if k not in ("version", "shape", "instance")}
    if shape is not None:
        out["shape"] = shape
    if instance is not None:
        out["instance"] = instance
    return out


def problem_dataspaces(problem: Any) -> tuple[str, ...]:
    """The dataspace names of a raw problem section (v0.3 or v0.4 keys), () when it has none."""
    shape = problem.get("shape") if isinstance(problem, Mapping) else None
    if not isinstance(shape, Mapping):
        return ()
    spaces = shape.get("data_spaces", shape.get("data-spaces"))
    return tuple(str(ds["name"]) for ds in spaces or [] if isinstance(ds, Mapping) and "name" in ds) \
        if isinstance(spaces, list) else ()


# ---------------------------------------------------------------- writing v0.4

_RANGE_NAME = re.compile(r"^(?P<base>[^\[]+)\[(?P<lo>\d+)\.\.(?P<hi>\d+)\]$")
_V04_NAMES = {"word-bits": "datawidth"}


def _split_name(name: str) -> tuple[str, int]:
    match = _RANGE_NAME.match(name.strip())
    return (name.strip(), 1) if not match else (match["base"],
                                                int(match["hi"]) - int(match["lo"]) + 1)


def _spatial_of(count: int, leaf_mesh_x: int | None, mesh_x: int) -> dict[str, int]:
    """meshX/meshY of ``count`` copies under a level whose leaves so far span ``mesh_x``."""
    x = max(1, (leaf_mesh_x or mesh_x * count) // mesh_x)
    x = x if count % x == 0 else count
    spatial = {"meshX": x} if x > 1 else {}
    if count // x > 1:
        spatial["meshY"] = count // x
    return spatial


def _first_mesh_x(node: Mapping[str, Any]) -> int | None:
    for leaf in node.get("local") or []:
        value = (leaf.get("attributes") or {}).get("meshX")
        if value is not None:
            return int(value)
    for child in node.get("subtree") or []:
        found = _first_mesh_x(child)
        if found is not None:
            return found
    return None


def nodes_from_tree(architecture: Mapping[str, Any]) -> dict[str, Any]:
    """The v0.4 ``nodes:`` section of a v0.3 tree (the inverse of `tree_from_nodes` for trees
    without fan-out constraints): subtree nodes become !Container, leaves !Component, instance
    ranges and per-leaf meshX become ``spatial:`` meshes; ``word-bits`` is written
    ``datawidth``, the v0.4 name. Node tags are kept under `TAG_KEY`, as the loader keeps them."""
    nodes: list[dict[str, Any]] = []

    def walk(tree_nodes: list[Mapping[str, Any]], mesh_x: int) -> None:
        for node in tree_nodes:
            name, count = _split_name(str(node["name"]))
            container: dict[str, Any] = {TAG_KEY: "Container", "name": name}
            spatial = _spatial_of(count, _first_mesh_x(node), mesh_x) if count > 1 else {}
            if spatial:
                container["spatial"] = spatial
            if node.get("attributes"):
                container["attributes"] = dict(node["attributes"])
            nodes.append(container)
            inner_x = mesh_x * spatial.get("meshX", 1)
            for leaf in node.get("local") or []:
                leaf_name, copies = _split_name(str(leaf["name"]))
                attributes = {_V04_NAMES.get(k, k): v for k, v in
                              (leaf.get("attributes") or {}).items() if k != "meshX"}
                component: dict[str, Any] = {TAG_KEY: "Component", "name": leaf_name,
                                             "class": leaf["class"]}
                if "subclass" in leaf:
                    component["subclass"] = leaf["subclass"]
                if copies > 1:
                    own_x = (leaf.get("attributes") or {}).get("meshX")
                    component["spatial"] = _spatial_of(copies, own_x, inner_x)
                component["attributes"] = attributes
                nodes.append(component)
            walk(node.get("subtree") or [], inner_x)

    walk(architecture.get("subtree") or [], 1)
    return {"version": 0.4, "nodes": nodes}
