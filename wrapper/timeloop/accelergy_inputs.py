"""Accelergy's inputs in its v0.4 format, rendered from the same spec the Timeloop side gets.

Accelergy 0.4 hands v0.3 inputs to its plug-ins as legacy inputs, and the Aladdin plug-in (register
files, adders, MACs) then declines them, so those components fall back to the placeholder table
(1 pJ per action). With v0.4 inputs every shipped component gets a real estimate. Three things
differ from v0.3:

- ``version: 0.4`` on the architecture and the compound components;
- literal text values are quoted (``technology: "45nm"``): Accelergy 0.4 evaluates unquoted
  values as expressions, so only quoting keeps a literal a literal. Literals are the attribute
  values of architecture nodes and the attribute defaults of compound classes; subcomponent
  attributes (``width: log(memory_depth)``) and action arguments (``0..1``) are expressions and
  stay unquoted;
- ``global_cycle_seconds`` (1 ns unless the spec sets it) among the root node's attributes, which
  the plug-ins need to turn power into energy per action;
- a ``technology`` at the root: Accelergy 0.4 requires one for every component, while v0.3 specs
  often state it only below the root (the DRAM beside the chip has none); the first technology
  the tree names is used.

The Timeloop side keeps the v0.3 spec (the fork reads only v0.3).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import yaml

from ..spec.arch import Arch
from ..spec.precision import Precision
from .patching import leaves_by_name

ACCELERGY_VERSION = 0.4
GLOBAL_CYCLE_SECONDS = 1e-9
NOTE = ("Accelergy ran on v0.4 inputs rendered from the architecture and component specs "
        "(quoted literals, global_cycle_seconds 1e-9), so its plug-ins give real estimates")


class _Literal(str):
    """A text value Accelergy must read as text, not as an expression."""


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with ``_Literal`` values double-quoted."""


_Dumper.add_representer(
    _Literal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", str(value),
                                                            style='"'))


def _quote_literals(attributes: Any) -> Any:
    if not isinstance(attributes, Mapping):
        return attributes
    return {key: _Literal(value) if isinstance(value, str) else value
            for key, value in attributes.items()}


def _architecture(tree: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(tree))
    out["version"] = ACCELERGY_VERSION

    def visit(nodes: Any) -> None:
        for node in nodes or []:
            if "attributes" in node:
                node["attributes"] = _quote_literals(node["attributes"])
            for leaf in node.get("local") or []:
                if "attributes" in leaf:
                    leaf["attributes"] = _quote_literals(leaf["attributes"])
            visit(node.get("subtree"))

    visit(out.get("subtree"))
    roots = out.get("subtree") or []
    if roots:
        attributes = roots[0].setdefault("attributes", {})
        attributes.setdefault("global_cycle_seconds", GLOBAL_CYCLE_SECONDS)
        technology = _first_technology(roots)
        if technology is not None:
            attributes.setdefault("technology", technology)
    return out


def _first_technology(nodes: Any) -> Any:
    """The first ``technology`` attribute of a tree, outermost first."""
    for node in nodes or []:
        for item in (node, *(node.get("local") or [])):
            value = (item.get("attributes") or {}).get("technology")
            if value is not None:
                return value
        found = _first_technology(node.get("subtree"))
        if found is not None:
            return found
    return None


def _components(section: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(section))
    out["version"] = ACCELERGY_VERSION
    for cls in out.get("classes") or []:
        if "attributes" in cls:
            cls["attributes"] = _quote_literals(cls["attributes"])
    return out


def accelergy_v04_text(spec: Mapping[str, Any]) -> str:
    """The architecture and compound components of a merged spec as one Accelergy 0.4 file."""
    data: dict[str, Any] = {"architecture": _architecture(spec["architecture"])}
    if spec.get("compound_components"):
        data["compound_components"] = _components(spec["compound_components"])
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def placeholder_components(summary: Any) -> list[str]:
    """Components of an Accelergy ERT summary with a primitive priced by the placeholder
    ``dummy_table`` estimator (its energies are 1 pJ per action, not estimates)."""
    tables = ((summary or {}).get("ERT_summary") or {}).get("table_summary") or []
    found = []
    for table in tables:
        estimators = table.get("primitive_estimation(s)") or []
        if any(str(e.get("estimator")) == "dummy_table" for e in estimators):
            found.append(str(table.get("name")))
    return found


def with_mac_width(arch: Arch, precision: Precision) -> dict[str, Any]:
    """A deep copy of ``arch``'s spec whose MAC ``datawidth`` is the widest of the problem's
    Inputs and Weights (at most the unit's own width): what operand-width MAC scaling hands
    Accelergy. Native precision leaves the unit as it is."""
    spec = copy.deepcopy(dict(arch.spec))
    unit = arch.arithmetic
    widths = [b for b in (precision.inputs, precision.weights) if b]
    leaf = leaves_by_name(spec).get(unit.name)
    if widths and leaf is not None:
        attrs = leaf.setdefault("attributes", {})
        own = attrs.get("datawidth") or unit.word_bits
        attrs["datawidth"] = min(max(widths), int(own))
    return spec
