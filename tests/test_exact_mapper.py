"""The exact mapper returns the optimum of the constrained mapspace and proves it.

An independent brute force (every factorization of every dimension over every tiling slot, every
temporal loop order of every level, no pruning, each mapping scored by the scalar engine and
checked against the constraints) gives the optimum of small layers; the mapper must match it
and say `optimal`. Each pruning rule the mapper relies on is checked on its own, and the group
bounds must never exceed the metric of any mapping in their group.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
from conftest import ALL_GOLDEN_RECORDS
from test_mapper_golden import CASES

from wrapper.engine import MappingEvaluator
from wrapper.engine.batch import evaluate_batch
from wrapper.engine.bounds import compute_bound, group_bounds
from wrapper.engine.constraints import build_mapspace
from wrapper.engine.exact import (
    OUTER_LIMIT,
    certified_search,
    order_expansions,
    outer_assignments,
    outer_group_count,
)
from wrapper.errors import SpecError
from wrapper.spec.arch import Arch, arch_from_dict
from wrapper.spec.certificate import SIZE, TIME
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.yamlio import parse_yaml_text

METRICS = {"edp": lambda s: s.edp, "energy": lambda s: s.energy_pj, "delay": lambda s: s.cycles,
           "last_level_accesses": lambda s: s.last_level_accesses}


def _case(case_id):
    return next(c for c in CASES if c.case_id == case_id)


def _arch_constraints_only(case_id: str) -> Arch:
    """The case's arch with its hardware constraint file only (keeps and fan-out dimensions
    fixed, temporal loop orders and factors left free)."""
    record = next(r for r in ALL_GOLDEN_RECORDS if r["case_id"] == case_id)
    data = dict(parse_yaml_text(record["arch_yaml"]))
    classes = data.setdefault("compound_components", {"classes": []})["classes"]
    for text in record["components_yaml"].values():
        classes.extend(parse_yaml_text(text)["compound_components"]["classes"])
    for name, text in record["constraints_yaml"].items():
        if "arch_constraints" in name:
            data.update(parse_yaml_text(text))
    return arch_from_dict(data, record["record_id"])


def _spreads(n: int, slots: int) -> list[tuple[int, ...]]:
    """Every tuple of ``slots`` positive integers whose product is ``n``."""
    if slots == 1:
        return [(n,)]
    return [(d, *rest) for d in range(1, n + 1) if n % d == 0 for rest in _spreads(n // d, slots - 1)]


def brute_force(arch, problem, table):
    """Every valid mapping that satisfies the constraints, scored by the scalar engine: a list
    of (factors [slots, dims], keep index, Stats)."""
    space = build_mapspace(arch, problem)
    dims = space.dims
    active = [d for d in dims if problem.bounds[d] > 1]
    per_dim = [_spreads(problem.bounds[d], len(space.slots)) for d in dims]
    keeps = list(itertools.product(*space.keep_choices))
    engine = MappingEvaluator()
    index = {d: j for j, d in enumerate(dims)}
    perms = [[index[d] for d in p] + [index[d] for d in dims if d not in p]
             for p in itertools.permutations(active)]
    found = []
    for columns in itertools.product(*per_dim):
        factors = np.array(columns, dtype=np.int64).T
        for k, keep in enumerate(keeps):
            for orders in itertools.product(perms, repeat=len(space.level_names)):
                try:
                    mapping = space.to_mapping(factors, np.array(orders), keep)
                except SpecError:  # spatial factors with no X/Y layout within the fan-out
                    break
                problems = space.violations(mapping)
                if any("loop order" not in p for p in problems):
                    break  # a factor or keep violation: the same under every order
                if problems:
                    continue
                stats = engine.evaluate(arch, problem, mapping, table)
                if stats.valid:
                    found.append((factors, k, stats))
    return space, keeps, found


SMALL = [  # (golden case giving arch and table, arch constraints only?, bounds)
    ("simba__mbv1_L28__i8w8o8", False, {"P": 2, "Q": 2}),
    ("simba__mbv1_L28__i4w4o8", False, {"P": 4, "R": 2}),
    ("simba__mbv1_L28__i4w4o8", False, {"C": 4, "M": 4}),
    ("eyeriss__mbv1_L28__i8w2o8", True, {"M": 2, "P": 2}),
    ("eyeriss__mbv1_L3__i8w8o8", False, {"P": 4, "R": 2}),
]


@pytest.fixture(scope="module", params=SMALL, ids=lambda p: f"{p[0]}-{'arch' if p[1] else 'all'}"
                f"-{'x'.join(f'{d}{v}' for d, v in p[2].items())}")
def small(request, shared_dir):
    case_id, arch_only, bounds = request.param
    case = _case(case_id)
    arch = _arch_constraints_only(case_id) if arch_only else case.arch
    full = {d: bounds.get(d, 1) for d in case.problem.shape.dimensions}
    problem = replace(case.problem, bounds=full)
    space, keeps, found = brute_force(arch, problem, case.table)
    assert found, "the brute force found no valid mapping"
    return arch, problem, case.table, space, keeps, found


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_exact_mapper_matches_brute_force_and_says_optimal(small, metric):
    _, _, table, space, _, found = small
    value = METRICS[metric]
    optimum = min(value(stats) for _, _, stats in found)
    result = certified_search(space, table, MapperSettings(metric=metric))
    assert result.certificate.optimal and result.certificate.gap == 0
    assert value(result.stats) == pytest.approx(optimum, rel=1e-12)
    assert result.certificate.value == pytest.approx(optimum, rel=1e-12)
    assert space.violations(result.mapping, strict=True) == []


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_group_bounds_never_exceed_a_mapping_of_their_group(small, metric):
    """Each brute-force mapping against the bound of its group (keep choice and the factors of
    the 1, 2, ... outermost levels): `group_bounds` reads only those levels of a factor table."""
    _, _, table, space, keeps, found = small
    for k, keep in enumerate(keeps):
        mine = [(f, stats) for f, kk, stats in found if kk == k]
        factors = np.stack([f for f, _ in mine])
        values = np.array([METRICS[metric](stats) for _, stats in mine], dtype=float)
        for depth in range(1, len(space.level_names)):
            bound = group_bounds(space, keep, factors, depth, table).metric(metric)
            assert (bound <= values).all(), (depth, factors[np.argmax(bound > values)].tolist())


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_compute_bound_never_exceeds_the_optimum(small, metric):
    _, _, table, space, _, found = small
    optimum = min(METRICS[metric](stats) for _, _, stats in found)
    assert compute_bound(space, table).metric(metric)[0] <= optimum


def test_the_time_limit_stops_the_exact_search_with_an_honest_gap(shared_dir):
    """Out of time before the first group: the sampling mapper answers, and the certificate says
    the time limit stopped the proof and bounds the gap by the smallest group bound."""
    case = _case("simba__mbv1_L3__i8w8o8")
    space = build_mapspace(case.arch, case.problem)
    result = certified_search(space, case.table, MapperSettings(exact_seconds=1e-9))
    certificate = result.certificate
    assert not certificate.optimal and certificate.stopped_by == TIME
    assert 0 < certificate.lower_bound <= result.stats.edp
    assert certificate.gap == pytest.approx(result.stats.edp / certificate.lower_bound - 1)
    proven = certified_search(space, case.table, MapperSettings())
    assert proven.certificate.optimal and certificate.lower_bound <= proven.stats.edp


def test_a_space_with_too_many_outer_groups_is_sampled_against_the_compute_bound(shared_dir):
    """Two dimensions of 720720 (240 divisors each): listing the outer groups alone would take
    minutes, so the sampling mapper answers at once with the compute bound as its gap."""
    case = _case("eyeriss__mbv1_L3__i8w8o8")
    arch = _arch_constraints_only("eyeriss__mbv1_L3__i8w8o8")
    bounds = {**case.problem.bounds, "C": 720720, "M": 720720}
    space = build_mapspace(arch, replace(case.problem, bounds=bounds))
    assert outer_group_count(space) > OUTER_LIMIT
    result = certified_search(space, case.table, MapperSettings(max_evaluations=2000))
    certificate = result.certificate
    assert result.stats.valid and not certificate.optimal and certificate.stopped_by == SIZE
    assert certificate.lower_bound == pytest.approx(compute_bound(space, case.table).metric("edp")[0])
    assert certificate.lower_bound <= result.stats.edp


def _random_choices(case_id: str, n: int, seed: int = 0):
    case = _case(case_id)
    space = build_mapspace(case.arch if "eyeriss" in case_id else _arch_constraints_only(case_id),
                           case.problem)
    keep_sets = [space.keep_choices[i][0] for i in range(len(space.level_names))]
    keep = np.array([[ds in k for ds in space.dataspaces] for k in keep_sets])
    rows, _ = space.enumerate_factors(keep, limit=n, rng=np.random.default_rng(seed))
    return case, space, keep_sets, rows


def _scores(case, space, keep_sets, rows, orders):
    temporal, spatial = space.split_factors(rows)
    batch = evaluate_batch(case.arch, case.problem, temporal, spatial, orders, keep_sets, case.table)
    return batch


@pytest.mark.parametrize("case_id", ["simba__mbv1_L3__i8w8o8", "simba__mbv1_L2__i4w4o8"])
def test_orders_in_one_class_give_identical_counts(case_id, shared_dir):
    """Every permutation of a level's non-unit loops scores exactly like its class
    representative (`MapSpace.order_classes`), sliding windows included."""
    case, space, keep_sets, rows = _random_choices(case_id, 40)
    dims = space.dims
    for row in rows[:40]:
        for li, si in enumerate(space.temporal_slots):
            nonunit = frozenset(d for j, d in enumerate(dims) if row[si, j] > 1)
            prefix = [d for d in space.slots[si].prefix]
            movable = [d for d in dims if d in nonunit and d not in prefix]
            unit = [d for d in dims if d not in nonunit and d not in prefix]
            if len(movable) < 2:
                continue
            reps = {space.order_signature([d for d in prefix if d in nonunit] + list(p)): p
                    for p in reversed(list(itertools.permutations(movable)))}
            perms = list(itertools.permutations(movable))
            orders = np.repeat(space.default_orders()[None], len(perms), axis=0)
            orders[:, li] = [[dims.index(d) for d in (*prefix, *p, *unit)] for p in perms]
            rep = np.repeat(space.default_orders()[None], len(perms), axis=0)
            rep[:, li] = [[dims.index(d) for d in (*prefix, *reps[space.order_signature(
                [d for d in prefix if d in nonunit] + list(p))], *unit)] for p in perms]
            batch = _scores(case, space, keep_sets, np.repeat(row[None], len(perms), axis=0), orders)
            same = _scores(case, space, keep_sets, np.repeat(row[None], len(perms), axis=0), rep)
            assert np.array_equal(batch.energy_pj, same.energy_pj)
            assert np.array_equal(batch.cycles, same.cycles)
            classes = space.order_classes(li, nonunit)
            assert len(classes) == len(reps)


def test_unit_loops_are_position_free(shared_dir):
    """Moving a loop of size 1 anywhere in a level's order changes no count."""
    case, space, keep_sets, rows = _random_choices("simba__mbv1_L27__i8w8o8", 60, seed=2)
    rng = np.random.default_rng(3)
    base = np.repeat(space.default_orders()[None], len(rows), axis=0)
    shuffled = base.copy()
    for i, row in enumerate(rows):
        for li, si in enumerate(space.temporal_slots):
            order = list(base[i, li])
            unit = [j for j in order if row[si, j] == 1]
            rest = [j for j in order if row[si, j] > 1]
            for j in unit:  # insert each unit loop at a random place among the others
                rest.insert(int(rng.integers(0, len(rest) + 1)), j)
            shuffled[i, li] = rest
    assert not np.array_equal(base, shuffled)
    a = _scores(case, space, keep_sets, rows, base)
    b = _scores(case, space, keep_sets, rows, shuffled)
    assert np.array_equal(a.energy_pj, b.energy_pj) and np.array_equal(a.cycles, b.cycles)


