"""``--timeloop-version v3``: the built-in engine counting as stock Timeloop v3.0.3.

Without tools: the v3 accounting differs from the fork's only in the fills of read-write
dataspaces below their outermost keeping level (and so in energy and bandwidth-bound cycles) (docs/fidelity.md, "Stock v3 accounting"). With a
build that counts as v3.0.3 (tests/realtools.py says how builds are found): every golden and
golden_dw record, and mappings the built-in mapper finds, give the real tool's counts and cycles
exactly and its energy within 1e-5; the real-tool engine refuses a build whose accounting is not
the one asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (ALL_GOLDEN_RECORDS, GOLDEN_RECORDS, REPO_ROOT, golden_case,
                      golden_energy_table)
from realtools import NO_TOOLS, builds_of, cost_model

from wrapper.engine import BuiltinCostModel, MappingEvaluator
from wrapper.errors import ConfigError
from wrapper.spec.costmodel import FORK, V3, MapperSettings
from wrapper.spec.stats import Stats

V3_BUILDS = builds_of(accounting=V3)
FORK_BUILDS = builds_of(accounting=FORK)
ENERGY_TOLERANCE = 1e-5


def _differences(got: Stats, want: Stats) -> list[str]:
    """What differs between two Stats: cycles, any count, energy beyond the tolerance."""
    diffs = [] if got.cycles == want.cycles else [f"cycles {got.cycles} vs {want.cycles}"]
    for a, b in zip(got.levels, want.levels, strict=True):
        for name, exp in b.dataspaces.items():
            ds = a.dataspaces[name]
            ours = (ds.reads, ds.fills, ds.updates, ds.utilized_capacity)
            theirs = (exp.reads, exp.fills, exp.updates, exp.utilized_capacity)
            if ours != theirs:
                diffs.append(f"{a.name}.{name} {ours} vs {theirs}")
    error = got.energy_pj / want.energy_pj - 1
    if abs(error) > ENERGY_TOLERANCE:
        diffs.append(f"energy {error:+.2e}")
    return diffs


def _both(record: dict) -> tuple[Stats, Stats]:
    _, arch, problem, mapping = golden_case(record_id=record["record_id"])
    table = golden_energy_table(record["ert_ref"], record["art_ref"])
    return (MappingEvaluator(FORK).evaluate(arch, problem, mapping, table),
            MappingEvaluator(V3).evaluate(arch, problem, mapping, table))


def test_v3_changes_only_inner_read_write_fills(shared_dir: Path) -> None:
    lower = 0
    for record in ALL_GOLDEN_RECORDS[::7]:
        fork, v3 = _both(record)
        # fewer fills: never more energy, never more bandwidth-bound cycles
        assert v3.cycles <= fork.cycles and v3.energy_pj <= fork.energy_pj
        for a, b in zip(fork.levels, v3.levels, strict=True):
            outermost = a is fork.levels[-1]
            for name, ds in a.dataspaces.items():
                other = b.dataspaces[name]
                assert (ds.reads, ds.updates, ds.utilized_capacity) == (
                    other.reads, other.updates, other.utilized_capacity)
                if name != "Outputs" or outermost:
                    assert ds.fills == other.fills, (record["record_id"], a.name, name)
                else:
                    assert other.fills < ds.fills, (record["record_id"], a.name)
        lower += v3.energy_pj < fork.energy_pj
    assert lower > 0


def test_unknown_version_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown Timeloop version 'v4'"):
        BuiltinCostModel(timeloop_version="v4")


@pytest.mark.skipif(not V3_BUILDS, reason=f"no build counting as v3.0.3: {NO_TOOLS}")
def test_builtin_v3_equals_real_v3_on_every_golden_record(shared_dir: Path,
                                                          tmp_path: Path) -> None:
    model = cost_model(V3_BUILDS[0][1], tmp_path, mode="stock", timeloop_version=V3)
    failures = []
    for record in ALL_GOLDEN_RECORDS:
        _, arch, problem, mapping = golden_case(record_id=record["record_id"])
        real = model.evaluate(arch, problem, mapping,
                              (shared_dir / "golden" / record["ert_ref"]).parent)
        ours = MappingEvaluator(V3).evaluate(arch, problem, mapping,
                                             golden_energy_table(record["ert_ref"],
                                                                 record["art_ref"]))
        diffs = _differences(ours, real)
        if diffs:
            failures.append(f"{record['record_id']}: {'; '.join(diffs)}")
    assert len(ALL_GOLDEN_RECORDS) == 492
    assert not failures, "\n".join(failures[:20])


@pytest.mark.skipif(not V3_BUILDS, reason=f"no build counting as v3.0.3: {NO_TOOLS}")
def test_builtin_v3_mappings_equal_real_v3(shared_dir: Path, tmp_path: Path) -> None:
    """Mappings the built-in v3 mapper finds (not in any golden file) evaluated by both, on
    the standard convolutions (depthwise mappings found this way differ in Inputs counts under
    the fork's accounting too, so they say nothing about v3)."""
    model = cost_model(V3_BUILDS[0][1], tmp_path, mode="stock", timeloop_version=V3)
    settings = MapperSettings(metric="energy", max_evaluations=400, exact=False)
    picked = {r["case_id"]: r for r in GOLDEN_RECORDS if "depthwise" not in r["layer_kind"]}
    for record in list(picked.values())[::5]:
        _, arch, problem, _ = golden_case(record_id=record["record_id"])
        table = golden_energy_table(record["ert_ref"], record["art_ref"])
        builtin = BuiltinCostModel(table, timeloop_version=V3)
        mapping, ours = builtin.find_mapping(arch, problem, settings)
        real = model.evaluate(arch, problem, mapping,
                              (shared_dir / "golden" / record["ert_ref"]).parent)
        assert not _differences(ours, real), (record["record_id"], _differences(ours, real))


@pytest.mark.skipif(not V3_BUILDS, reason=f"no build counting as v3.0.3: {NO_TOOLS}")
def test_real_engine_refuses_a_build_of_another_version(tmp_path: Path) -> None:
    record, arch, problem, mapping = golden_case()
    model = cost_model(V3_BUILDS[0][1], tmp_path, timeloop_version=FORK)
    with pytest.raises(ConfigError, match="counts as Timeloop 'v3'"):
        model.evaluate(arch, problem, mapping)


def _write_inputs(record: dict, folder: Path) -> list[Path]:
    files = {"arch.yaml": record["arch_yaml"], "problem.yaml": record["problem_yaml"],
             "mapping.yaml": record["mapping_yaml"], **record["components_yaml"]}
    for name, text in files.items():
        (folder / name).write_text(text)
    return [folder / name for name in files]


@pytest.mark.skipif(not V3_BUILDS, reason=f"no build counting as v3.0.3: {NO_TOOLS}")
def test_cli_version_flag_means_the_same_in_both_engines(shared_dir: Path,
                                                         tmp_path: Path) -> None:
    record = GOLDEN_RECORDS[0]
    files = _write_inputs(record, tmp_path)
    folder = shared_dir / "golden" / Path(record["ert_ref"]).parent
    tables = [folder / Path(record["ert_ref"]).name, folder / Path(record["art_ref"]).name]
    bin_dir = V3_BUILDS[0][1].model.parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "QUANTMAP_CACHE": str(tmp_path / "cache")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "wrapper.evaluate", *map(str, files),
                               *map(str, tables), *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=300, env=env)

    refused = run("--engine", "timeloop")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--timeloop-version" in refused.stderr and "'v3'" in refused.stderr
    real = run("--engine", "timeloop", "--timeloop-version", "v3")
    ours = run("--timeloop-version", "v3")
    assert real.returncode == 0 and ours.returncode == 0, real.stderr + ours.stderr
    a, b = json.loads(real.stdout), json.loads(ours.stdout)
    assert a["cycles"] == b["cycles"] and abs(a["energy_pj"] / b["energy_pj"] - 1) <= 1e-5
