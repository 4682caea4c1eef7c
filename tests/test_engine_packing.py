"""Packing semantics of the built-in engine (METHOD.md section 2) and the variant specs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import GOLDEN_RECORDS, golden_case, golden_energy_table

from wrapper.engine import MappingEvaluator
from wrapper.spec.arch import load_arch
from wrapper.spec.mapping import LevelMapping, Mapping
from wrapper.spec.precision import Precision


def _inputs(arch_name: str, layer: str = "mbv1_L3"):
    record = next(r for r in GOLDEN_RECORDS if r["arch"] == arch_name and r["layer"] == layer
                  and r["source"] == "mapper+model" and r["bitwidths_name"] == "i16w16o16")
    return golden_case(record_id=record["record_id"])


@pytest.mark.parametrize("arch_name", ["eyeriss", "simba"])
def test_b16_equals_no_bitwidths(arch_name: str, shared_dir: Path) -> None:
    record, arch, problem, mapping = _inputs(arch_name)
    table = golden_energy_table(record["ert_ref"], record["art_ref"])
    at16 = MappingEvaluator().evaluate(arch, problem.with_precision(Precision.uniform(16)), mapping, table)
    native = MappingEvaluator().evaluate(arch, problem.with_precision(Precision()), mapping, table)
    assert at16 == native and at16.valid


@pytest.mark.parametrize("bits", [17, 32, 0, -3])
def test_unstorable_bit_width_is_invalid_with_reason(bits: int, shared_dir: Path) -> None:
    record, arch, problem, mapping = _inputs("eyeriss")
    bad = problem.with_precision(Precision(inputs=bits, weights=8, outputs=8))
    stats = MappingEvaluator().evaluate(arch, bad, mapping, golden_energy_table(record["ert_ref"], record["art_ref"]))
    assert not stats.valid
    assert "Inputs" in stats.reason and f"b = {bits}" in stats.reason and "W = 16" in stats.reason


def test_packing_divides_counts_and_capacity(shared_dir: Path) -> None:
    record, arch, problem, mapping = _inputs("eyeriss")
    engine = MappingEvaluator()
    native = engine.evaluate(arch, problem, mapping)
    packed = engine.evaluate(arch, problem.with_precision(Precision(4, 4, 8)), mapping)
    for lv_native, lv_packed in zip(native.levels, packed.levels):
        for ds, d in lv_native.dataspaces.items():
            k = {"Inputs": 4, "Weights": 4, "Outputs": 2}[ds]
            p = lv_packed.dataspaces[ds]
            assert p.operands_per_word == k
            assert p.utilized_capacity == -(-d.utilized_capacity // k)
            assert p.reads == -(-d.reads // k) and p.fills == -(-d.fills // k)
    assert packed.energy_pj < native.energy_pj


def test_capacity_overflow_names_level_and_words(shared_dir: Path) -> None:
    """All of M in psum_spad (24 words, keeps only Outputs) overflows it; the reason says where,
    which dataspace, how many words are needed and how many the level has."""
    record, arch, problem, mapping = _inputs("eyeriss")
    levels = []
    for lm in mapping.levels:
        temporal, spatial = dict(lm.temporal), dict(lm.spatial)
        temporal["M"] = problem.bounds["M"] if lm.target == "psum_spad" else 1
        spatial["M"] = 1
        levels.append(replace(lm, temporal=temporal, spatial=spatial))
    psum = next(lm for lm in levels if lm.target == "psum_spad")
    tile = 1
    for dim in ("N", "M", "P", "Q"):  # Outputs ranks; psum_spad is the innermost level
        tile *= psum.temporal.get(dim, 1) * psum.spatial.get(dim, 1)
    assert tile > 24
    stats = MappingEvaluator().evaluate(arch, problem, Mapping(tuple(levels)))
    assert not stats.valid
    assert stats.reason == (f"capacity exceeded at level psum_spad: needs {tile} words "
                            f"(Outputs {tile}), has 24 words")
    packed = MappingEvaluator().evaluate(arch, problem.with_precision(Precision(16, 16, 8)),
                                      Mapping(tuple(levels)))
    assert f"needs {-(-tile // 2)} words (Outputs {-(-tile // 2)})" in packed.reason


def _all_at_dram(arch, mapping: Mapping, problem) -> Mapping:
    levels = [LevelMapping(lv.name, keep=mapping.for_level(lv.name).keep,
                           bypass=mapping.for_level(lv.name).bypass) for lv in arch.levels[1:]]
    top = LevelMapping(arch.levels[0].name, temporal=dict(problem.bounds),
                       temporal_permutation="".join(problem.shape.dimensions),
                       keep=mapping.for_level(arch.levels[0].name).keep,
                       bypass=mapping.for_level(arch.levels[0].name).bypass)
    return Mapping(tuple(levels) + (top,))


@pytest.mark.parametrize("variant,base", [("eyeriss_w8", "eyeriss"), ("eyeriss_16x16", "eyeriss"),
                                          ("simba_8pe", "simba")])
def test_variant_specs_evaluate(variant: str, base: str, shared_dir: Path) -> None:
    folder = shared_dir / "golden_var" / "specs" / variant
    files = [p for p in sorted(folder.rglob("*.yaml")) if "constraint" not in p.name]
    arch = load_arch(*files)
    _, _, problem, mapping = _inputs(base)
    problem = problem.with_precision(Precision())
    m = _all_at_dram(arch, mapping, problem)
    stats = MappingEvaluator().evaluate(arch, problem, m)
    assert stats.valid, stats.reason
    assert stats.cycles == problem.macs and stats.energy_pj > stats.mac_energy_pj > 0
    if variant == "eyeriss_w8":
        wide = MappingEvaluator().evaluate(arch, problem.with_precision(Precision.uniform(16)), m)
        assert not wide.valid and "W = 8" in wide.reason
        narrow = MappingEvaluator().evaluate(arch, problem.with_precision(Precision.uniform(4)), m)
        assert narrow.valid and narrow.levels[-1].dataspaces["Weights"].operands_per_word == 2
