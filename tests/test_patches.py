"""The storage-model patch set (wrapper/timeloop/patching.py, patches/README.md).

Checked without any Timeloop build: the rules' decisions on the golden Eyeriss/Simba specs, the
capacity claims of R2/R3 for every tile size, and R4/R5 against the real fork's cross evaluations
(the same mapping evaluated without bit widths, as stock Timeloop counts, and with them): counts,
energy and cycles. The real stock builds are checked in tests/test_timeloop_stock.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GOLDEN_RECORDS, golden_case, golden_energy_table, stats_from_results

from wrapper.errors import PrecisionError
from wrapper.spec.arch import arch_from_dict
from wrapper.spec.precision import Precision, packed_count
from wrapper.timeloop.patching import StockRun, patch_spec, plan_patches, unpack_stats


def test_rules_on_eyeriss_i4w4o8() -> None:
    _, arch, problem, mapping = golden_case("eyeriss__mbv1_L3__i4w4o8")
    plan = plan_patches(arch, problem, mapping)
    got = {lv.level: (lv.rule, lv.k, lv.word_bits, lv.block_size, lv.capacity_exact)
           for lv in plan.levels}
    assert got == {
        "psum_spad": ("R2", 2, 8, 2, True),      # Outputs only, 8 of 16 bits
        "weights_spad": ("R2", 4, 4, 4, True),   # Weights only, 4 bits
        "ifmap_spad": ("R2", 4, 4, 4, True),     # Inputs only, 4 bits
        "DummyBuffer": ("R1", 1, 16, 1, True),   # keeps nothing
        "shared_glb": ("R3", 2, 8, 8, False),    # Inputs k=4 and Outputs k=2 share it
        "DRAM": ("R3", 2, 8, 8, False),
    }
    assert plan.for_level("shared_glb").depth_scale == 2 and plan.for_level("DRAM").depth_scale == 1
    assert not plan.exact
    assert any("shared_glb: R3" in line and "depth x2" in line and "R5" in line
               for line in plan.report())
    assert plan_patches(arch, problem).for_level("shared_glb").depth_scale == 1, "search: no growth"


def test_native_widths_leave_the_spec_alone() -> None:
    _, arch, problem, mapping = golden_case("eyeriss__mbv1_L3__none")
    plan = plan_patches(arch, problem, mapping)
    assert plan.exact and not any(lv.changed for lv in plan.levels)
    assert patch_spec(arch.spec, plan) == dict(arch.spec)


def test_patched_spec_parses_and_scales_capacity_bandwidth_width() -> None:
    _, arch, problem, mapping = golden_case("eyeriss__mbv1_L3__i4w4o8")
    before = repr(arch.spec)
    plan = plan_patches(arch, problem, mapping)
    patched = arch_from_dict(patch_spec(arch.spec, plan), "patched")
    assert repr(arch.spec) == before, "the original spec is not modified"
    for old, new in zip(arch.levels, patched.levels, strict=True):
        k = plan.for_level(old.name).k
        assert (new.word_bits, new.block_size) == (old.word_bits // k, old.block_size * k)
        if old.size_words is not None:
            assert new.size_words == old.size_words * k * plan.for_level(old.name).depth_scale
        for attr in ("read_bandwidth", "write_bandwidth"):
            if getattr(old, attr) is not None:
                assert getattr(new, attr) == getattr(old, attr) * k
        if old.width_bits is not None:
            assert new.width_bits == new.word_bits * new.block_size


def test_capacity_claims_hold_for_every_tile_size() -> None:
    """R2 with one dataspace: t operands fit the rewritten level iff ceil(t/k) words fit the old.
    Several dataspaces (R2, R3): stock Timeloop never refuses tiles the fork accepts."""
    for name in ("eyeriss__mbv1_L3__i4w4o8", "simba__mbv1_L28__i8w2o8", "eyeriss__mbv1_L1__i5w3o8",
                 "eyeriss__mbv1_L3__i5w3o8"):
        _, arch, problem, mapping = golden_case(name)
        plan = plan_patches(arch, problem, mapping)
        patched = arch_from_dict(patch_spec(arch.spec, plan), "patched")
        for old, new in zip(arch.levels, patched.levels):
            rewrite = plan.for_level(old.name)
            if old.size_words is None or not rewrite.factors:
                continue
            ks = list(rewrite.factors.values())
            if len(ks) == 1:
                for tile in range(1, 3 * old.size_words * ks[0] + 2):
                    assert (tile <= new.size_words) == (packed_count(tile, ks[0])
                                                        <= old.size_words), f"{name} {old.name}"
                continue
            for words in range(1, old.size_words + 1, max(1, old.size_words // 50)):
                # the most operands the fork fits in ``words`` words: all in the best-packed space
                assert words * max(ks) <= new.size_words, f"{name} {old.name} {words} words"


def test_too_wide_bits_are_refused_by_the_rules() -> None:
    _, arch, problem, mapping = golden_case("eyeriss__mbv1_L3__i4w4o8")
    with pytest.raises(PrecisionError, match="wider than the 16-bit word"):
        plan_patches(arch, problem.with_precision(Precision(8, 8, 32)), mapping)


CROSS = [r for r in GOLDEN_RECORDS if r["source"] == "cross_eval_mapping_from_bw_none"]


def _stock_run(none_record: dict) -> StockRun:
    """What stock Timeloop reports for a mapping: the fork's numbers without bit widths."""
    results = none_record["results"]
    instances = {(st["name"], ds): d["utilized_instances"] for st in results["storage"]
                 for ds, d in st["dataspaces"].items()}
    return StockRun(stats_from_results(results), int(results["mac"]["cycles"]), instances)


