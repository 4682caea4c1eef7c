"""The mapspace honours Timeloop's constraint semantics; the mapper is exact where it claims to
be, deterministic for a seed, and memoizes equal packing signatures."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALL_GOLDEN_RECORDS
from test_mapper_golden import CASES, record_arch

from wrapper.engine import MappingEvaluator
from wrapper.engine.batch import evaluate_batch
from wrapper.engine.constraints import build_mapspace
from wrapper.engine.costmodel import BuiltinCostModel
from wrapper.spec.costmodel import packing_signature
from wrapper.engine.factors import ordered_factorizations
from wrapper.engine.mapper import sampling_search
from wrapper.errors import PrecisionError
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.mapping import mapping_from_dict, validate_mapping
from wrapper.spec.precision import Precision
from wrapper.spec.yamlio import parse_yaml_text


def _case(case_id):
    return next(c for c in CASES if c.case_id == case_id)


def test_ordered_factorizations_are_all_splits_with_the_right_product():
    splits = ordered_factorizations(12, 3)
    assert len(splits) == len({tuple(s) for s in splits.tolist()}) == 18  # (2^2: 6) x (3^1: 3)
    assert (splits.prod(axis=1) == 12).all()


def test_constraint_semantics_on_eyeriss(shared_dir):
    space = build_mapspace(_case("eyeriss__mbv1_L1__none").arch, _case("eyeriss__mbv1_L1__none").problem)
    slots = {(s.level, s.kind): s for s in space.slots}
    # 'QRSC PNM': whitespace ignored, a full innermost-first order
    assert slots[("shared_glb", "temporal")].prefix == tuple("QRSCPNM")
    # R=0 / S=0 / P=0: that level gets the rest of the dimension
    assert dict(slots[("weights_spad", "temporal")].fixed)["R"] == 3
    assert dict(slots[("DummyBuffer", "spatial")].fixed)["S"] == 3
    assert dict(slots[("shared_glb", "temporal")].fixed)["P"] == 112
    assert slots[("DummyBuffer", "spatial")].split == 4


def test_non_dividing_constraint_factor_is_left_free_like_timeloop(shared_dir):
    case = _case("simba__mbv1_L1__none")  # PEAccuBuffer spatial C=4 but C = 3
    space = build_mapspace(case.arch, case.problem)
    slot = next(s for s in space.slots if s.level == "PEAccuBuffer" and s.is_spatial)
    assert "C" in slot.free and any("C=4" in note for note in space.notes)


def test_every_golden_mapping_satisfies_its_constraints(shared_dir):
    """The real mapper's outputs respect the constraints as we read them (unit loops aside)."""
    for record in ALL_GOLDEN_RECORDS:
        case = _case(record["case_id"])
        space = build_mapspace(case.arch, case.problem)
        mapping = mapping_from_dict(parse_yaml_text(record["mapping_yaml"]))
        assert space.violations(mapping) == [], record["record_id"]


@pytest.mark.parametrize("case_id", ["eyeriss__mbv1_L3__i4w4o8", "simba__mbv1_L27__i5w3o8",
                                     "simba__mbv2_L35_dw__i2w8o16"])
def test_enumerated_choices_are_the_mappings_the_engine_scores(case_id, shared_dir):
    """What the mapper scores in a batch is exactly what its emitted mapping evaluates to."""
    case = _case(case_id)
    space = build_mapspace(case.arch, case.problem)
    keep_sets = [space.keep_choices[i][0] for i in range(len(space.level_names))]
    keep = np.array([[ds in k for ds in space.dataspaces] for k in keep_sets])
    rows, _ = space.enumerate_factors(keep, limit=3000, rng=np.random.default_rng(0))
    orders = space.default_orders()
    temporal, spatial = space.split_factors(rows)
    batch = evaluate_batch(case.arch, case.problem, temporal, spatial, orders, keep_sets,
                           case.table)
    assert batch.valid.all(), next(r for r in batch.reasons if r)
    engine = MappingEvaluator()
    for i in np.random.default_rng(1).choice(len(rows), 10, replace=False):
        mapping = space.to_mapping(rows[i], orders, keep_sets)
        validate_mapping(mapping, case.arch, case.problem)
        assert space.violations(mapping, strict=True) == []
        assert engine.evaluate(case.arch, case.problem, mapping, case.table) == batch.stats(int(i))


