"""The real Timeloop binaries against the golden records (each test skips with a reason when no
suitable build is installed; see tests/realtools.py for how builds are found).

- native builds (the fork): ``evaluate --engine timeloop`` equals every golden and golden_dw
  record (counts, cycles, energy); a timeloop-model run on a mapping that does not fit is a
  ``valid: false`` result with Timeloop's reason.
- ``map --engine timeloop`` uses the ERT/ART given (no Accelergy run), adapts the constraints to
  a depthwise layer, and its best mapping, re-evaluated by ``evaluate`` with both engines, gives
  the mapper's own stats.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ALL_GOLDEN_RECORDS, GOLDEN_RECORDS, golden_case, stats_from_results
from realtools import NO_TOOLS, builds_of, cost_model

from wrapper.backends import evaluate_files, map_files
from wrapper.spec.stats import Stats

NATIVE_BUILDS = builds_of("native")
needs_native = pytest.mark.skipif(not NATIVE_BUILDS, reason=f"{NO_TOOLS}; none is a bit-width "
                                  "build (the authors' fork or a patched build)")


def _use_build(monkeypatch: pytest.MonkeyPatch, binaries: Any, tmp_path: Path) -> None:
    """Point the CLIs at one build, with caches under ``tmp_path``."""
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MODEL", str(binaries.model))
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MAPPER", str(binaries.mapper))
    monkeypatch.setenv("QUANTMAP_CACHE", str(tmp_path / "cache"))


def record_files(record: dict[str, Any], folder: Path, constraints: dict[str, str]) -> list[Path]:
    """The files a user would pass for a golden record: arch, components, constraints, problem,
    mapping, and the record's own ERT/ART."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"arch.yaml": record["arch_yaml"], "problem.yaml": record["problem_yaml"],
             "mapping.yaml": record["mapping_yaml"], **record["components_yaml"], **constraints}
    files = []
    for name, text in texts.items():
        files.append(folder / name)
        files[-1].write_text(text)
    golden = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
    return files + [golden / record["ert_ref"], golden / record["art_ref"]]


def dense_constraints(arch: str) -> dict[str, str]:
    """The CNN-layer (dense) constraint files of an arch, which name dimension M."""
    return next(r["constraints_yaml"] for r in GOLDEN_RECORDS if r["arch"] == arch)


def differences(got: Stats, want: Stats, rel: float = 1e-9, abs_pj: float = 0.0) -> list[str]:
    """What differs between two Stats: counts and cycles exactly, energy to ``rel`` (or
    ``abs_pj``: stats.txt prints every component's energy rounded to 0.01 pJ)."""
    out = []
    if (got.valid, got.cycles, got.macs) != (want.valid, want.cycles, want.macs):
        out.append(f"valid/cycles/macs {got.valid, got.cycles, got.macs} != "
                   f"{want.valid, want.cycles, want.macs}")
    for a, b in zip(got.levels, want.levels, strict=True):
        for name, exp in b.dataspaces.items():
            ds = a.dataspaces.get(name)
            if ds is None or (ds.reads, ds.fills, ds.updates, ds.utilized_capacity) != (
                    exp.reads, exp.fills, exp.updates, exp.utilized_capacity):
                out.append(f"{a.name}.{name}: {ds} != {exp}")
    if abs(got.energy_pj - want.energy_pj) > max(rel * abs(want.energy_pj), abs_pj):
        out.append(f"energy {got.energy_pj} != {want.energy_pj}")
    return out


@needs_native
def test_evaluate_with_a_native_build_equals_every_golden_record(
        shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Depthwise records get the dense constraint files, as a user would pass them: the inputs
    are adapted to the depthwise shape on this path as on the built-in one."""
    for label, binaries in NATIVE_BUILDS:
        _use_build(monkeypatch, binaries, tmp_path / label)
        failures = []
        for i, record in enumerate(ALL_GOLDEN_RECORDS):
            files = record_files(record, tmp_path / label / str(i), dense_constraints(record["arch"]))
            got = evaluate_files(files, "timeloop")
            failures += [f"{record['record_id']}: {d}"
                         for d in differences(got, stats_from_results(record["results"]))]
        print(f"{label}: {len(ALL_GOLDEN_RECORDS) - len({f.split(':')[0] for f in failures})} of "
              f"{len(ALL_GOLDEN_RECORDS)} golden records exact")
        assert not failures, "\n".join(failures[:20])


@needs_native
def test_a_mapping_that_does_not_fit_is_invalid_with_timeloops_reason(tmp_path: Path) -> None:
    _, arch, problem, mapping = golden_case("eyeriss__mbv1_L3__none")
    ert = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "ert" / "eyeriss"
    small = arch_with_depth(arch, "psum_spad", 1)
    stats = cost_model(NATIVE_BUILDS[0][1], tmp_path).evaluate(small, problem, mapping, ert)
    assert not stats.valid and "psum_spad" in stats.reason and "capacity" in stats.reason


def arch_with_depth(arch: Any, level: str, depth: int) -> Any:
    """``arch`` with one storage level's memory depth changed."""
    from wrapper.spec.arch import arch_from_dict

    spec = yaml.safe_load(yaml.safe_dump(dict(arch.spec)))

    def visit(nodes: list[dict[str, Any]]) -> None:
        for node in nodes or []:
            for leaf in node.get("local") or []:
                if leaf["name"].split("[")[0] == level:
                    leaf["attributes"]["memory_depth"] = depth
            visit(node.get("subtree"))

    visit(spec["architecture"]["subtree"])
    return arch_from_dict(spec, "test")


def _tripwire(folder: Path) -> Path:
    """An ``accelergy`` that records being called (it must not be: the user gave ERT/ART)."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "accelergy"
    tool.write_text(f"#!/bin/sh\necho called >> {folder / 'calls'}\nexit 1\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


@needs_native
@pytest.mark.parametrize("case", ["eyeriss__mbv1_L3__i4w4o8", "simba__mbv1_L28__i8w2o8",
                                  "simba__mbv2_L35_dw__i4w4o8"])
def test_map_uses_the_given_tables_and_its_mapping_reevaluates_to_the_same_stats(
        shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    _, binaries = NATIVE_BUILDS[0]
    _use_build(monkeypatch, binaries, tmp_path)
    tripwire = _tripwire(tmp_path / "trip")
    monkeypatch.setenv("QUANTMAP_ACCELERGY", str(tripwire))
    monkeypatch.setenv("PATH", f"{tripwire.parent}{os.pathsep}{os.environ['PATH']}")
    record, *_ = golden_case(case)
    # the dense constraint files, also for a depthwise layer: they are adapted on the way in
    files = [f for f in record_files(record, tmp_path / "in", dense_constraints(record["arch"]))
             if f.name != "mapping.yaml"]
    mapper = tmp_path / "in" / "mapper.yaml"
    mapper.write_text(yaml.safe_dump({"mapper": {"metric": "edp", "budget": 300}}))
    path, _, searched = map_files([*files, mapper], tmp_path / "out", "timeloop")
    assert searched.valid and not (tmp_path / "trip" / "calls").exists()
    inputs = [f for f in files if "constraints" not in f.name] + [path]
    # stats.txt prints energies to 0.01 pJ: the built-in engine's unrounded sum differs by that
    for engine, rel in (("timeloop", 1e-9), ("builtin", 1e-7)):
        again = evaluate_files(inputs, engine)
        assert not differences(again, searched, rel), (engine, differences(again, searched, rel))
