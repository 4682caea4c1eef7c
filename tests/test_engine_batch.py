"""The vectorized batch API against the scalar path and against a literal model of Timeloop.

* For every golden case group: the golden mappings plus thousands of random valid-factor mappings
  (random factorizations, loop orders and spatial splits within each level's fan-out) go through
  `evaluate_batch` in one call; golden mappings and a sample of the random ones also go through
  `MappingEvaluator.evaluate` one by one and must give equal `Stats` (validity, reason, energy,
  cycles, every per-level count).
* The closed-form fills (no enumeration) must equal `literal_counts`, a direct transcription of
  how Timeloop's nest analysis walks iterations 0 and 1 of every loop, on random mappings of
  every golden (arch, layer).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import ALL_GOLDEN_RECORDS, golden_case, golden_energy_table

from wrapper.engine import MappingEvaluator, evaluate_batch
from wrapper.spec.arch import Arch
from wrapper.spec.mapping import LevelMapping, Mapping, mapping_from_dict
from wrapper.spec.precision import Precision
from wrapper.spec.problem import Problem

FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
RANDOM_PER_CASE = 2000
SCALAR_SAMPLE = 6
LITERAL_PER_LAYER = 25


def prime_factors(value: int) -> list[int]:
    """Prime factors with multiplicity (the units a random factorization distributes)."""
    out, p = [], 2
    while p * p <= value:
        while value % p == 0:
            out.append(p)
            value //= p
        p += 1
    return out + ([value] if value > 1 else [])


def random_mappings(arch: Arch, problem: Problem, n: int, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` random mappings as (temporal, spatial, loop order) arrays ``[n, level, dim]``: each
    prime factor of each bound goes to a random level (outer levels likelier, so that many fit)
    and there to its spatial loop when the level's fan-out still has room, else temporal."""
    rng = np.random.default_rng(seed)
    dims, levels = problem.shape.dimensions, arch.inner_to_outer
    fanout = np.array([np.prod(arch.fanout(lv.name)) for lv in levels])
    weights = 2.0 ** np.arange(len(levels))
    temporal = np.ones((n, len(levels), len(dims)), dtype=np.int64)
    spatial = np.ones_like(temporal)
    rows = np.arange(n)
    for d, dim in enumerate(dims):
        for prime in prime_factors(problem.bounds[dim]):
            level = rng.choice(len(levels), size=n, p=weights / weights.sum())
            room = spatial[rows, level].prod(axis=1) * prime <= fanout[level]
            wide = room & (rng.random(n) < 0.6)
            spatial[rows[wide], level[wide], d] *= prime
            temporal[rows[~wide], level[~wide], d] *= prime
    orders = np.argsort(rng.random(temporal.shape), axis=2)
    return temporal, spatial, orders


def to_mapping(arch: Arch, problem: Problem, temporal: np.ndarray, spatial: np.ndarray,
               order: np.ndarray, keeps: list[tuple[str, ...]]) -> Mapping:
    """The `Mapping` object of one row of the arrays (what a mapping YAML file would give)."""
    dims = problem.shape.dimensions
    spaces = problem.shape.dataspace_names
    levels = []
    for i, level in enumerate(arch.inner_to_outer):
        levels.append(LevelMapping(
            level.name, temporal={d: int(temporal[i, j]) for j, d in enumerate(dims)},
            temporal_permutation="".join(dims[j] for j in order[i]),
            spatial={d: int(spatial[i, j]) for j, d in enumerate(dims)},
            keep=keeps[i], bypass=tuple(ds for ds in spaces if ds not in keeps[i])))
    return Mapping(tuple(levels))


