"""The storage-model patch set (wrapper/timeloop/patching.py, patches/README.md).

Checked three ways: the rules' decisions on the golden Eyeriss/Simba specs; R4 (operand counts ->
packed words) against the real fork's cross evaluations (the same mapping evaluated without and
with bit widths); and, when the built-in engine exists, rewritten spec without bit widths ==
original spec with bit widths wherever the rules claim exactness.
"""

from __future__ import annotations

import pytest
from conftest import GOLDEN_RECORDS, golden_case, stats_from_results

from wrapper.engine import BuiltinEngine
from wrapper.errors import PrecisionError
from wrapper.spec.arch import arch_from_dict
from wrapper.spec.precision import Precision, packed_count
from wrapper.spec.stats import DataspaceStats, LevelStats, Stats
from wrapper.timeloop.patching import patch_spec, plan_patches, unpack_stats


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
    assert not plan.exact
    assert any("shared_glb: R3" in line and "approximate" in line for line in plan.report())


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
            assert new.size_words == old.size_words * k
        for attr in ("read_bandwidth", "write_bandwidth"):
            if getattr(old, attr) is not None:
                assert getattr(new, attr) == getattr(old, attr) * k
        if old.width_bits is not None:
            assert new.width_bits == new.word_bits * new.block_size


def test_exact_capacity_claims_hold_for_every_tile_size() -> None:
    """R2 with one dataspace: t operands fit the rewritten level iff ceil(t/k) words fit the old."""
    for name in ("eyeriss__mbv1_L3__i4w4o8", "simba__mbv1_L28__i8w2o8", "eyeriss__mbv1_L1__i5w3o8"):
        _, arch, problem, mapping = golden_case(name)
        plan = plan_patches(arch, problem, mapping)
        patched = arch_from_dict(patch_spec(arch.spec, plan), "patched")
        for old, new in zip(arch.levels, patched.levels):
            rewrite = plan.for_level(old.name)
            if not rewrite.capacity_exact or old.size_words is None or len(rewrite.factors) != 1:
                continue
            k = next(iter(rewrite.factors.values()))
            for tile in range(1, 3 * old.size_words * max(k, 1) + 2):
                assert (tile <= new.size_words) == (packed_count(tile, k) <= old.size_words), \
                    f"{name} {old.name} tile {tile}"


def test_too_wide_bits_are_refused_by_the_rules() -> None:
    _, arch, problem, mapping = golden_case("eyeriss__mbv1_L3__i4w4o8")
    with pytest.raises(PrecisionError, match="wider than the 16-bit word"):
        plan_patches(arch, problem.with_precision(Precision(8, 8, 32)), mapping)


CROSS = [r for r in GOLDEN_RECORDS if r["source"] == "cross_eval_mapping_from_bw_none"]


@pytest.mark.parametrize("record", CROSS, ids=[r["record_id"] for r in CROSS])
def test_r4_turns_unpacked_counts_into_the_forks_packed_counts(shared_dir, record) -> None:
    """The fork's own results for one mapping with and without bit widths confirm R4."""
    arch_name, layer = record["case_id"].split("__")[:2]
    none = next(r for r in GOLDEN_RECORDS if r["case_id"] == f"{arch_name}__{layer}__none"
                and r["mapping_sha"] == record["mapping_sha"])
    _, arch, problem, mapping = golden_case(record_id=record["record_id"])
    plan = plan_patches(arch, problem, mapping)
    unpacked = stats_from_results(none["results"])
    # a stock run of the rewritten spec spends 1/k_level of the energy per operand access
    stock = Stats(**{**unpacked.__dict__, "levels": tuple(
        LevelStats(lv.name, lv.energy_pj, lv.cycles, {
            n: DataspaceStats(**{**d.__dict__, "energy_pj": d.energy_pj / plan.for_level(lv.name).k})
            for n, d in lv.dataspaces.items()}) for lv in unpacked.levels)})
    packed, notes = unpack_stats(stock, plan, problem)
    fork = stats_from_results(record["results"])
    for got, want in zip(packed.levels, fork.levels, strict=True):
        for name, ds in got.dataspaces.items():
            exp = want.dataspaces[name]
            assert (ds.reads, ds.fills, ds.updates, ds.utilized_capacity, ds.operands_per_word) == (
                exp.reads, exp.fills, exp.updates, exp.utilized_capacity, exp.operands_per_word), \
                f"{record['record_id']} {got.name}.{name}"
    # energy is an approximation: the fork's energy per access depends on the access mix
    assert packed.energy_pj == pytest.approx(fork.energy_pj, rel=1e-3)
    assert all("approximate" in note for note in notes)


@pytest.mark.parametrize("case", ["eyeriss__mbv1_L3__i4w4o8", "simba__mbv1_L3__i4w4o8",
                                  "simba__mbv1_L28__i8w2o8", "eyeriss__mbv1_L1__i5w3o8"])
def test_rewritten_spec_equals_bitwidths_where_exact(shared_dir, case: str) -> None:
    engine = BuiltinEngine()
    from wrapper.spec.ert import load_energy_table

    record, arch, problem, mapping = golden_case(case)
    ert = shared_dir / "golden" / record["ert_ref"]
    table = load_energy_table(ert, ert.with_name(ert.name.replace("ERT", "ART")))
    plan = plan_patches(arch, problem, mapping)
    patched = arch_from_dict(patch_spec(arch.spec, plan), "patched")
    native = engine.evaluate(arch, problem, mapping, table)
    stock = engine.evaluate(patched, problem.with_precision(Precision()), mapping, table)
    rewritten, notes = unpack_stats(stock, plan, problem)
    assert native.valid and rewritten.valid
    assert rewritten.macs == native.macs
    for got, want in zip(rewritten.levels, native.levels, strict=True):
        rewrite = plan.for_level(got.name)
        for name, ds in got.dataspaces.items():
            exp = want.dataspaces[name]
            assert (ds.reads, ds.fills, ds.updates, ds.utilized_capacity) == (
                exp.reads, exp.fills, exp.updates, exp.utilized_capacity), f"{case} {got.name}.{name}"
            exact_energy = rewrite.capacity_exact and not any(
                n.startswith(f"{got.name}.{name}:") for n in notes)
            if exact_energy:
                assert ds.energy_pj == pytest.approx(exp.energy_pj, rel=1e-9, abs=1e-6)
