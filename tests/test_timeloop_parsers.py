"""The Timeloop output parsers against every raw output folder of the real fork (../shared).

Each model_* folder's stats.txt must give exactly the numbers recorded for that run in
records.json and cases.jsonl (per level and dataspace reads/fills/updates/capacity/energy, cycles,
totals); the CSV must agree with it; broken files must raise BackendError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ALL_GOLDEN_RECORDS, SHARED_DIR

from wrapper.errors import BackendError
from wrapper.spec.stats import Stats
from wrapper.timeloop.outputs import read_stats
from wrapper.timeloop.stats_csv import parse_stats_csv
from wrapper.timeloop.stats_text import parse_stats_txt

RAW_ROOTS = ("golden/raw", "golden_dw/raw")


def _run_dirs(kind: str) -> list[Path]:
    return sorted(p for root in RAW_ROOTS for p in (SHARED_DIR / root).glob(f"*/{kind}_*")
                  if p.is_dir())


MODEL_DIRS = _run_dirs("model")
MAPPER_DIRS = _run_dirs("mapper")
RECORDS_BY_ID = {r["record_id"]: r for r in ALL_GOLDEN_RECORDS}


def _records_for(model_dir: Path) -> list[dict[str, Any]]:
    """The records (from the case's records.json) evaluated in this model folder."""
    records = json.loads((model_dir.parent / "records.json").read_text())
    return [r for r in records if Path(r["model_dir"]).name == model_dir.name]


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _assert_matches_record(stats: Stats, results: dict[str, Any], where: str) -> None:
    summary = results["summary"]
    assert stats.valid
    assert stats.cycles == summary["cycles"], where
    assert stats.macs == summary["computes"], where
    assert stats.energy_pj == pytest.approx(summary["energy_pJ_sum_of_components"], rel=1e-9), where
    assert stats.utilization == pytest.approx(summary["utilization"], abs=1e-6), where
    assert stats.mac_energy_pj == pytest.approx(results["mac"]["energy_pJ"], rel=1e-12), where
    assert [lv.name for lv in stats.levels] == [st["name"] for st in results["storage"]], where
    for level, expected in zip(stats.levels, results["storage"]):
        assert level.cycles == expected["cycles"], f"{where} {level.name}"
        assert level.energy_pj == pytest.approx(expected["energy_total_pJ"], rel=1e-9, abs=1e-6)
        assert set(level.dataspaces) == set(expected["dataspaces"]), f"{where} {level.name}"
        for name, ds in level.dataspaces.items():
            exp = expected["dataspaces"][name]
            got = (ds.utilized_capacity, ds.reads, ds.fills, ds.updates, ds.operands_per_word)
            want = (exp["utilized_capacity"], exp["reads_per_instance"], exp["fills_per_instance"],
                    exp["updates_per_instance"], exp["operands_per_word"])
            assert got == want, f"{where} {level.name}.{name}: {got} != {want}"
            assert ds.energy_pj == pytest.approx(exp["energy_total_pJ"], rel=1e-12, abs=1e-6)


def test_every_raw_folder_is_found(shared_dir: Path) -> None:
    assert len(MODEL_DIRS) >= 19 and len(MAPPER_DIRS) >= 25


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_stats_txt_equals_recorded_results(shared_dir: Path, model_dir: Path) -> None:
    records = _records_for(model_dir)
    assert records, f"no record names {model_dir}"
    stats = read_stats(model_dir, "timeloop-model")
    for record in records:
        _assert_matches_record(stats, record["results"], record["record_id"])
        # cases.jsonl holds the same parsed values as the raw folder's records.json
        _assert_matches_record(stats, RECORDS_BY_ID[record["record_id"]]["results"],
                               f"cases.jsonl {record['record_id']}")


@pytest.mark.parametrize("model_dir", MODEL_DIRS, ids=_ids(MODEL_DIRS))
def test_csv_summary_matches_recorded_summary(shared_dir: Path, model_dir: Path) -> None:
    csv = parse_stats_csv((model_dir / "timeloop-model.stats.csv").read_text())
    summary = _records_for(model_dir)[0]["results"]["summary"]
    assert csv.cycles == summary["cycles"]
    assert csv.utilization == summary["utilization"]
    assert csv.energy_uj == summary["energy_uJ_csv"]
    assert csv.last_level_accesses == summary["last_level_accesses"]
    assert csv.computes == summary["computes"]


@pytest.mark.parametrize("mapper_dir", MAPPER_DIRS, ids=_ids(MAPPER_DIRS))
def test_mapper_outputs_parse_and_equal_the_model_rerun(shared_dir: Path, mapper_dir: Path) -> None:
    stats = read_stats(mapper_dir, "timeloop-mapper")
    assert stats.valid and stats.cycles > 0 and stats.energy_pj > 0
    records = json.loads((mapper_dir.parent / "records.json").read_text())
    variant = mapper_dir.name.removeprefix("mapper_")
    reruns = [r for r in records if r.get("mapping_from_variant") == variant
              and r.get("model_stats_identical_to_mapper_stats")]
    for record in reruns:
        _assert_matches_record(stats, record["results"], f"{mapper_dir.name} vs {record['record_id']}")


@pytest.mark.parametrize("mapper_dir", MAPPER_DIRS, ids=_ids(MAPPER_DIRS))
def test_mapper_map_yaml_loads_as_the_recorded_mapping(shared_dir: Path, mapper_dir: Path) -> None:
    mapping_module = pytest.importorskip("wrapper.spec.mapping")
    import yaml

    found = mapping_module.load_mapping(mapper_dir / "timeloop-mapper.map.yaml")
    records = json.loads((mapper_dir.parent / "records.json").read_text())
    variant = mapper_dir.name.removeprefix("mapper_")
    for record in (r for r in records if r.get("mapping_from_variant") == variant):
        recorded = mapping_module.mapping_from_dict(yaml.safe_load(record["mapping_yaml"]), "record")
        assert found == recorded


@pytest.mark.parametrize("cut", [0, 200, 5000])
def test_truncated_stats_txt_is_a_backend_error(shared_dir: Path, cut: int) -> None:
    text = (MODEL_DIRS[0] / "timeloop-model.stats.txt").read_text()[:cut]
    with pytest.raises(BackendError, match="unreadable Timeloop output"):
        parse_stats_txt(text, "cut.stats.txt")


def test_garbage_csv_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="no data row"):
        parse_stats_csv("pJ/Compute,Cycles\n")
    with pytest.raises(BackendError, match="not a number"):
        parse_stats_csv("pJ/Compute,Utilization,Cycles,Energy [uJ],EDP [J*cycle],Area [mm^2],"
                        "LastLevelAccesses,MAC energy [pJ],Computes,Algorithmic computes\n"
                        "x,1,2,3,4,5,6,7,8,9\n")


def test_mixed_up_outputs_are_refused(shared_dir: Path, tmp_path: Path) -> None:
    first, other = MODEL_DIRS[0], next(d for d in MODEL_DIRS if d.parent != MODEL_DIRS[0].parent)
    (tmp_path / "timeloop-model.stats.txt").write_text(
        (first / "timeloop-model.stats.txt").read_text())
    (tmp_path / "timeloop-model.stats.csv").write_text(
        (other / "timeloop-model.stats.csv").read_text())
    with pytest.raises(BackendError, match="disagrees"):
        read_stats(tmp_path, "timeloop-model")


def test_missing_stats_file_names_the_log(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="was not written") as info:
        read_stats(tmp_path, "timeloop-model", log_tail="Assertion failed")
    assert info.value.log_tail == "Assertion failed"