def test_capacity_pruning_of_one_group_loses_nothing(shared_dir):
    """Enumerating one group (outermost factors fixed) with capacity pruning gives exactly the
    group's factor choices that fit, fan-out and X/Y split included."""
    case = _case("eyeriss__mbv1_L27__i8w8o8")
    space = build_mapspace(case.arch, case.problem)
    keep_sets = [space.keep_choices[i][0] for i in range(len(space.level_names))]
    keep = np.array([[ds in k for ds in space.dataspaces] for k in keep_sets])
    outer, members = outer_assignments(space)
    for g in (0, len(outer) // 2, len(outer) - 1):
        options = [opts[rows] for opts, rows in zip(space.dim_options, members[g])]
        rows, complete = space.enumerate_factors(keep, dim_options=options)
        grids = np.meshgrid(*(np.arange(len(o)) for o in options), indexing="ij")
        every = np.stack([o[grid.reshape(-1)] for o, grid in zip(options, grids)], axis=2)
        every = every[space.fanout_ok(every) & space.splits_ok(every) & space.fits(every, keep)]
        assert complete
        assert {r.tobytes() for r in rows} == {r.tobytes() for r in every}


GOLDEN_SMALL = ["eyeriss__mbv1_L28__i16w16o16", "eyeriss__mbv1_L1__i8w8o8",
                "simba__mbv1_L28__i8w2o8", "simba__mbv2_L53__i8w8o8",
                "simba__mbv1_L27__i16w16o16", "simba__mbv2_L35_dw__i2w8o16"]


@pytest.mark.parametrize("case_id", GOLDEN_SMALL)
def test_golden_optimum_equals_exhaustive_enumeration(case_id, shared_dir):
    """On golden cases small enough to enumerate, the certified answer is the minimum EDP over
    every factor choice that fits and every loop-order class, and no golden mapping beats it."""
    case = _case(case_id)
    space = build_mapspace(case.arch, case.problem)
    keep_sets = [space.keep_choices[i][0] for i in range(len(space.level_names))]
    keep = np.array([[ds in k for ds in space.dataspaces] for k in keep_sets])
    assert len(list(itertools.product(*space.keep_choices))) == 1
    rows, complete = space.enumerate_factors(keep)
    optimum = np.inf
    for factors, orders in order_expansions(space, rows):
        temporal, spatial = space.split_factors(factors)
        batch = evaluate_batch(case.arch, case.problem, temporal, spatial, orders, keep_sets,
                               case.table)
        optimum = min(optimum, np.where(batch.valid, batch.edp, np.inf).min())
    result = certified_search(space, case.table, MapperSettings())
    assert complete and result.certificate.optimal
    assert result.stats.edp == pytest.approx(optimum, rel=1e-12)
    assert result.stats.edp <= case.best_golden_edp() * (1 + 1e-9)