def literal_counts(arch: Arch, problem: Problem, mapping: Mapping) -> list[dict[str, tuple]]:
    """Per level (innermost first) and kept dataspace: (tile, reads, fills, updates) in operands,
    by walking iterations 0 and 1 of every loop in Timeloop's order with its residual state."""
    dims = problem.shape.dimensions
    spaces = problem.shape.dataspace_names
    lms = [mapping.for_level(lv.name) for lv in arch.inner_to_outer]

    def loops(factors: dict, perm: str) -> list[tuple[str, int]]:
        order = [d for d in perm if d in dims] + [d for d in dims if d not in perm]
        return [(d, factors.get(d, 1)) for d in order if factors.get(d, 1) > 1]

    temporal = [loops(lm.temporal, lm.temporal_permutation) for lm in lms]
    spatial = [loops(lm.spatial, "") for lm in lms]

    def bounds_upto(level: int) -> dict[str, int]:
        out = {d: 1 for d in dims}
        for i in range(level + 1):
            for d, size in temporal[i] + spatial[i]:
                out[d] *= size
        return out

    def terms(ds: str) -> list[list[tuple[str, int]]]:
        return [[(t.dim, problem.coefficient(t.coefficient)) for t in rank]
                for rank in problem.dataspace(ds).projection]

    def extents(ranks: list, bounds: dict) -> list[int]:
        return [sum(c * (bounds[d] - 1) for d, c in rank) + 1 for rank in ranks]

    def fills(ranks: list, level: int) -> int:
        ext = extents(ranks, bounds_upto(level))
        full = int(np.prod(ext))
        inner, walk = bounds_upto(level), []
        for i in range(level + 1, len(lms)):
            for d, size in spatial[i]:
                inner[d] *= size
            for d, size in temporal[i]:
                walk.append((d, size, inner[d]))
                inner[d] *= size
        walk = walk[::-1]  # outermost first
        total, prev, state = 0, None, None
        for choice in product((0, 1), repeat=len(walk)):
            weight, offset = 1, [0] * len(ranks)
            for (d, size, step), bit in zip(walk, choice):
                if bit:
                    weight *= size - 1
                    for r, rank in enumerate(ranks):
                        offset[r] += sum(c * step for dd, c in rank if dd == d)
            if prev is None:
                delta = full
            else:
                diff = [a - b for a, b in zip(offset, prev)]
                moved = [r for r, v in enumerate(diff) if v]
                if not moved:
                    delta, state = 0, "stayed"
                elif len(moved) == 1 and abs(diff[moved[0]]) < ext[moved[0]]:
                    direction = (moved[0], diff[moved[0]] > 0)
                    if state is None or state == direction:
                        delta, state = full // ext[moved[0]] * abs(diff[moved[0]]), direction
                    else:
                        delta, state = full, None
                else:
                    delta, state = full, None
            total += delta * weight
            prev = offset
        return total

    def distinct(ranks: list, level: int) -> int:
        inner = bounds_upto(level - 1) if level > 0 else {d: 1 for d in dims}
        seen = set()
        for idx in product(*(range(size) for _, size in spatial[level])):
            pos = {d: 0 for d in dims}
            for i, (d, _) in zip(idx, spatial[level]):
                pos[d] += i * inner[d]
            seen.add(tuple(sum(c * pos[d] for d, c in rank) for rank in ranks))
        return len(seen)

    macs = int(np.prod([size for level in temporal for _, size in level]))
    out: list[dict[str, tuple]] = [{} for _ in lms]
    for ds in spaces:
        ranks, passed = terms(ds), macs
        for level, lm in enumerate(lms):
            content = distinct(ranks, level) * passed
            if ds not in lm.kept(spaces):
                passed = content
                continue
            passed = fills(ranks, level)
            whole = bounds_upto(level)
            for lower in temporal[level + 1:]:
                for d, size in lower:
                    whole[d] *= size
            partition = int(np.prod(extents(ranks, whole)))
            tile = int(np.prod(extents(ranks, bounds_upto(level))))
            top = level == len(lms) - 1
            if problem.dataspace(ds).read_write:
                out[level][ds] = (tile, content - partition, 0 if top else passed, content)
            else:
                out[level][ds] = (tile, content, 0 if top else passed, 0)
    return out


def _group(case_id: str) -> list[dict[str, Any]]:
    return [r for r in ALL_GOLDEN_RECORDS if r["case_id"] == case_id]


