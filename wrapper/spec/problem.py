"""Timeloop problem specifications: a shape (dimensions, coefficients, dataspace projections) and
an instance (dimension bounds, coefficient values, per-dataspace bit widths).

Shapes are data, not code paths: the dense CNN layer, the depthwise layer (no M) and anything a
user writes are all `ProblemShape` values, so the engine and the mapper never special-case them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import SpecError, require_keys, unknown_name_fix
from .precision import DATASPACES, Precision
from .settings import Rule
from .v04 import is_v04_problem, problem_to_v03
from .yamlio import dump_yaml_file, load_yaml_file


@dataclass(frozen=True)
class ProjectionTerm:
    """One term ``coefficient * dim`` of a dataspace rank (coefficient None means 1)."""

    dim: str
    coefficient: str | None = None


@dataclass(frozen=True)
class DataspaceShape:
    """A tensor of the problem: each rank is a sum of projection terms over problem dimensions."""

    name: str
    projection: tuple[tuple[ProjectionTerm, ...], ...]
    read_write: bool = False

    @property
    def dims(self) -> frozenset[str]:
        """Problem dimensions this dataspace depends on (the others are its reuse dimensions)."""
        return frozenset(term.dim for rank in self.projection for term in rank)


@dataclass(frozen=True)
class ProblemShape:
    """Dimensions, coefficients with defaults, and dataspaces of a family of problems."""

    name: str
    dimensions: tuple[str, ...]
    coefficients: tuple[tuple[str, int], ...]
    dataspaces: tuple[DataspaceShape, ...]

    @property
    def dataspace_names(self) -> tuple[str, ...]:
        return tuple(ds.name for ds in self.dataspaces)

    def dataspace(self, name: str) -> DataspaceShape:
        """The dataspace called ``name`` (SpecError naming the valid ones otherwise)."""
        for ds in self.dataspaces:
            if ds.name == name:
                return ds
        raise SpecError(f"unknown dataspace '{name}'", field="problem.shape.data-spaces",
                        fix=unknown_name_fix(name, self.dataspace_names, "dataspaces"))


@dataclass(frozen=True)
class Problem:
    """One concrete problem: shape, dimension bounds, coefficient values and bit widths."""

    shape: ProblemShape
    bounds: Mapping[str, int]
    coefficients: Mapping[str, int] = field(default_factory=dict)
    precision: Precision = Precision()
    source: str | None = field(default=None, compare=False)  # the file it was read from

    def __hash__(self) -> int:
        return hash((self.shape, tuple(sorted(self.bounds.items())),
                     tuple(sorted(self.coefficients.items())), self.precision))

    @property
    def macs(self) -> int:
        """Number of multiply-accumulates: the product of all dimension bounds."""
        total = 1
        for dim in self.shape.dimensions:
            total *= self.bounds[dim]
        return total

    def dataspace(self, name: str) -> DataspaceShape:
        return self.shape.dataspace(name)

    def coefficient(self, name: str | None) -> int:
        """Value of a projection coefficient (1 for a bare dimension)."""
        return 1 if name is None else self.coefficients[name]

    def with_precision(self, precision: Precision) -> "Problem":
        """The same problem at other bit widths."""
        return Problem(self.shape, self.bounds, self.coefficients, precision, self.source)


_COEFFS = (("Wstride", 1), ("Hstride", 1), ("Wdilation", 1), ("Hdilation", 1))
_INPUT_W = (ProjectionTerm("R", "Wdilation"), ProjectionTerm("P", "Wstride"))
_INPUT_H = (ProjectionTerm("S", "Hdilation"), ProjectionTerm("Q", "Hstride"))


def _ranks(*dims: str) -> tuple[tuple[ProjectionTerm, ...], ...]:
    return tuple((ProjectionTerm(d),) for d in dims)


CNN_LAYER_SHAPE = ProblemShape(
    name="CNN-Layer",
    dimensions=("C", "M", "R", "S", "N", "P", "Q"),
    coefficients=_COEFFS,
    dataspaces=(
        DataspaceShape("Weights", _ranks("C", "M", "R", "S")),
        DataspaceShape("Inputs", _ranks("N", "C") + (_INPUT_W, _INPUT_H)),
        DataspaceShape("Outputs", _ranks("N", "M", "Q", "P"), read_write=True),
    ),
)

DEPTHWISE_SHAPE = ProblemShape(
    name="Depthwise-CNN-Layer",
    dimensions=("C", "P", "Q", "R", "S", "N"),
    coefficients=_COEFFS,
    dataspaces=(
        DataspaceShape("Weights", _ranks("C", "R", "S")),
        DataspaceShape("Inputs", _ranks("N", "C") + (_INPUT_W, _INPUT_H)),
        DataspaceShape("Outputs", _ranks("N", "C", "P", "Q"), read_write=True),
    ),
)

# A grouped convolution (1 < groups, not depthwise): G groups, each a dense convolution of C input
# and M output channels (C and M count channels per group). Folding the groups into N or into a
# dense layer would share one weight tile across groups, so the groups get a dimension of their own
# that indexes every dataspace.
GROUPED_SHAPE = ProblemShape(
    name="Grouped-CNN-Layer",
    dimensions=("G", "C", "M", "R", "S", "N", "P", "Q"),
    coefficients=_COEFFS,
    dataspaces=(
        DataspaceShape("Weights", _ranks("G", "C", "M", "R", "S")),
        DataspaceShape("Inputs", _ranks("N", "G", "C") + (_INPUT_W, _INPUT_H)),
        DataspaceShape("Outputs", _ranks("N", "G", "M", "Q", "P"), read_write=True),
    ),
)

BUILTIN_SHAPES = {"cnn-layer": CNN_LAYER_SHAPE, "cnn_layer": CNN_LAYER_SHAPE,
                  "depthwise-cnn-layer": DEPTHWISE_SHAPE, "depthwise": DEPTHWISE_SHAPE,
                  "grouped-cnn-layer": GROUPED_SHAPE, "grouped": GROUPED_SHAPE}


# Dimension bounds far beyond any layer, small enough that every count, tile and product of the
# engine stays exact in 64-bit integers and the mapper's factor tables stay small.
MAX_DIMENSION = 1 << 20
MAX_MACS = 1 << 50
_DIMENSION = Rule(str, pattern=r"[A-Za-z]", help="one letter (loop orders are letter strings)",
                  example="C")
_DIMENSIONS = Rule(tuple, item=_DIMENSION, example=["C", "M", "R", "S", "N", "P", "Q"])
_NAME = Rule(str, example="Weights")
_COEFFICIENT = Rule(int, minimum=1, maximum=1 << 16, example=1)
_BOUND = Rule(int, minimum=1, maximum=MAX_DIMENSION, example=32)
_READ_WRITE = Rule(bool, optional=True)


def _list(value: Any, where: str, source: str | None, example: str) -> list[Any]:
    if not isinstance(value, list):
        raise SpecError(f"{value!r} is not a list", file=source, field=where,
                        fix=f"write a list, e.g. {example}")
    return value


def _parse_term(raw: Any, dims: tuple[str, ...], coeffs: dict[str, int], where: str,
                source: str | None) -> ProjectionTerm:
    """A term is [dim] or [dim, coefficient] (either order is accepted, resolved by name)."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= 2:
        raise SpecError(f"projection term {raw!r} is not [dim] or [dim, coefficient]", file=source,
                        field=where, fix="write terms like [R, Wdilation] or [C]")
    names = [str(x) for x in raw]
    dim_names = [n for n in names if n in dims]
    coef_names = [n for n in names if n in coeffs]
    if len(dim_names) != 1 or len(dim_names) + len(coef_names) != len(names):
        bad = next((n for n in names if n not in dims and n not in coeffs), names[0])
        raise SpecError(f"unknown dimension or coefficient '{bad}' in projection", file=source,
                        field=where, fix=unknown_name_fix(bad, list(dims) + list(coeffs),
                                                          "dimensions and coefficients"))
    return ProjectionTerm(dim_names[0], coef_names[0] if coef_names else None)