@pytest.mark.parametrize("record", CROSS, ids=[r["record_id"] for r in CROSS])
def test_r4_r5_turn_stock_counts_into_the_forks_numbers(shared_dir, record) -> None:
    """The fork's own results for one mapping without and with bit widths: counts, cycles and
    energy of the bit-width run follow from the plain run and the energy table."""
    arch_name, layer = record["case_id"].split("__")[:2]
    none = next(r for r in GOLDEN_RECORDS if r["case_id"] == f"{arch_name}__{layer}__none"
                and r["mapping_sha"] == record["mapping_sha"])
    _, arch, problem, _ = golden_case(record_id=record["record_id"])
    table = golden_energy_table(record["ert_ref"], record["art_ref"])
    packed = unpack_stats(_stock_run(none), arch, problem, table)
    fork = stats_from_results(record["results"])
    assert packed.valid and (packed.cycles, packed.macs) == (fork.cycles, fork.macs)
    for got, want in zip(packed.levels, fork.levels, strict=True):
        assert got.cycles == want.cycles, f"{record['record_id']} {got.name} cycles"
        for name, ds in got.dataspaces.items():
            exp = want.dataspaces[name]
            assert (ds.reads, ds.fills, ds.updates, ds.utilized_capacity, ds.operands_per_word) == (
                exp.reads, exp.fills, exp.updates, exp.utilized_capacity, exp.operands_per_word), \
                f"{record['record_id']} {got.name}.{name}"
            assert ds.energy_pj == pytest.approx(exp.energy_pj, abs=0.006), "2-decimal print"
    assert packed.energy_pj == pytest.approx(fork.energy_pj, rel=1e-7)
    assert packed.utilization == pytest.approx(fork.utilization, rel=1e-5)  # printed rounded


def test_r5_refuses_tiles_the_fork_cannot_hold(shared_dir: Path) -> None:
    record = next(r for r in CROSS if r["case_id"] == "eyeriss__mbv1_L3__i4w4o8")
    _, arch, problem, _ = golden_case(record_id=record["record_id"])
    none = next(r for r in GOLDEN_RECORDS if r["case_id"] == "eyeriss__mbv1_L3__none"
                and r["mapping_sha"] == record["mapping_sha"])
    run = _stock_run(none)
    psum = next(lv for lv in run.stats.levels if lv.name == "psum_spad")
    big = psum.dataspaces["Outputs"].__class__(**{**psum.dataspaces["Outputs"].__dict__,
                                                    "utilized_capacity": 10_000})
    levels = tuple(lv if lv is not psum else lv.__class__(lv.name, lv.energy_pj, lv.cycles,
                                                           {"Outputs": big})
                   for lv in run.stats.levels)
    stats = unpack_stats(StockRun(run.stats.__class__(**{**run.stats.__dict__, "levels": levels}),
                                  run.compute_cycles, run.utilized_instances), arch, problem, None)
    assert not stats.valid and "psum_spad" in stats.reason and "5000" in stats.reason
