"""The built-in engine against every golden timeloop-model run (../shared/golden, golden_dw).

Inputs are the texts stored in each record (arch, components, problem, mapping) plus the ERT/ART
the real tool was given; constraint files are not used, as timeloop-model did not get them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ALL_GOLDEN_RECORDS, evaluate_record, golden_energy_table, record_arch

from wrapper.engine import MappingEvaluator
from wrapper.spec.mapping import mapping_from_dict
from wrapper.spec.problem import problem_from_dict

ENERGY_TOLERANCE = 1e-3
COUNT_FIELDS = (("utilized_capacity", "utilized_capacity"), ("reads", "reads_per_instance"),
                ("fills", "fills_per_instance"), ("updates", "updates_per_instance"),
                ("operands_per_word", "operands_per_word"))


def close(expected: float, got: float) -> bool:
    return abs(got - expected) <= ENERGY_TOLERANCE * max(abs(expected), 1e-9)


@pytest.mark.parametrize("record", ALL_GOLDEN_RECORDS, ids=lambda r: r["record_id"])
def test_record_matches_timeloop(record: dict[str, Any], shared_dir: Path) -> None:
    rid = record["record_id"]
    stats = evaluate_record(record)
    assert stats.valid, f"{rid}: engine says invalid: {stats.reason}"
    results = record["results"]
    errors = []
    by_name = {lv.name: lv for lv in stats.levels}
    for level in results["storage"]:
        got_level = by_name[level["name"]]
        if got_level.cycles != level["cycles"]:
            errors.append(f"{rid} level {level['name']} cycles: expected {level['cycles']}, "
                          f"got {got_level.cycles}")
        if not close(level["energy_total_pJ"], got_level.energy_pj):
            errors.append(f"{rid} level {level['name']} energy_pj: expected "
                          f"{level['energy_total_pJ']}, got {got_level.energy_pj}")
        if set(level["dataspaces"]) != set(got_level.dataspaces):
            errors.append(f"{rid} level {level['name']} kept dataspaces: expected "
                          f"{sorted(level['dataspaces'])}, got {sorted(got_level.dataspaces)}")
        for ds, exp in level["dataspaces"].items():
            got = got_level.dataspaces.get(ds)
            if got is None:
                continue
            for ours, theirs in COUNT_FIELDS:
                if getattr(got, ours) != exp[theirs]:
                    errors.append(f"{rid} level {level['name']} dataspace {ds} {ours}: expected "
                                  f"{exp[theirs]}, got {getattr(got, ours)}")
            if not close(exp["energy_total_pJ"], got.energy_pj):
                errors.append(f"{rid} level {level['name']} dataspace {ds} energy_pj: expected "
                              f"{exp['energy_total_pJ']}, got {got.energy_pj}")
    summary = results["summary"]
    if stats.cycles != summary["cycles"]:
        errors.append(f"{rid} total cycles: expected {summary['cycles']}, got {stats.cycles}")
    if not close(summary["energy_pJ_sum_of_components"], stats.energy_pj):
        errors.append(f"{rid} total energy_pj: expected {summary['energy_pJ_sum_of_components']}, "
                      f"got {stats.energy_pj}")
    if not close(results["mac"]["energy_pJ"], stats.mac_energy_pj):
        errors.append(f"{rid} mac energy: expected {results['mac']['energy_pJ']}, "
                      f"got {stats.mac_energy_pj}")
    if abs(stats.utilization - summary["utilization"]) > 0.006:
        errors.append(f"{rid} utilization: expected {summary['utilization']}, got {stats.utilization}")
    assert not errors, "\n".join(errors[:20])


def test_batch_agrees_with_scalar_path(shared_dir: Path) -> None:
    """The batch API on golden mappings of one (arch, problem) gives the scalar path's numbers."""
    import numpy as np

    from wrapper.engine import evaluate_batch

    group = [r for r in ALL_GOLDEN_RECORDS if r["case_id"] == ALL_GOLDEN_RECORDS[0]["case_id"]]
    arch = record_arch(group[0])
    problem = problem_from_dict(yaml.safe_load(group[0]["problem_yaml"]))
    dims = problem.shape.dimensions
    levels = arch.inner_to_outer
    mappings = [mapping_from_dict(yaml.safe_load(r["mapping_yaml"])) for r in group]
    temporal = np.array([[[m.for_level(lv.name).temporal.get(d, 1) for d in dims] for lv in levels]
                         for m in mappings])
    spatial = np.array([[[m.for_level(lv.name).spatial.get(d, 1) for d in dims] for lv in levels]
                        for m in mappings])
    perms = [[m.for_level(lv.name).temporal_permutation for lv in levels] for m in mappings]
    keeps = [m.for_level(lv.name).keep for lv in levels for m in mappings[:1]]
    table = golden_energy_table(group[0]["ert_ref"], group[0]["art_ref"])
    result = evaluate_batch(arch, problem, temporal, spatial, perms, keeps, table)
    for i, mapping in enumerate(mappings):
        scalar = MappingEvaluator().evaluate(arch, problem, mapping, table)
        assert result.valid[i] == scalar.valid
        assert result.cycles[i] == scalar.cycles and result.energy_pj[i] == scalar.energy_pj