def _golden_arrays(arch: Arch, problem: Problem, mappings: list[Mapping]):
    dims, levels = problem.shape.dimensions, arch.inner_to_outer
    temporal = np.array([[[m.for_level(lv.name).temporal.get(d, 1) for d in dims] for lv in levels]
                         for m in mappings])
    spatial = np.array([[[m.for_level(lv.name).spatial.get(d, 1) for d in dims] for lv in levels]
                        for m in mappings])
    perms = [[m.for_level(lv.name).temporal_permutation for lv in levels] for m in mappings]
    return temporal, spatial, perms


CASE_IDS = sorted({r["case_id"] for r in ALL_GOLDEN_RECORDS})


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_batch_equals_scalar_on_golden_case(case_id: str, shared_dir: Path) -> None:
    group = _group(case_id)
    record, arch, problem, _ = golden_case(record_id=group[0]["record_id"])
    table = golden_energy_table(record["ert_ref"], record["art_ref"])
    goldens = [mapping_from_dict(yaml.load(r["mapping_yaml"], Loader=FAST_LOADER)) for r in group]
    keeps = [tuple(sorted(goldens[0].for_level(lv.name).kept(problem.shape.dataspace_names)))
             for lv in arch.inner_to_outer]
    engine = MappingEvaluator()
    # golden mappings (their own keep lists) with per-mapping permutation strings
    for mapping in goldens:
        g_keeps = [mapping.for_level(lv.name).keep for lv in arch.inner_to_outer]
        temporal, spatial, perms = _golden_arrays(arch, problem, [mapping])
        batch = evaluate_batch(arch, problem, temporal, spatial, perms, g_keeps, table)
        assert batch.stats(0) == engine.evaluate(arch, problem, mapping, table), record["record_id"]
    # random mappings: one batch, checked row by row on a sample of valid and invalid rows
    temporal, spatial, orders = random_mappings(arch, problem, RANDOM_PER_CASE, seed=len(case_id))
    batch = evaluate_batch(arch, problem, temporal, spatial, orders, keeps, table)
    assert batch.valid.any(), f"{case_id}: no random mapping fits; generator too aggressive"
    valid_rows = np.flatnonzero(batch.valid)[:SCALAR_SAMPLE]
    invalid_rows = np.flatnonzero(~batch.valid)[:SCALAR_SAMPLE // 2]
    for row in np.concatenate([valid_rows, invalid_rows]):
        mapping = to_mapping(arch, problem, temporal[row], spatial[row], orders[row], keeps)
        scalar = engine.evaluate(arch, problem, mapping, table)
        got = batch.stats(int(row))
        assert got == scalar, f"{case_id} random row {row}: batch {got} != scalar {scalar}"
        if scalar.valid:
            assert batch.energy_pj[row] == scalar.energy_pj and batch.cycles[row] == scalar.cycles
        else:
            assert np.isnan(batch.energy_pj[row]) and batch.reasons[row] == scalar.reason
    assert np.isfinite(batch.energy_pj[batch.valid]).all() and (batch.cycles[batch.valid] > 0).all()


LAYER_CASES = sorted({(r["arch"], r["layer"]): r["record_id"] for r in ALL_GOLDEN_RECORDS}.items())


@pytest.mark.parametrize("key,record_id", LAYER_CASES, ids=lambda v: "__".join(v) if isinstance(v, tuple) else "")
def test_closed_form_equals_literal_walk(key: tuple, record_id: str, shared_dir: Path) -> None:
    _, arch, problem, golden = golden_case(record_id=record_id)
    problem = problem.with_precision(Precision())  # one operand per word: counts are raw counts
    spaces = problem.shape.dataspace_names
    golden_keeps = [tuple(sorted(golden.for_level(lv.name).kept(spaces)))
                    for lv in arch.inner_to_outer]
    rng = np.random.default_rng(11)  # also a random bypass choice below the top level
    random_keeps = [tuple(ds for ds in spaces if rng.random() < 0.5) for _ in arch.levels[1:]]
    for keeps in (golden_keeps, random_keeps + [spaces]):
        _check_literal(key, arch, problem, keeps)


def _check_literal(key: tuple, arch: Arch, problem: Problem, keeps: list) -> None:
    temporal, spatial, orders = random_mappings(arch, problem, LITERAL_PER_LAYER, seed=7)
    batch = evaluate_batch(arch, problem, temporal, spatial, orders, keeps)
    for row in range(LITERAL_PER_LAYER):
        mapping = to_mapping(arch, problem, temporal[row], spatial[row], orders[row], keeps)
        expected = literal_counts(arch, problem, mapping)
        for level, (lv, want) in enumerate(zip(batch.levels, expected)):
            got = {ds: (int(d.utilized_capacity[row]), int(d.reads[row]), int(d.fills[row]),
                        int(d.updates[row])) for ds, d in lv.dataspaces.items()}
            assert got == want, f"{key} keeps {keeps} row {row} level {lv.name}: closed form {got} != walk {want}"


def test_permutation_forms_agree(shared_dir: Path) -> None:
    """Strings per level, strings per mapping and integer orders give the same results."""
    _, arch, problem, golden = golden_case()
    dims = problem.shape.dimensions
    keeps = [golden.for_level(lv.name).keep for lv in arch.inner_to_outer]
    temporal, spatial, orders = random_mappings(arch, problem, 300, seed=3)
    strings = [["".join(dims[j] for j in level) for level in row] for row in orders]
    by_int = evaluate_batch(arch, problem, temporal, spatial, orders, keeps)
    by_str = evaluate_batch(arch, problem, temporal, spatial, strings, keeps)
    assert np.array_equal(by_int.valid, by_str.valid) and by_int.reasons == by_str.reasons
    assert np.array_equal(by_int.energy_pj, by_str.energy_pj, equal_nan=True)
    shared = evaluate_batch(arch, problem, temporal, spatial, strings[0], keeps)
    first = evaluate_batch(arch, problem, temporal[:1], spatial[:1], strings[:1], keeps)
    assert shared.stats(0) == first.stats(0)


def test_bad_factors_are_invalid_rows(shared_dir: Path) -> None:
    _, arch, problem, golden = golden_case()
    temporal, spatial, perms = _golden_arrays(arch, problem, [golden, golden])
    temporal[1, -1, 0] *= 2  # C no longer multiplies to the bound
    keeps = [golden.for_level(lv.name).keep for lv in arch.inner_to_outer]
    batch = evaluate_batch(arch, problem, temporal, spatial, perms, keeps)
    assert batch.valid.tolist() == [True, False] and "multiply" in batch.reasons[1]
    assert np.isnan(batch.energy_pj[1]) and batch.cycles[1] == 0


def _narrow_ifmap_spad(arch: Arch, word_bits: int) -> Arch:
    return replace(arch, levels=tuple(replace(lv, word_bits=word_bits) if lv.name == "ifmap_spad" else lv
                                      for lv in arch.levels))


def test_bypassing_narrow_level_does_not_check_bypassed_widths(shared_dir: Path) -> None:
    """ifmap_spad with 8-bit words keeps only Inputs: 16-bit Weights/Outputs pass it by."""
    _, arch, problem, golden = golden_case(name="eyeriss__mbv1_L3__i16w16o16")
    narrow = _narrow_ifmap_spad(arch, 8)
    wide_ws = problem.with_precision(Precision(inputs=8, weights=16, outputs=16))
    stats = MappingEvaluator().evaluate(narrow, wide_ws, golden)
    assert stats.valid, stats.reason
    assert stats.levels[[lv.name for lv in stats.levels].index("ifmap_spad")].dataspaces[
        "Inputs"].operands_per_word == 1
    temporal, spatial, perms = _golden_arrays(narrow, wide_ws, [golden])
    keeps = [golden.for_level(lv.name).keep for lv in narrow.inner_to_outer]
    batch = evaluate_batch(narrow, wide_ws, temporal, spatial, perms, keeps)
    assert batch.valid[0] and batch.stats(0) == stats
    # the same level keeping Weights too must refuse the 16-bit Weights, naming level and widths
    keeps_w = [("Inputs", "Weights") if lv.name == "ifmap_spad" else k
               for lv, k in zip(narrow.inner_to_outer, keeps)]
    refused = evaluate_batch(narrow, wide_ws, temporal, spatial, perms, keeps_w)
    assert not refused.valid[0]
    assert "Weights at level ifmap_spad" in refused.reasons[0] and "b = 16, W = 8" in refused.reasons[0]
