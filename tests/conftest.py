"""Shared fixtures: where the golden outputs of the real tools live (../shared, never copied)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from wrapper.engine import MappingEvaluator
from wrapper.spec.arch import Arch, arch_from_dict
from wrapper.spec.ert import EnergyTable, load_energy_table
from wrapper.spec.mapping import Mapping, mapping_from_dict
from wrapper.spec.problem import Problem, problem_from_dict
from wrapper.spec.stats import DataspaceStats, LevelStats, Stats

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file of golden records."""
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


GOLDEN_RECORDS = load_jsonl(SHARED_DIR / "golden" / "cases.jsonl") if SHARED_DIR.exists() else []
GOLDEN_DW_RECORDS = (load_jsonl(SHARED_DIR / "golden_dw" / "cases.jsonl")
                     if SHARED_DIR.exists() else [])
ALL_GOLDEN_RECORDS = GOLDEN_RECORDS + GOLDEN_DW_RECORDS


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared folder with golden data (skips when absent, e.g. in a bare sdist)."""
    if not SHARED_DIR.exists():
        pytest.skip("../shared (golden data) is not present")
    return SHARED_DIR


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


def record_arch(record: dict[str, Any]) -> Arch:
    """The Arch of a golden record: its architecture text plus its component classes."""
    data = yaml.safe_load(record["arch_yaml"])
    for text in record["components_yaml"].values():
        classes = (yaml.safe_load(text).get("compound_components") or {}).get("classes") or []
        data.setdefault("compound_components", {"version": 0.3, "classes": []})["classes"] += classes
    return arch_from_dict(data, record["record_id"])


def golden_case(name: str = "eyeriss__mbv1_L3__i4w4o8", record_id: str | None = None
                ) -> tuple[dict[str, Any], Arch, Problem, Mapping]:
    """(record, Arch, Problem, Mapping) of a golden record, built from its texts (no files);
    skips the calling test when ../shared is absent."""
    if not ALL_GOLDEN_RECORDS:
        pytest.skip("../shared (golden data) is not present")
    record = next(r for r in ALL_GOLDEN_RECORDS
                  if (r["record_id"] == record_id if record_id else r["case_id"] == name))
    problem = problem_from_dict(yaml.safe_load(record["problem_yaml"]), record["record_id"])
    mapping = mapping_from_dict(yaml.safe_load(record["mapping_yaml"]), record["record_id"])
    return record, record_arch(record), problem, mapping


def stats_from_results(results: dict[str, Any]) -> Stats:
    """The Stats that the real tool reported for a golden record (its parsed results)."""
    levels = tuple(LevelStats(
        name=st["name"], energy_pj=st["energy_total_pJ"], cycles=st["cycles"],
        dataspaces={name: DataspaceStats(d["utilized_capacity"], d["reads_per_instance"],
                                         d["fills_per_instance"], d["updates_per_instance"],
                                         d["operands_per_word"], d["energy_total_pJ"])
                    for name, d in st["dataspaces"].items()}) for st in results["storage"])
    summary = results["summary"]
    return Stats(valid=True, energy_pj=summary["energy_pJ_sum_of_components"],
                 cycles=summary["cycles"], utilization=summary["utilization"],
                 macs=summary["computes"], mac_energy_pj=results["mac"]["energy_pJ"], levels=levels)


@lru_cache(maxsize=None)
def golden_energy_table(ert_ref: str, art_ref: str) -> EnergyTable:
    """The ERT/ART a golden record was evaluated with (paths relative to ../shared/golden)."""
    golden = SHARED_DIR / "golden"
    return load_energy_table(golden / ert_ref, golden / art_ref)


def evaluate_record(record: dict[str, Any]) -> Stats:
    """The built-in engine's Stats for a golden record, with the record's own energy tables."""
    _, arch, problem, mapping = golden_case(record_id=record["record_id"])
    return MappingEvaluator().evaluate(arch, problem, mapping,
                                    golden_energy_table(record["ert_ref"], record["art_ref"]))
