"""Grouped, dilated and strided problems: the built-in engine against the real timeloop-model.

The records are made here, not stored: every problem case below (grouped layers, dilations with
halos, strides up to beyond the kernel, and mixes, in the grouped, dense and depthwise shapes)
on the Eyeriss-like and Simba-like renders (constraints adapted to the shape), once without and
once with bit widths, each with two mappings: the built-in mapper's best and a seeded random
valid mapping of the mapspace. Both engines price them with the same ERT/ART (``ert_real``:
Accelergy's tables of the default renders), so no Accelergy runs.

- Bit-width builds (the fork): every record equal, counts and cycles exact, energy within 1e-5.
- Stock builds that count like the fork (they reproduce every golden record without bit widths,
  as the commit the fork branched from does): every record without bit widths equal. Later
  releases count Outputs fills differently and are skipped with that reason.

The tools on a grouped problem YAML, end to end: ``wrapper.map`` adapts the template's
constraints (G follows N) and its mapping re-evaluates to the same stats in ``wrapper.evaluate``;
timeloop-mapper takes the same adapted constraints, and the built-in mapper's proven optimum is
at least as good as its best.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ALL_GOLDEN_RECORDS, SHARED_DIR, golden_case, stats_from_results
from realtools import NO_TOOLS, builds_of, cost_model
from test_timeloop_integration import differences

from wrapper.backends import evaluate_files, map_files
from wrapper.engine import MappingEvaluator
from wrapper.engine.constraints import build_mapspace
from wrapper.engine.costmodel import BuiltinCostModel
from wrapper.engine.mapspace import MapSpace
from wrapper.spec.arch import Arch
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.constraints import adapt_constraints_for_shape
from wrapper.spec.ert import EnergyTable, load_energy_table
from wrapper.spec.inputs import load_inputs
from wrapper.spec.mapping import Mapping, load_mapping
from wrapper.spec.precision import Precision
from wrapper.spec.problem import (
    CNN_LAYER_SHAPE,
    DEPTHWISE_SHAPE,
    GROUPED_SHAPE,
    Problem,
    ProblemShape,
    dump_problem,
)
from wrapper.spec.stats import Stats
from wrapper.spec.templates import write_arch

ARCHES = ("eyeriss", "simba")
ENERGY_REL = 1e-5


def _coefficients(stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1)
                  ) -> dict[str, int]:
    return {"Wstride": stride[0], "Hstride": stride[1],
            "Wdilation": dilation[0], "Hdilation": dilation[1]}


# (name, shape, bounds, coefficients): P and R run along W, Q and S along H.
CASES: tuple[tuple[str, ProblemShape, dict[str, int], dict[str, int]], ...] = (
    ("grouped_g4_3x3", GROUPED_SHAPE,
     {"G": 4, "C": 8, "M": 8, "R": 3, "S": 3, "N": 1, "P": 14, "Q": 14}, _coefficients()),
    ("grouped_g8_3x3_stride2", GROUPED_SHAPE,
     {"G": 8, "C": 4, "M": 4, "R": 3, "S": 3, "N": 1, "P": 7, "Q": 7}, _coefficients((2, 2))),
    ("grouped_g2_3x3_dilation2", GROUPED_SHAPE,
     {"G": 2, "C": 16, "M": 16, "R": 3, "S": 3, "N": 1, "P": 12, "Q": 12},
     _coefficients(dilation=(2, 2))),
    ("grouped_g3_1x7_stride3_dilation2_batch2", GROUPED_SHAPE,
     {"G": 3, "C": 4, "M": 6, "R": 1, "S": 7, "N": 2, "P": 5, "Q": 6},
     _coefficients((3, 1), (1, 2))),
    ("grouped_g2_c3_stride3x5_dilation3", GROUPED_SHAPE,  # C3: Simba fills 3 of 4 lanes
     {"G": 2, "C": 3, "M": 6, "R": 1, "S": 3, "N": 1, "P": 7, "Q": 8},
     _coefficients((3, 5), (3, 1))),
    ("dense_1x1_stride2", CNN_LAYER_SHAPE,  # stride beyond the kernel: inputs skipped
     {"C": 16, "M": 32, "R": 1, "S": 1, "N": 1, "P": 7, "Q": 7}, _coefficients((2, 2))),
    ("dense_3x3_stride4_dilation3", CNN_LAYER_SHAPE,
     {"C": 8, "M": 16, "R": 3, "S": 3, "N": 1, "P": 6, "Q": 6}, _coefficients((4, 4), (3, 3))),
    ("dense_S7_dilation4", CNN_LAYER_SHAPE,  # (a dilated R7 row overflows Eyeriss' ifmap_spad)
     {"C": 8, "M": 8, "R": 1, "S": 7, "N": 1, "P": 10, "Q": 8}, _coefficients(dilation=(1, 4))),
    ("depthwise_3x3_stride2_dilation2", DEPTHWISE_SHAPE,
     {"C": 32, "R": 3, "S": 3, "N": 1, "P": 7, "Q": 7}, _coefficients((2, 2), (2, 2))),
)
BIT_WIDTHS = (Precision(), Precision(inputs=4, weights=2, outputs=8))


@dataclass(frozen=True)
class Record:
    """One (case, arch, bit setting, mapping) evaluated by both engines."""

    name: str
    arch_name: str
    arch: Arch
    problem: Problem
    mapping: Mapping


def _render(arch_name: str, problem: Problem, folder: Path) -> tuple[Arch, list[Path]]:
    """The template's files as a user has them (constraints not adapted), the problem file,
    and the Arch that `load_inputs` reads from them (constraints adapted to the shape)."""
    files = write_arch(arch_name, None, folder)
    files.append(dump_problem(problem, folder / "problem.yaml"))
    return load_inputs(files).arch, files


def _random_mapping(space: MapSpace, seed: int) -> Mapping:
    """A seeded random mapping among those that fit (keep choice, factors, loop orders)."""
    rng = np.random.default_rng(seed)
    keeps = list(itertools.product(*space.keep_choices))
    kept = keeps[rng.integers(len(keeps))]
    keep = np.array([[ds in k for ds in space.dataspaces] for k in kept])
    rows, _ = space.enumerate_factors(keep, limit=64, rng=rng)
    orders = space.default_orders()
    for li, si in enumerate(space.temporal_slots):
        fixed = len(space.slots[si].prefix)
        orders[li, fixed:] = rng.permutation(orders[li, fixed:])
    return space.to_mapping(rows[rng.integers(len(rows))], orders, kept)


def _table_dir(arch_name: str) -> Path:
    return SHARED_DIR / "golden" / "ert_real" / arch_name


@lru_cache(maxsize=None)
def _energy_table(arch_name: str) -> EnergyTable:
    folder = _table_dir(arch_name)
    return load_energy_table(folder / "ERT.yaml", folder / "ART.yaml")


@pytest.fixture(scope="module")
def records(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Record, ...]:
    """Every record of the module docstring (made once per module run)."""
    root = tmp_path_factory.mktemp("renders")
    settings = MapperSettings(max_evaluations=2000, exact_budget=20000, exact_seconds=20.0)
    out = []
    for (name, shape, bounds, coefficients), arch_name, precision in itertools.product(
            CASES, ARCHES, BIT_WIDTHS):
        problem = Problem(shape, bounds, coefficients, precision)
        bits = "none" if precision.is_native else "i4w2o8"
        label = f"{arch_name}__{name}__{bits}"
        arch, _ = _render(arch_name, problem, root / label)
        table = _energy_table(arch_name)
        best, _ = BuiltinCostModel(table).find_mapping(arch, problem, settings)
        drawn = _random_mapping(build_mapspace(arch, problem), len(out))
        out += [Record(f"{label}__mapper", arch_name, arch, problem, best),
                Record(f"{label}__random", arch_name, arch, problem, drawn)]
    return tuple(out)


def _compare(binaries: object, tmp: Path, chosen: list[Record]) -> tuple[list[str], float]:
    """(differences, largest relative energy error) of the built-in engine against a build."""
    model = cost_model(binaries, tmp / "tools")
    failures, worst = [], 0.0
    for record in chosen:
        want: Stats = model.evaluate(record.arch, record.problem, record.mapping,
                                     _table_dir(record.arch_name))
        got = MappingEvaluator().evaluate(record.arch, record.problem, record.mapping,
                                          _energy_table(record.arch_name))
        assert want.valid, f"{record.name}: Timeloop refused the mapping: {want.reason}"
        worst = max(worst, abs(got.energy_pj / want.energy_pj - 1))
        failures += [f"{record.name}: {d}" for d in differences(got, want, rel=ENERGY_REL)]
    return failures, worst


def _report(label: str, chosen: list[Record], failures: list[str], worst: float) -> None:
    exact = len(chosen) - len({f.split(":")[0] for f in failures})
    print(f"\n{label}: {exact} of {len(chosen)} records equal (largest energy error {worst:.2e})")


def test_the_records_cover_grouped_dilated_and_strided_problems(
        records: tuple[Record, ...]) -> None:
    chosen = records
    assert len(chosen) >= 20
    assert {r.arch_name for r in chosen} == set(ARCHES)
    assert {r.problem.precision.is_native for r in chosen} == {True, False}
    assert any(r.problem.shape is GROUPED_SHAPE for r in chosen)
    assert any(r.problem.coefficients["Wdilation"] > 1 for r in chosen)
    assert any(r.problem.coefficients["Wstride"] > r.problem.bounds["R"] for r in chosen)
    for r in chosen:  # the grouped constraints keep G out of every fan-out
        for level in r.mapping.levels:
            assert level.spatial.get("G", 1) == 1, r.name


NATIVE_BUILDS = builds_of("native")


@pytest.mark.skipif(not NATIVE_BUILDS, reason=f"{NO_TOOLS}; none is a bit-width build "
                    "(the authors' fork or a patched build)")
@pytest.mark.parametrize("label,binaries", NATIVE_BUILDS, ids=[b[0] for b in NATIVE_BUILDS])
def test_builtin_equals_the_fork_on_every_record(records: tuple[Record, ...], tmp_path: Path,
                                                 label: str, binaries: object) -> None:
    chosen = list(records)
    failures, worst = _compare(binaries, tmp_path, chosen)
    _report(label, chosen, failures, worst)
    assert not failures, "\n".join(failures[:20])


def _counts_like_the_fork(binaries: object, tmp: Path) -> bool:
    """Whether a stock build reproduces every golden record without bit widths."""
    model = cost_model(binaries, tmp / "golden")
    for record in (r for r in ALL_GOLDEN_RECORDS if not r["bitwidths"]):
        _, arch, problem, mapping = golden_case(record_id=record["record_id"])
        tables = (SHARED_DIR / "golden" / record["ert_ref"]).parent
        got = model.evaluate(arch, problem, mapping, tables)
        if differences(got, stats_from_results(record["results"]), rel=ENERGY_REL):
            return False
    return True


STOCK_BUILDS = builds_of("stock")


@pytest.mark.skipif(not STOCK_BUILDS, reason=f"{NO_TOOLS}; none is a stock build")
@pytest.mark.parametrize("label,binaries", STOCK_BUILDS, ids=[b[0] for b in STOCK_BUILDS])
def test_builtin_equals_a_stock_build_on_every_record_without_bit_widths(
        records: tuple[Record, ...], tmp_path: Path, label: str, binaries: object) -> None:
    if not _counts_like_the_fork(binaries, tmp_path):
        pytest.skip(f"{label} counts the golden records without bit widths differently from "
                    "the fork (a later release); the built-in engine reproduces the fork")
    chosen = [r for r in records if r.problem.precision.is_native]
    failures, worst = _compare(binaries, tmp_path, chosen)
    _report(label, chosen, failures, worst)
    assert not failures, "\n".join(failures[:20])


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=600)


@pytest.mark.parametrize("arch_name", ARCHES)
def test_map_and_evaluate_a_grouped_problem_file(tmp_path: Path, repo_root: Path,
                                                 arch_name: str) -> None:
    rendered = _run("wrapper.commands", "arch", "render", arch_name, "-o", str(tmp_path / "arch"),
                    cwd=repo_root)
    assert rendered.returncode == 0, rendered.stderr
    arch_files = sorted(str(p) for p in (tmp_path / "arch").rglob("*.yaml"))
    problem = Problem(GROUPED_SHAPE, {"G": 4, "C": 8, "M": 8, "R": 3, "S": 3, "N": 1, "P": 14,
                                      "Q": 14}, _coefficients((2, 2), (1, 1)),
                      Precision(inputs=8, weights=4, outputs=8))
    problem_file = dump_problem(problem, tmp_path / "grouped.yaml")
    shape = yaml.safe_load(problem_file.read_text())["problem"]["shape"]
    assert shape["name"] == "Grouped-CNN-Layer"
    mapper = tmp_path / "mapper.yaml"
    mapper.write_text("mapper:\n  optimization-metrics: [edp, energy]\n  budget: 2000\n")
    mapped = _run("wrapper.map", *arch_files, str(problem_file), str(mapper), "-o",
                  str(tmp_path / "out"), "--json", str(tmp_path / "map.json"), cwd=repo_root)
    assert mapped.returncode == 0, mapped.stderr
    assert "G follows N" in mapped.stderr  # the template's constraints were adapted
    mapping_file = tmp_path / "out" / "grouped.map.yaml"
    mapping = load_mapping(mapping_file)
    inputs = load_inputs([*arch_files, problem_file])
    assert build_mapspace(inputs.arch, inputs.problem).violations(mapping, strict=True) == []
    evaluated = _run("wrapper.evaluate", *arch_files, str(problem_file), str(mapping_file),
                     "--json", str(tmp_path / "eval.json"), cwd=repo_root)
    assert evaluated.returncode == 0, evaluated.stderr
    from_map = json.loads((tmp_path / "map.json").read_text())
    from_map.pop("certificate")
    assert from_map["valid"] and from_map == json.loads((tmp_path / "eval.json").read_text())
    assert from_map["macs"] == problem.macs


@pytest.mark.skipif(not NATIVE_BUILDS, reason=f"{NO_TOOLS}; none is a bit-width build "
                    "(the authors' fork or a patched build)")
@pytest.mark.parametrize("arch_name", ARCHES)
def test_timeloop_mapper_takes_the_grouped_constraints_and_the_builtin_mapper_matches_it(
        shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arch_name: str) -> None:
    """timeloop-mapper accepts the adapted constraint files (G pinned where N is), the built-in
    engine re-evaluates its best mapping exactly, and the built-in mapper's proven optimum is at
    least as good."""
    _, binaries = NATIVE_BUILDS[0]
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MODEL", str(binaries.model))
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MAPPER", str(binaries.mapper))
    monkeypatch.setenv("QUANTMAP_CACHE", str(tmp_path / "cache"))
    problem = Problem(GROUPED_SHAPE, {"G": 4, "C": 8, "M": 8, "R": 3, "S": 3, "N": 1, "P": 14,
                                      "Q": 14}, _coefficients((2, 2), (1, 1)),
                      Precision(inputs=8, weights=4, outputs=8))
    _, files = _render(arch_name, problem, tmp_path / "in")
    mapper = tmp_path / "in" / "mapper.yaml"
    mapper.write_text(yaml.safe_dump({"mapper": {"optimization-metrics": ["edp", "energy"],
                                                 "budget": 500}}))
    tables = [_table_dir(arch_name) / "ERT.yaml", _table_dir(arch_name) / "ART.yaml"]
    found = {engine: map_files([*files, mapper, *tables], tmp_path / engine, engine)
             for engine in ("timeloop", "builtin")}
    _, mapping, searched = found["timeloop"]
    assert searched.valid
    assert all(level.spatial.get("G", 1) == 1 for level in mapping.levels)
    model_files = [f for f in files if "constraints" not in f.parts] + tables
    again = evaluate_files([*model_files, found["timeloop"][0]], "builtin")
    assert differences(again, searched, rel=ENERGY_REL) == []
    best = found["builtin"][2]
    assert best.certificate is not None and best.certificate.optimal
    assert best.energy_pj * best.cycles <= searched.energy_pj * searched.cycles * (1 + 1e-9)


def test_g_follows_the_constraints_of_n() -> None:
    """Pinned to 1 where N is, placed just outside N (``split`` grows when N is on the X side);
    free where N is free; the dense shape is left as written."""
    written = {"architecture_constraints": {"targets": [
        {"target": "A", "type": "spatial", "permutation": "NPQR SCM", "split": 4,
         "factors": "N=1 P=1 Q=1 R=1 S=0"},
        {"target": "B", "type": "temporal", "permutation": ["R", "S", "C", "M", "N"],
         "factors": {"R": 1, "S": 1}},
        {"target": "C", "type": "spatial", "permutation": "MCN", "split": 1,
         "factors": ["N=1"]}]}}
    adapted = adapt_constraints_for_shape(written, GROUPED_SHAPE)["architecture_constraints"]
    assert adapted["targets"] == [
        {"target": "A", "type": "spatial", "permutation": "NGPQR SCM", "split": 5,
         "factors": "N=1 P=1 Q=1 R=1 S=0 G=1"},
        {"target": "B", "type": "temporal", "permutation": ["R", "S", "C", "M", "N", "G"],
         "factors": {"R": 1, "S": 1}},
        {"target": "C", "type": "spatial", "permutation": "MCNG", "split": 1,
         "factors": ["N=1", "G=1"]}]
    assert adapt_constraints_for_shape(written, CNN_LAYER_SHAPE) == written