def _unique(names: tuple[str, ...], what: str, where: str, source: str | None) -> None:
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise SpecError(f"{what} '{repeated}' is given twice", file=source, field=where,
                        fix=f"name each {what} once")


def shape_from_dict(data: Any, source: str | None = None) -> ProblemShape:
    """Parse ``problem.shape`` (a built-in shape name or a full shape map)."""
    if isinstance(data, str):
        shape = BUILTIN_SHAPES.get(data.lower())
        if shape is None:
            raise SpecError(f"unknown built-in problem shape '{data}'", file=source,
                            field="problem.shape",
                            fix=unknown_name_fix(data, sorted(BUILTIN_SHAPES), "shapes"))
        return shape
    if not isinstance(data, Mapping):
        raise SpecError("problem.shape must be a map", file=source, field="problem.shape",
                        fix="give name, dimensions, coefficients and data-spaces")
    require_keys(data, ("dimensions", "data-spaces"), "problem.shape", source)
    dims = _DIMENSIONS.check(data["dimensions"], "problem.shape.dimensions", source, SpecError)
    if not dims:
        raise SpecError("no dimensions", file=source, field="problem.shape.dimensions",
                        fix="list the loop dimensions, e.g. [C, M, R, S, N, P, Q]")
    _unique(dims, "dimension", "problem.shape.dimensions", source)
    coeffs: dict[str, int] = {}
    entries = data.get("coefficients") or []
    for i, entry in enumerate(_list(entries, "problem.shape.coefficients", source,
                                    "[{name: Wstride, default: 1}]")):
        where = f"problem.shape.coefficients[{i}]"
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise SpecError("coefficient entry needs a name", file=source, field=where,
                            fix="write {name: Wstride, default: 1}")
        name = _NAME.check(entry["name"], f"{where}.name", source, SpecError)
        if name in coeffs or name in dims:
            raise SpecError(f"coefficient '{name}' is given twice or is a dimension", file=source,
                            field=f"{where}.name", fix="give each coefficient a unique name")
        coeffs[name] = _COEFFICIENT.check(entry.get("default", 1), f"{where}.default", source,
                                          SpecError)
    dataspaces = []
    spaces = _list(data["data-spaces"], "problem.shape.data-spaces", source,
                   "[{name: Weights, projection: [[[C]], [[M]]]}]")
    if not spaces:
        raise SpecError("no data-spaces", file=source, field="problem.shape.data-spaces",
                        fix="list the tensors: Weights, Inputs, Outputs")
    for i, ds in enumerate(spaces):
        where = f"problem.shape.data-spaces[{i}]"
        if not isinstance(ds, Mapping) or "name" not in ds or "projection" not in ds:
            raise SpecError("data-space needs 'name' and 'projection'", file=source, field=where,
                            fix="write {name: Weights, projection: [[[C]], [[M]]]}")
        ranks = tuple(tuple(_parse_term(term, dims, coeffs, f"{where}.projection", source)
                            for term in _list(rank, f"{where}.projection", source, "[[C]]"))
                      for rank in _list(ds["projection"], f"{where}.projection", source,
                                        "[[[C]], [[M]]]"))
        dataspaces.append(DataspaceShape(_NAME.check(ds["name"], f"{where}.name", source,
                                                     SpecError), ranks,
                                         bool(_READ_WRITE.check(ds.get("read-write"),
                                                                f"{where}.read-write", source,
                                                                SpecError))))
    _unique(tuple(ds.name for ds in dataspaces), "data-space", "problem.shape.data-spaces", source)
    name = Rule(str, example="custom").check(data.get("name", "custom"), "problem.shape.name",
                                             source, SpecError)
    return ProblemShape(name, dims, tuple(coeffs.items()), tuple(dataspaces))


