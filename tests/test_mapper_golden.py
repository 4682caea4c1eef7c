"""Acceptance of the built-in mapper over every golden case (../shared/golden and golden_dw).

Per case: the arch with the record's constraint files, the problem, the ERT of the record, and
the best EDP among the case's golden mappings (real timeloop-mapper outputs), all evaluated by
the built-in engine. `golden_cases` is also used by benchmarks/bench_mapper.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ALL_GOLDEN_RECORDS, SHARED_DIR

from wrapper.engine import MappingEvaluator
from wrapper.engine.constraints import build_mapspace
from wrapper.engine.mapper import sampling_search
from wrapper.spec.arch import Arch, arch_from_dict
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.ert import EnergyTable, load_energy_table
from wrapper.spec.mapping import Mapping, mapping_from_dict, validate_mapping
from wrapper.spec.problem import Problem, problem_from_dict
from wrapper.spec.yamlio import parse_yaml_text


@dataclass(frozen=True)
class GoldenCase:
    """One (arch, layer, bits) case with its golden mappings."""

    case_id: str
    arch: Arch
    problem: Problem
    table: EnergyTable
    mappings: tuple[Mapping, ...]
    records: tuple[dict[str, Any], ...]

    def best_golden_edp(self) -> float:
        engine = MappingEvaluator()
        edps = [s.edp for s in (engine.evaluate(self.arch, self.problem, m, self.table)
                                for m in self.mappings) if s.valid]
        return min(edps)


def record_arch(record: dict[str, Any], constraints: bool = True) -> Arch:
    """The record's arch and components, plus its constraint files when ``constraints``."""
    data = dict(parse_yaml_text(record["arch_yaml"]))
    classes = data.setdefault("compound_components", {"classes": []})["classes"]
    for text in record["components_yaml"].values():
        classes.extend(parse_yaml_text(text)["compound_components"]["classes"])
    if constraints:
        for text in record["constraints_yaml"].values():
            data.update(parse_yaml_text(text))
    return arch_from_dict(data, record["record_id"])


def golden_cases(records: list[dict[str, Any]], shared_dir: Path) -> list[GoldenCase]:
    """Group records by case id (first record gives arch, problem and ERT)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["case_id"], []).append(record)
    cases = []
    tables: dict[str, EnergyTable] = {}
    for case_id, recs in grouped.items():
        first = recs[0]
        ert = first["ert_ref"]
        if ert not in tables:
            tables[ert] = load_energy_table(shared_dir / "golden" / ert, shared_dir / "golden" / first["art_ref"])
        cases.append(GoldenCase(case_id, record_arch(first), problem_from_dict(parse_yaml_text(first["problem_yaml"])),
                                tables[ert], tuple(mapping_from_dict(parse_yaml_text(r["mapping_yaml"]))
                                                   for r in recs), tuple(recs)))
    return cases


CASES = golden_cases(ALL_GOLDEN_RECORDS, SHARED_DIR) if ALL_GOLDEN_RECORDS else []
SETTINGS = MapperSettings(metric="edp", max_evaluations=20000, seed=0)


@pytest.mark.parametrize("case", CASES, ids=[c.case_id for c in CASES])
def test_mapper_beats_every_golden_mapping(case, shared_dir):
    """Best EDP found <= best EDP of the real timeloop-mapper's mappings (same engine, same ERT),
    and the mapping satisfies the case's constraint files literally."""
    space = build_mapspace(case.arch, case.problem)
    result = sampling_search(space, case.table, SETTINGS)
    golden = case.best_golden_edp()
    assert result.stats.valid, f"{case.case_id}: {result.stats.reason}"
    assert result.stats.edp <= golden * (1 + 1e-9), (
        f"{case.case_id}: mapper EDP {result.stats.edp:.6g} > golden {golden:.6g} "
        f"(ratio {result.stats.edp / golden:.4f})")
    validate_mapping(result.mapping, case.arch, case.problem, case.case_id)
    assert space.violations(result.mapping, strict=True) == [], case.case_id
