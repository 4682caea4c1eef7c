"""The real Timeloop binaries on a golden case (skipped with a reason when they are not installed).

Compares timeloop-model through TimeloopCostModel with the golden record (the fork's own output)
and with the built-in engine; runs a small timeloop-mapper search.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import golden_case, stats_from_results

from wrapper.spec.costmodel import MapperSettings
from wrapper.timeloop.costmodel import TimeloopCostModel
from wrapper.timeloop.discovery import find_binaries

BINARIES = find_binaries()
pytestmark = pytest.mark.skipif(
    BINARIES.model is None or BINARIES.mapper is None,
    reason="timeloop-model/timeloop-mapper not on PATH (set QUANTMAP_TIMELOOP_MODEL/_MAPPER or "
           "use the official Timeloop Docker image)")

CASE = "eyeriss__mbv1_L3__i4w4o8"


def _model(tmp_path: Path) -> TimeloopCostModel:
    return TimeloopCostModel(BINARIES, work_root=tmp_path / "work", timeout_s=120)


def test_real_model_matches_the_golden_record(shared_dir: Path, tmp_path: Path) -> None:
    record, arch, problem, mapping = golden_case(CASE)
    model = _model(tmp_path)
    stats = model.evaluate(arch, problem, mapping, shared_dir / "golden" / "ert" / "eyeriss")
    golden = stats_from_results(record["results"])
    assert stats.cycles == golden.cycles and stats.macs == golden.macs
    for got, want in zip(stats.levels, golden.levels, strict=True):
        for name, ds in got.dataspaces.items():
            exp = want.dataspaces[name]
            assert (ds.reads, ds.fills, ds.updates, ds.utilized_capacity) == (
                exp.reads, exp.fills, exp.updates, exp.utilized_capacity), f"{got.name}.{name}"
    tolerance = 1e-6 if model.mode == "native" else 1e-3  # stock: patched, energy approximate
    assert stats.energy_pj == pytest.approx(golden.energy_pj, rel=tolerance)


def test_real_model_and_builtin_engine_agree(shared_dir: Path, tmp_path: Path) -> None:
    engine_module = pytest.importorskip("wrapper.engine")
    from wrapper.spec.ert import load_energy_table

    _, arch, problem, mapping = golden_case(CASE)
    ert_dir = shared_dir / "golden" / "ert" / "eyeriss"
    real = _model(tmp_path).evaluate(arch, problem, mapping, ert_dir)
    table = load_energy_table(ert_dir / "timeloop-mapper.ERT.yaml",
                              ert_dir / "timeloop-mapper.ART.yaml")
    builtin = engine_module.BuiltinEngine().evaluate(arch, problem, mapping, table)
    assert builtin.cycles == real.cycles
    assert builtin.energy_pj == pytest.approx(real.energy_pj, rel=0.05)


def test_real_mapper_finds_a_valid_mapping(shared_dir: Path, tmp_path: Path) -> None:
    _, arch, problem, _ = golden_case(CASE)
    found, stats = _model(tmp_path).search(arch, problem, MapperSettings(max_evaluations=50),
                                           shared_dir / "golden" / "ert" / "eyeriss")
    assert stats.valid and stats.macs == problem.macs and found.levels