# The fork's spellings of the operand bit widths: one width for every dataspace, or a map per
# dataspace. Its patched stock build reads the same (patches/, patch 0001).
COMMON_WIDTH_KEYS = ("commonBitwidth", "commonDatawidth", "commonWordwidth")
WIDTH_MAP_KEYS = ("bitwidths", "datawidths", "wordwidths")


def _one_spelling(instance: Mapping, keys: tuple[str, ...], source: str | None) -> str | None:
    """The one key of ``keys`` the instance gives (None for none); two spellings of one setting
    are refused, as the fork would silently pick one."""
    given = [k for k in keys if k in instance]
    if len(given) > 1:
        raise SpecError(f"both {given[0]} and {given[1]} are given", file=source,
                        field=f"problem.instance.{given[1]}", fix="keep one of them")
    return given[0] if given else None


def _precision(instance: Mapping, source: str | None) -> Precision:
    """The operand bit widths of a problem instance in any of the fork's spellings. The fork
    reads the per-dataspace map only when no common width is given; both together are refused
    rather than one silently ignored (the patched build refuses them too)."""
    common = _one_spelling(instance, COMMON_WIDTH_KEYS, source)
    per_dataspace = _one_spelling(instance, WIDTH_MAP_KEYS, source)
    if common and per_dataspace:
        raise SpecError(f"both {common} and {per_dataspace} are given (the fork ignores "
                        f"{per_dataspace} then)", file=source,
                        field=f"problem.instance.{per_dataspace}",
                        fix=f"give {common} alone, or every dataspace's width in {per_dataspace}")
    if common:
        return Precision.from_bitwidths({d: instance[common] for d in DATASPACES}, file=source,
                                        field=f"problem.instance.{common}")
    if per_dataspace:
        return Precision.from_bitwidths(instance[per_dataspace], file=source,
                                        field=f"problem.instance.{per_dataspace}")
    return Precision()


