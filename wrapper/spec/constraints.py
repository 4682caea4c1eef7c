"""Adaptation of constraint files written for the dense CNN-layer shape to other shapes.

Depthwise: Timeloop stops with "dimension M not found in problem shape" when constraints name M
on a depthwise problem. A depthwise layer computes output channel c from input channel c only, so
C takes the role M had: constraints naming a dimension the shape lacks have it removed, or
replaced by its role substitute where it was a free spatial fan-out dimension.

Grouped: the constraints never name the group dimension G, and Timeloop would leave an unnamed
dimension free at every level, spatial fan-outs included (a G fan-out across Eyeriss columns that
the row-stationary dataflow has no wiring for). Groups are independent convolutions, like the
images of a batch, so G follows the constraints of N: pinned to 1 wherever N is, and placed next
to N in every permutation that lists N.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

from ..errors import SpecError
from .arch import parse_factors
from .problem import BUILTIN_SHAPES, ProblemShape

# A dimension the problem shape lacks may hand its role to another one. In a depthwise layer
# output channel c is computed from input channel c only, so C is the output-channel dimension
# that M is in the dense CNN layer.
_ROLE_SUBSTITUTES = {"M": "C"}
# A dimension the dense-layer constraints never name follows the constraints of its role model:
# the groups of a grouped convolution are independent convolutions, like the images of a batch.
_ROLE_MODELS = {"G": "N"}
# Only dimensions of a known shape are adapted away; any other name is a mistake that the
# constraint reader reports, not something to drop silently.
_KNOWN_DIMS = frozenset(d for shape in BUILTIN_SHAPES.values() for d in shape.dimensions)


def _permutation_dims(perm: Any) -> list[str]:
    return [str(d) for d in perm] if isinstance(perm, list) else [c for c in str(perm) if not c.isspace()]


def _emit_factors(raw: Any, factors: Mapping[str, int]) -> Any:
    """Factors in the style the file used (string 'C=1 M=1', list of tokens, or map)."""
    if isinstance(raw, Mapping):
        return dict(factors)
    tokens = [f"{dim}={value}" for dim, value in factors.items()]
    return tokens if isinstance(raw, list) else " ".join(tokens)


def _edit_permutation(perm: Any, remove: str, rename: tuple[str, str] | None) -> Any:
    """Drop dim ``remove`` and optionally rename one dim, keeping the file's spacing style."""
    def new_name(dim: str) -> str:
        return rename[1] if rename and dim == rename[0] else dim
    if isinstance(perm, list):
        return [new_name(str(d)) for d in perm if str(d) != remove]
    text = "".join(new_name(c) for c in str(perm) if c != remove)
    return " ".join(text.split())


def _adapt_entry(entry: Mapping[str, Any], dims: Sequence[str], where: str) -> dict[str, Any]:
    """One constraint with every dimension outside ``dims`` removed or replaced."""
    out = dict(entry)
    perm = entry.get("permutation")
    try:
        factors = parse_factors(entry.get("factors"), where, None)
        named = list(factors) + (_permutation_dims(perm) if isinstance(perm, (str, list)) else [])
    except SpecError:
        return out  # malformed: left for the constraint reader to report with its file
    for dim in dict.fromkeys(d for d in named if d not in dims and d in _KNOWN_DIMS):
        remove, rename = dim, None
        substitute = _ROLE_SUBSTITUTES.get(dim)
        if entry.get("type") == "spatial" and substitute in dims and factors.get(dim) != 1 and (
                factors.get(substitute) == 1 or (substitute not in factors and dim in factors)):
            # ``dim`` fans out here and its substitute does not: the substitute takes its place.
            remove, rename = substitute, (dim, substitute)
            factors = {(substitute if d == dim else d): v for d, v in factors.items() if d != substitute}
        else:
            factors.pop(dim, None)
        if perm is not None:
            order = _permutation_dims(perm)
            split = out.get("split")
            if isinstance(split, int) and not isinstance(split, bool) and remove in order and order.index(remove) < split:
                out["split"] = out["split"] - 1
            perm = _edit_permutation(perm, remove, rename)
    for dim, model in _ROLE_MODELS.items():
        if dim in dims and model in dims and dim not in named:
            factors, perm = _follow(dim, model, factors, perm, out)
    if "factors" in entry:
        out["factors"] = _emit_factors(entry["factors"], factors)
    if perm is not None:
        out["permutation"] = perm
    return out


def _follow(dim: str, model: str, factors: dict[str, int], perm: Any, out: dict[str, Any]
            ) -> tuple[dict[str, int], Any]:
    """Give ``dim`` the constraints of ``model``: its pin to 1 and its place in the permutation
    (just outside it; ``split`` grows when that place is on the X side)."""
    if factors.get(model) == 1:
        factors = {**factors, dim: 1}
    if perm is not None and model in _permutation_dims(perm):
        order = _permutation_dims(perm)
        split = out.get("split")
        if isinstance(split, int) and not isinstance(split, bool) and order.index(model) < split:
            out["split"] = split + 1
        perm = _insert_after(perm, model, dim)
    return factors, perm


def _insert_after(perm: Any, anchor: str, dim: str) -> Any:
    """The permutation with ``dim`` right after ``anchor``, keeping the file's spacing style."""
    if isinstance(perm, list):
        at = [str(d) for d in perm].index(anchor) + 1
        return [*perm[:at], dim, *perm[at:]]
    return str(perm).replace(anchor, anchor + dim, 1)


def adapt_constraints_for_shape(constraints: Mapping[str, Any],
                                problem_shape: ProblemShape) -> dict[str, Any]:
    """Constraint data (``architecture_constraints`` / ``mapspace_constraints``) for a shape.

    Timeloop aborts when a constraint names a dimension the problem shape lacks. For each such
    dimension: temporal constraints just drop it (factors and permutation). In a spatial
    constraint where it is a free fan-out dimension (factor not 1) and its role substitute (C for
    M) is pinned to 1 there or not named while it has a fixed factor, the substitute takes its
    place (its own pin is removed, it moves to the missing dimension's slot, keeping the factor);
    otherwise the dimension is dropped. ``split`` follows removed dimensions. This reproduces the
    adapted constraint files of the depthwise reference runs exactly. A dimension of the shape
    that a constraint does not name but whose role model it names (G and N) gets the model's pin
    to 1 and its place in the permutation. The input is not modified.
    """
    dims = tuple(problem_shape.dimensions)
    out = copy.deepcopy(dict(constraints))
    for section in ("architecture_constraints", "mapspace_constraints"):
        block = out.get(section)
        if not isinstance(block, Mapping):
            continue
        targets = block.get("targets") or []
        if not isinstance(targets, list):
            continue  # malformed: left for the constraint reader to report with its file
        block["targets"] = [_adapt_entry(entry, dims, f"{section}.targets[{i}]")
                            if isinstance(entry, Mapping) else entry
                            for i, entry in enumerate(targets)]
    return out
