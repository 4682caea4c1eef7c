"""Read Timeloop v0.4 architecture specs (the flat ``nodes:`` list) as the v0.3 tree QuantMap uses.

pytimeloop's front-end parses this format fully but needs a Timeloop v4 build with its Python
bindings, which the tools QuantMap supports (the fork, stock 4a74d71/v3.0.3) do not have; this
hand-written reader covers the constructs the shipped templates need:

- ``!Container`` nodes open a new level of the tree; every node after one lies inside it (the
  list is read top-down, outermost first), ``!Hierarchical`` nodes nest their own ``nodes:``;
- ``!Component`` nodes are leaves (``class``, ``subclass``, ``attributes``);
- ``spatial: {meshX: X, meshY: Y}`` on either replicates the node X*Y times; a leaf's meshX is the
  product of the meshX of its containers and its own, as v0.3 states it per leaf.

Everything else a node carries (constraints, required actions, area share) is ignored: QuantMap
reads constraints from the v0.3 constraint files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import SpecError
from .yamlio import TAG_KEY


def is_v04(architecture: Any) -> bool:
    """True for a ``nodes:``-style (v0.4) architecture section."""
    return isinstance(architecture, Mapping) and "nodes" in architecture


def _spatial(node: Mapping[str, Any]) -> tuple[int, int]:
    spatial = node.get("spatial") or {}
    return int(spatial.get("meshX", 1)), int(spatial.get("meshY", 1))


def _named(node: Mapping[str, Any], count: int) -> str:
    name = str(node["name"])
    return f"{name}[0..{count - 1}]" if count > 1 else name


def _convert(nodes: Any, parent: dict[str, Any], mesh_x: int, source: str | None,
             where: str) -> None:
    current, current_mesh = parent, mesh_x
    for i, node in enumerate(nodes or []):
        here = f"{where}[{i}]"
        if not isinstance(node, Mapping) or "name" not in node and node.get(TAG_KEY) != "Hierarchical":
            raise SpecError("node without a name", file=source, field=here,
                            fix="give every !Container and !Component a 'name:'")
        tag = node.get(TAG_KEY, "Component" if "class" in node else "Container")
        x, y = _spatial(node)
        if tag == "Hierarchical":
            _convert(node.get("nodes"), current, current_mesh, source, f"{here}.nodes")
        elif tag == "Container":
            child = {"name": _named(node, x * y), "attributes": dict(node.get("attributes") or {}),
                     "local": [], "subtree": []}
            current.setdefault("subtree", []).append(child)
            current, current_mesh = child, current_mesh * x
        elif tag == "Component":
            if "class" not in node:
                raise SpecError(f"component '{node['name']}' has no class", file=source,
                                field=f"{here}.class", fix="add 'class: <storage or compute>'")
            attributes = dict(node.get("attributes") or {})
            if current_mesh * x > 1 or "spatial" in node:
                attributes.setdefault("meshX", current_mesh * x)
            leaf = {"name": _named(node, x * y), "class": node["class"],
                    "attributes": attributes}
            if "subclass" in node:
                leaf["subclass"] = node["subclass"]
            current.setdefault("local", []).append(leaf)
        else:
            raise SpecError(f"unsupported node type !{tag}", file=source, field=here,
                            fix="use !Container, !Component or !Hierarchical")


def tree_from_nodes(architecture: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """The v0.3 ``architecture`` section (``subtree``/``local``) of a v0.4 ``nodes:`` section."""
    root: dict[str, Any] = {"subtree": []}
    _convert(architecture.get("nodes"), root, 1, source, "architecture.nodes")
    return {"version": 0.3, "subtree": _prune(root["subtree"])}


def _prune(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop empty ``local``/``subtree``/``attributes`` lists so the tree reads like hand-written v0.3."""
    for node in nodes:
        for key in ("local", "subtree", "attributes"):
            if not node.get(key):
                node.pop(key, None)
        if "subtree" in node:
            _prune(node["subtree"])
    return nodes
