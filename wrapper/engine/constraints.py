"""Constraint resolution: the mapspace of one (arch, problem) from the architecture and mapspace
constraints.

Constraint semantics follow Timeloop's constraint parser and mapspace (checked against its
source):
- ``factors: D=n`` fixes the factor of dimension D in that tiling level. Fixed factors are taken
  innermost first; one that does not divide what is left of the bound is left free, as Timeloop's
  factorization (and the authors' fork behind the golden data) does: Simba's ``C=4`` at
  PEAccuBuffer on a layer with C = 3 is free there. ``D=0`` gives the level the rest of D: Timeloop reads it
  as "the full problem dimension", which equals "the remaining factor" whenever the other levels'
  fixed factors of D are 1 (the only case in which Timeloop's mapspace is not empty); we use the
  remaining factor, so both agree wherever Timeloop finds a mapping.
- ``permutation`` lists loops innermost first. Whitespace is ignored: Timeloop reads the string
  character by character and skips blanks, so ``'QRSC PNM'`` means ``'QRSCPNM'``. The listed
  dimensions are the innermost loops in that order; unlisted ones are free and permuted above them.
- spatial ``split``: the first ``split`` dimensions of the final spatial permutation run along the
  X axis of the fan-out, the rest along Y. Without a split Timeloop chooses one; we allow every
  X/Y assignment its split space can express (see `mapspace._x_allowed`).
- ``keep``/``bypass`` (type datatype or bypass): fixed per level and dataspace; anything left
  open is explored both ways; the outermost level keeps everything.
- ``factors: D<=n`` bounds the factor of D in that tiling level (options above it are dropped).
- ``type: utilization`` / ``type: parallelism`` with ``min:``: the spatial factors below the
  target must use at least that fraction of its fan-out / that many instances (`Slot.min_parallelism`,
  checked wherever the mappers prune: `MapSpace.splits_ok`).
Two constraints that cannot both hold (different factors, permutations, splits, keep and bypass
of one dataspace) are an error, "no mapping satisfies the constraints", naming both.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import PrecisionError, SpecError, unknown_name_fix
from ..spec.arch import Arch
from ..spec.v04 import DUMMY_CLASS
from ..spec.precision import packing_factor, packing_problem
from ..spec.problem import Problem
from ..spec.costmodel import FORK
from .factors import ordered_factorizations
from .mapspace import SPATIAL, TEMPORAL, MapSpace, Slot

# Constraint types that decide keep/bypass of dataspaces at a level.
BYPASS_TYPES = ("bypass", "datatype")
# Constraint types that set a minimum use of a level's spatial fan-out.
MINIMUM_TYPES = ("utilization", "parallelism")


def build_mapspace(arch: Arch, problem: Problem, accounting: str = FORK) -> MapSpace:
    """The mapspace of ``arch`` (with its constraints) for ``problem``.

    Raises SpecError for constraints that name unknown dimensions or admit no mapping, and
    PrecisionError when a dataspace the constraints force into a level is wider than its word.
    """
    dims = tuple(problem.shape.dimensions)
    dataspaces = tuple(problem.shape.dataspace_names)
    inner = arch.inner_to_outer
    for c in arch.constraints:
        if c.type in (SPATIAL, *MINIMUM_TYPES) and arch.fanout(c.target) == (1, 1):
            raise SpecError(f"{c.type} constraint on {c.target}, which has no fan-out",
                            file=c.source, field=f"{c.origin}_constraints target {c.target}",
                            fix=f"put {c.type} constraints on a level with more instances below it")
    slots_raw: list[dict] = []
    for li, level in enumerate(inner):
        fx, fy = arch.fanout(level.name)
        if fx * fy > 1:
            slots_raw.append(_raw_slot(arch, problem, level.name, SPATIAL, li, (fx, fy)))
        slots_raw.append(_raw_slot(arch, problem, level.name, TEMPORAL, li, (1, 1)))
    fixed, notes = _resolve_fixed(slots_raw, problem)
    slots = tuple(Slot(level=r["level"], kind=r["kind"], level_index=r["level_index"],
                       fixed=tuple((d, fixed[i][d]) for d in dims if d in fixed[i]),
                       prefix=r["prefix"], split=r["split"], fanout=r["fanout"],
                       free=tuple(d for d in dims if d not in fixed[i]),
                       maxima=tuple((d, r["maxima"][d]) for d in dims if d in r["maxima"]),
                       min_parallelism=r["min_parallelism"])
                  for i, r in enumerate(slots_raw))
    options = tuple(_dim_options(d, problem.bounds[d], slots, slots_raw) for d in dims)
    _check_spatial(slots, options, slots_raw)
    keep_rules = _keep_rules(arch, problem, [lv.name for lv in inner], dataspaces)
    packing = []
    for li, level in enumerate(inner):
        row = []
        for di, ds in enumerate(dataspaces):
            bits = problem.precision.bits(ds) if ds in ("Inputs", "Weights", "Outputs") else None
            if packing_problem(bits, level.word_bits) is None:
                row.append(packing_factor(bits, level.word_bits))
                continue
            if keep_rules[li][di] == "1":
                raise PrecisionError(f"{ds} at level {level.name}: "
                                     f"{packing_problem(bits, level.word_bits)}",
                                     file=problem.source or arch.source,
                                     field=f"problem.instance.bitwidths.{ds}",
                                     fix=f"use a bit width between 1 and {level.word_bits}")
            keep_rules[li][di] = "0"  # an open choice that can only be 'bypass'
            row.append(0)
        packing.append(tuple(row))
    return MapSpace(arch=arch, problem=problem, slots=slots, dims=dims, dataspaces=dataspaces,
                    level_names=tuple(lv.name for lv in inner),
                    keep_rules=tuple(tuple(r) for r in keep_rules), packing=tuple(packing),
                    dim_options=options, notes=tuple(notes), accounting=accounting)


def _raw_slot(arch: Arch, problem: Problem, level: str, kind: str, level_index: int,
              fanout: tuple[int, int]) -> dict:
    """Merge the constraints on one slot (arch and mapspace files may both speak about it);
    contradictions between them are errors naming both files."""
    dims = problem.shape.dimensions
    factors: dict[str, int] = {}
    maxima: dict[str, int] = {}
    given: dict[str, str] = {}  # what fixed each factor, permutation and split, for messages
    prefix: tuple[str, ...] = ()
    split = None
    min_parallelism = 1
    sources = sorted({c.source or arch.source or "" for c in arch.constraints_for(level)} - {""})
    for c in arch.constraints_for(level, kind):
        where = f"{c.origin}_constraints target {level} ({kind})"
        here = f"{c.source or arch.source}: {where}"
        for dim in (*c.factors, *c.maxima):
            if dim not in dims:
                raise SpecError(f"factor of unknown dimension '{dim}'", file=c.source,
                                field=f"{where}.factors", fix=unknown_name_fix(dim, dims, "dimensions"))
        for dim, value in c.factors.items():
            if dim in factors and factors[dim] != value:
                raise _conflict(f"{dim}={factors[dim]}", given[dim], f"{dim}={value}", here)
            factors[dim], given[dim] = value, here
        for dim, value in c.maxima.items():
            maxima[dim] = min(value, maxima.get(dim, value))
        if c.permutation is not None:
            perm = tuple(c.permutation)
            for dim in perm:
                if dim not in dims:
                    raise SpecError(f"permutation names unknown dimension '{dim}'", file=c.source,
                                    field=f"{where}.permutation",
                                    fix=unknown_name_fix(dim, dims, "dimensions"))
            if prefix and prefix != perm:
                raise _conflict(f"permutation {''.join(prefix)}", given["permutation"],
                                f"permutation {''.join(perm)}", here)
            prefix, given["permutation"] = perm, here
        if c.split is not None:
            if split is not None and split != min(c.split, len(dims)):
                raise _conflict(f"split {split}", given["split"], f"split {c.split}", here)
            split, given["split"] = min(c.split, len(dims)), here
    for dim, value in maxima.items():
        if factors.get(dim, 1) > value:
            raise _conflict(f"{dim}={factors[dim]}", given[dim], f"{dim}<={value}",
                            f"{level} ({kind})")
    if kind == SPATIAL:
        min_parallelism = _min_parallelism(arch, level, fanout)
    elif arch.level(level).cls == DUMMY_CLASS:  # a fan-out stand-in has no loops of its own
        factors.update({dim: 1 for dim in dims if dim not in factors})
    return {"level": level, "kind": kind, "level_index": level_index, "factors": factors,
            "maxima": maxima, "prefix": prefix, "split": split, "fanout": fanout,
            "min_parallelism": min_parallelism, "sources": ", ".join(sources) or None}


def _min_parallelism(arch: Arch, level: str, fanout: tuple[int, int]) -> int:
    """The fewest spatial instances below ``level`` its utilization/parallelism constraints
    allow (utilization is a fraction of the fan-out)."""
    lowest = 1
    for ctype in MINIMUM_TYPES:
        for c in arch.constraints_for(level, ctype):
            need = (math.ceil(c.minimum * fanout[0] * fanout[1] - 1e-9) if ctype == "utilization"
                    else int(c.minimum))
            if need > fanout[0] * fanout[1]:
                raise SpecError(f"no mapping satisfies the constraints: {ctype} min {c.minimum} "
                                f"needs {need} instances, {level} fans out to "
                                f"{fanout[0] * fanout[1]}", file=c.source,
                                field=f"{c.origin}_constraints target {level} ({ctype}).min",
                                fix="lower the minimum")
            lowest = max(lowest, need)
    return lowest


def _conflict(first: str, first_where: str, second: str, second_where: str) -> SpecError:
    return SpecError(f"no mapping satisfies the constraints: {first} ({first_where}) "
                     f"contradicts {second} ({second_where})", field="constraints",
                     fix="remove one of the two constraints")


def _resolve_fixed(slots_raw: list[dict], problem: Problem) -> tuple[list[dict[str, int]], list[str]]:
    """Fixed factors per slot, and notes on constraint factors that had to be released.

    Like Timeloop's factorization (and the authors' fork that made the golden data), fixed
    factors are taken innermost first; one that does not divide what is left of the bound
    (e.g. ``C=4`` on a layer with C = 3) is released to a free factor with a note. ``D=0``
    takes the rest of D, and then D's unconstrained slots are 1.
    """
    fixed: list[dict[str, int]] = [{} for _ in slots_raw]
    notes: list[str] = []
    for dim in problem.shape.dimensions:
        bound = problem.bounds[dim]
        zero_slots = []
        product = 1
        for i, raw in enumerate(slots_raw):
            if dim not in raw["factors"]:
                continue
            value = raw["factors"][dim]
            if value == 0:
                zero_slots.append(i)
            elif bound % (value * product) == 0:
                fixed[i][dim] = value
                product *= value
            else:
                notes.append(f"{raw['level']} ({raw['kind']}): {dim}={value} does not divide "
                             f"{dim} = {bound} (after {product}); left free, as Timeloop does")
        if len(zero_slots) > 1 and bound > 1:
            names = ", ".join(f"{slots_raw[i]['level']} ({slots_raw[i]['kind']})" for i in zero_slots)
            raise SpecError(f"no mapping satisfies the constraints: {dim}=0 (the rest of {dim}) "
                            f"is given at several levels: {names}", field="constraints.factors",
                            fix=f"give {dim}=0 at one level only")
        if zero_slots:
            fixed[zero_slots[0]][dim] = bound // product
            for i in range(len(slots_raw)):
                fixed[i].setdefault(dim, 1)
    return fixed, notes


def _dim_options(dim: str, bound: int, slots: tuple[Slot, ...],
                 slots_raw: list[dict]) -> np.ndarray:
    """(options, slots): every way to spread ``bound`` over the slots that leave ``dim`` free
    (fixed ones fixed, none above a slot's maximum)."""
    fixed = {i: dict(s.fixed)[dim] for i, s in enumerate(slots) if dim in dict(s.fixed)}
    product = int(np.prod(list(fixed.values()), dtype=np.int64))
    free = [i for i in range(len(slots)) if i not in fixed]
    rest = bound // product
    where = ", ".join(f"{s.level} ({s.kind})" for i, s in enumerate(slots)
                      if dim in slots_raw[i]["factors"] or dim in slots_raw[i]["maxima"])
    if not free and rest != 1:
        raise SpecError(f"no mapping satisfies the constraints: they fix every factor of {dim} "
                        f"({where}) but they multiply to {product}, not {dim} = {bound}",
                        field="constraints.factors", fix=f"leave one level's {dim} free")
    parts = ordered_factorizations(rest, len(free))
    table = np.ones((len(parts), len(slots)), dtype=np.int64)
    for i, value in fixed.items():
        table[:, i] = value
    table[:, free] = parts
    for i, slot in enumerate(slots):
        limit = dict(slot.maxima).get(dim)
        if limit is not None:
            table = table[table[:, i] <= limit]
    if not len(table):
        raise SpecError(f"no mapping satisfies the constraints: the maxima of {dim} ({where}) "
                        f"leave no way to reach {dim} = {bound}", field="constraints.factors",
                        fix=f"raise a maximum of {dim}")
    return table


def _check_spatial(slots: tuple[Slot, ...], options: tuple[np.ndarray, ...],
                   slots_raw: list[dict]) -> None:
    """Refuse spatial slots whose smallest factors already overflow the fan-out, or whose
    largest factors miss a minimum parallelism: no mapping can satisfy those constraints."""
    for i, slot in enumerate(slots):
        if not slot.is_spatial:
            continue
        least = math.prod(int(table[:, i].min()) for table in options)
        most = math.prod(int(table[:, i].max()) for table in options)
        width = slot.fanout[0] * slot.fanout[1]
        problem = (f"its factors need at least {least} instances, it fans out to {width}"
                   if least > width else
                   f"it needs at least {slot.min_parallelism} spatial instances, its factors "
                   f"allow at most {most}" if most < slot.min_parallelism else None)
        if problem is not None:
            raise SpecError(f"no mapping satisfies the constraints on {slot.level}: {problem}",
                            file=slots_raw[i]["sources"],
                            field=f"constraints target {slot.level} (spatial)",
                            fix="free some factors or lower the minimum")


def _keep_rules(arch: Arch, problem: Problem, levels: list[str],
                dataspaces: tuple[str, ...]) -> list[list[str]]:
    """Per level (innermost first) and dataspace: '1' keep, '0' bypass, 'X' open."""
    rules = [["0" if arch.level(name).cls == DUMMY_CLASS else "X"] * len(dataspaces)
             for name in levels]  # a fan-out stand-in stores nothing
    given: dict[tuple[int, int], str] = {}
    sources: dict[tuple[int, int], str | None] = {}
    for li, name in enumerate(levels):
        for c in arch.constraints_for(name):
            if c.type not in BYPASS_TYPES:
                continue
            where = f"{c.source or arch.source}: {c.origin}_constraints target {name}"
            for value, names in (("1", c.keep or ()), ("0", c.bypass or ())):
                for ds in names:
                    if ds not in dataspaces:
                        raise SpecError(f"unknown dataspace '{ds}' in keep/bypass", file=c.source,
                                        field=f"{c.origin}_constraints target {name}",
                                        fix=unknown_name_fix(ds, dataspaces, "dataspaces"))
                    cell = (li, dataspaces.index(ds))
                    if rules[li][cell[1]] not in ("X", value):
                        action = {"1": "keep", "0": "bypass"}
                        raise _conflict(f"{action[rules[li][cell[1]]]} {ds}", given[cell],
                                        f"{action[value]} {ds}", where)
                    rules[li][cell[1]], given[cell], sources[cell] = value, where, c.source
    outer = len(levels) - 1
    for di, ds in enumerate(dataspaces):
        if rules[outer][di] == "0":
            raise SpecError(f"the outermost level {levels[outer]} bypasses {ds}",
                            file=sources[(outer, di)], field=f"constraints target {levels[outer]}",
                            fix="the outermost level must keep every dataspace")
        rules[outer][di] = "1"
    return rules


# ---- factorizations ------------------------------------------------------------------------