@pytest.mark.parametrize("case_id", ["eyeriss__mbv1_L2_dw__i4w4o8", "simba__mbv1_L2_dw__i8w8o8"])
def test_pruned_enumeration_loses_no_choice_and_agrees_with_the_engine(case_id, shared_dir):
    """Complete enumeration = brute force over every factorization filtered by capacity,
    fan-out and X/Y split; and the capacity bound rejects exactly what the engine rejects."""
    case = _case(case_id)
    space = build_mapspace(case.arch, case.problem)
    keep_sets = [space.keep_choices[i][0] for i in range(len(space.level_names))]
    keep = np.array([[ds in k for ds in space.dataspaces] for k in keep_sets])
    rows, complete = space.enumerate_factors(keep)
    grids = np.meshgrid(*(np.arange(len(o)) for o in space.dim_options), indexing="ij")
    every = np.stack([o[g.reshape(-1)] for o, g in zip(space.dim_options, grids)], axis=2)
    every = every[space.fanout_ok(every) & space.splits_ok(every)]
    fits = space.fits(every, keep)
    assert complete and 0 < len(rows) == fits.sum() < len(every)
    assert {r.tobytes() for r in rows} == {r.tobytes() for r in every[fits]}
    temporal, spatial = space.split_factors(every)
    batch = evaluate_batch(case.arch, case.problem, temporal, spatial, space.default_orders(),
                           keep_sets, case.table)
    assert np.array_equal(batch.valid, fits)


def test_packing_lets_larger_tiles_fit(shared_dir):
    """Fewer bits per operand pack more operands per word: strictly more choices fit."""
    case = _case("eyeriss__mbv1_L3__i4w4o8")
    counts = []
    for bits in (16, 8, 4):
        space = build_mapspace(case.arch, case.problem.with_precision(Precision(bits, bits, 16)))
        keep = np.array([[ds in space.keep_choices[i][0] for ds in space.dataspaces]
                         for i in range(len(space.level_names))])
        counts.append(len(space.enumerate_factors(keep)[0]))
    assert counts[0] < counts[1] < counts[2]


def test_search_is_deterministic_for_a_seed(shared_dir):
    case = _case("simba__mbv2_L35_dw__i8w8o8")
    settings = MapperSettings(max_evaluations=4000, seed=3)
    first = sampling_search(build_mapspace(case.arch, case.problem), case.table, settings)
    second = sampling_search(build_mapspace(case.arch, case.problem), case.table, settings)
    assert first.mapping == second.mapping and first.stats == second.stats


@pytest.mark.parametrize("metric", ["energy", "delay", "last_level_accesses"])
def test_other_metrics_are_optimized(metric, shared_dir):
    case = _case("eyeriss__mbv1_L28__i8w8o8")
    by_edp = sampling_search(build_mapspace(case.arch, case.problem), case.table,
                    MapperSettings(metric="edp", max_evaluations=4000))
    by_metric = sampling_search(build_mapspace(case.arch, case.problem), case.table,
                       MapperSettings(metric=metric, max_evaluations=4000))
    value = {"energy": lambda s: s.energy_pj, "delay": lambda s: s.cycles,
             "last_level_accesses": lambda s: s.last_level_accesses}[metric]
    assert value(by_metric.stats) <= value(by_edp.stats)


def test_equal_packing_signatures_share_one_search(shared_dir):
    """On 16-bit words 6, 7 and 8 bits all pack 2 per word: one search serves all three."""
    case = _case("eyeriss__mbv1_L2_dw__i8w8o8")
    model = BuiltinCostModel(case.table)
    settings = MapperSettings(max_evaluations=2000)
    p8 = case.problem.with_precision(Precision(8, 8, 8))
    p6 = case.problem.with_precision(Precision(6, 7, 8))
    assert packing_signature(case.arch, p8) == packing_signature(case.arch, p6)
    m8, s8 = model.find_mapping(case.arch, p8, settings)
    m6, s6 = model.find_mapping(case.arch, p6, settings)
    assert (model.cache.misses, model.cache.hits) == (1, 1)
    assert m6 == m8 and s6 == s8
    p4 = case.problem.with_precision(Precision(4, 8, 8))
    assert packing_signature(case.arch, p4) != packing_signature(case.arch, p8)


def test_bit_width_wider_than_a_kept_level_is_refused(shared_dir):
    case = _case("eyeriss__mbv1_L1__none")
    with pytest.raises(PrecisionError, match="wider than the 16-bit word"):
        build_mapspace(case.arch, case.problem.with_precision(Precision(32, 8, 8)))


def test_constraints_without_the_golden_files_still_build(shared_dir):
    record = ALL_GOLDEN_RECORDS[0]
    space = build_mapspace(record_arch(record, constraints=False), _case(record["case_id"]).problem)
    assert space.factor_space_size > build_mapspace(_case(record["case_id"]).arch,
                                                    _case(record["case_id"]).problem).factor_space_size