def problem_from_dict(data: Any, source: str | None = None) -> Problem:
    """Parse a Timeloop problem (the map under or including the ``problem:`` key)."""
    if isinstance(data, Mapping) and "problem" in data:
        data = data["problem"]
    if not isinstance(data, Mapping):
        raise SpecError("no 'problem' map found", file=source, field="problem",
                        fix="the file needs a top-level 'problem:' with 'shape' and 'instance'")
    if is_v04_problem(data):
        data = problem_to_v03(data, source)
    require_keys(data, ("shape", "instance"), "problem", source)
    shape = shape_from_dict(data["shape"], source)
    instance = data["instance"]
    if not isinstance(instance, Mapping):
        raise SpecError("problem.instance must be a map of dimension bounds", file=source,
                        field="problem.instance", fix="write e.g. {C: 32, M: 64, ...}")
    coeff_defaults = dict(shape.coefficients)
    bounds = {d: 1 for d in shape.dimensions}
    coefficients = dict(coeff_defaults)
    precision = _precision(instance, source)
    for key, value in instance.items():
        field_name = f"problem.instance.{key}"
        if key in COMMON_WIDTH_KEYS or key in WIDTH_MAP_KEYS:
            continue
        if key == "densities":
            continue  # sparse densities do not change dense counts; accepted for compatibility
        if key not in bounds and key not in coefficients:
            raise SpecError(f"unknown dimension '{key}'", file=source, field=field_name,
                            fix=unknown_name_fix(str(key), list(shape.dimensions) + list(coeff_defaults),
                                                 "dimensions and coefficients"))
        rule = _BOUND if key in bounds else _COEFFICIENT
        (bounds if key in bounds else coefficients)[str(key)] = rule.check(value, field_name,
                                                                          source, SpecError)
    missing = [d for d in shape.dimensions if d not in instance]
    if missing:  # timeloop-model stops on an assertion for a dimension without a bound
        raise SpecError(f"no bound for dimension{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)}", file=source, field="problem.instance",
                        fix=f"give every dimension a bound, e.g. {missing[0]}: 1")
    problem = Problem(shape, bounds, coefficients, precision, source)
    if problem.macs > MAX_MACS:
        raise SpecError(f"the problem has {problem.macs} MACs, more than {MAX_MACS}", file=source,
                        field="problem.instance", fix="split the layer into smaller problems")
    return problem


def load_problem(path: str | Path) -> Problem:
    """Read a problem YAML file."""
    return problem_from_dict(load_yaml_file(path), str(path))


def shape_to_dict(shape: ProblemShape) -> dict[str, Any]:
    """The shape as Timeloop YAML data (terms written as [dim] or [dim, coefficient])."""
    def term(t: ProjectionTerm) -> list[str]:
        return [t.dim] if t.coefficient is None else [t.dim, t.coefficient]

    spaces = []
    for ds in shape.dataspaces:
        entry: dict[str, Any] = {"name": ds.name,
                                 "projection": [[term(t) for t in rank] for rank in ds.projection]}
        if ds.read_write:
            entry["read-write"] = True
        spaces.append(entry)
    return {"name": shape.name, "dimensions": list(shape.dimensions),
            "coefficients": [{"name": n, "default": v} for n, v in shape.coefficients],
            "data-spaces": spaces}


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    """The problem as Timeloop YAML data, with the fork's ``bitwidths:`` when set."""
    instance: dict[str, Any] = {d: problem.bounds[d] for d in problem.shape.dimensions}
    instance.update(problem.coefficients)
    if not problem.precision.is_native:
        instance["bitwidths"] = problem.precision.to_bitwidths()
    return {"problem": {"shape": shape_to_dict(problem.shape), "instance": instance}}


def dump_problem(problem: Problem, path: str | Path) -> Path:
    """Write a problem YAML file atomically."""
    return dump_yaml_file(problem_to_dict(problem), path)
