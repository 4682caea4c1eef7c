"""Real energies from real Accelergy, and an experiment on the real tools end to end.

Always run: the v0.4 rendering Accelergy gets and the placeholder check on stored summaries.
With real Accelergy (its with_pclib profile: plug-ins plus primitive component library) the ERT
of the default Eyeriss and Simba renders equals ../shared/golden/ert_real on every action, and
the placeholder warning fires on a spec Accelergy cannot estimate. With a native Timeloop build
too, a small ``python -m wrapper.explore --set engine.name=timeloop`` run is re-checked layer by
layer against timeloop-model and the built-in engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from realtools import NO_TOOLS, accelergy, builds_of
from test_timeloop_integration import differences

from wrapper.engine.costmodel import BuiltinCostModel
from wrapper.explore.config import load_config
from wrapper.explore.experiment import Experiment
from wrapper.spec.templates import render_arch
from wrapper.spec.yamlio import load_specs
from wrapper.timeloop.accelergy_inputs import accelergy_v04_text, placeholder_components
from wrapper.timeloop.costmodel import TimeloopCostModel
from wrapper.timeloop.energy_tables import AccelergyCache, as_energy_table

ACCELERGY = accelergy()
needs_accelergy = pytest.mark.skipif(
    ACCELERGY is None or os.environ.get("REAL_TOOLS_ACCELERGY_PROFILE", "with_pclib")
    != "with_pclib", reason="no Accelergy with plug-ins and primitive component library on PATH "
                            "(or $QUANTMAP_ACCELERGY)")


def rendered_spec(template: str, folder: Path) -> dict[str, Any]:
    """The merged spec of a template's default render, written to ``folder`` as users get it."""
    paths = []
    for rel, text in render_arch(template).items():
        paths.append(folder / template / rel)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(text)
    return load_specs(paths)[0]


def test_accelergy_gets_v04_with_quoted_literals_and_a_cycle_time(tmp_path: Path) -> None:
    text = accelergy_v04_text(rendered_spec("eyeriss", tmp_path))
    data = yaml.safe_load(text)
    assert data["architecture"]["version"] == 0.4 == data["compound_components"]["version"]
    root = data["architecture"]["subtree"][0]
    assert root["attributes"]["global_cycle_seconds"] == 1e-9
    assert 'technology: "45nm"' in text and 'type: "LPDDR4"' in text
    assert "width: log(memory_depth)" in text and "technology: technology" in text, \
        "expressions stay unquoted"
    assert "data_delta: 0..1" in text


def test_placeholder_check_names_the_dummy_priced_components(shared_dir: Path) -> None:
    summary = yaml.safe_load((shared_dir / "golden" / "ert" / "eyeriss" /
                              "timeloop-mapper.ERT_summary.yaml").read_text())
    names = placeholder_components(summary)
    assert "system.eyeriss.PE[0..167].ifmap_spad" in names and "system.DRAM" not in names
    real = yaml.safe_load((shared_dir / "golden" / "ert_real" / "eyeriss" /
                           "ERT_summary.yaml").read_text())
    assert placeholder_components(real) == []


def _actions(path: Path) -> dict[tuple[str, str, str], float]:
    tables = yaml.safe_load(path.read_text())["ERT"]["tables"]
    return {(t["name"], a["name"], json.dumps(a.get("arguments"), sort_keys=True)): a["energy"]
            for t in tables for a in t["actions"]}


@needs_accelergy
@pytest.mark.parametrize("template", ["eyeriss", "simba"])
def test_accelergy_tables_of_the_default_renders_equal_ert_real(shared_dir: Path, tmp_path: Path,
                                                                template: str) -> None:
    spec = rendered_spec(template, tmp_path)
    tables = AccelergyCache(ACCELERGY, tmp_path / "cache").tables_for(spec)
    want = _actions(shared_dir / "golden" / "ert_real" / template / "ERT.yaml")
    assert _actions(tables.ert) == want
    assert not any(note.startswith("warning") for note in tables.notes)


@needs_accelergy
def test_the_placeholder_warning_names_what_accelergy_cannot_estimate(tmp_path: Path) -> None:
    spec = rendered_spec("eyeriss", tmp_path)
    glb = spec["architecture"]["subtree"][0]["subtree"][0]["local"][0]
    glb["attributes"]["technology"] = -1  # no plug-in estimates this node: placeholder table
    tables = AccelergyCache(ACCELERGY, tmp_path / "cache").tables_for(spec)
    warnings = [n for n in tables.notes if n.startswith("warning")]
    assert len(warnings) == 1 and "shared_glb" in warnings[0] and "ifmap_spad" not in warnings[0]


NATIVE = builds_of("native")
HW_ONLY = ["engine.name=timeloop", "search.objectives=[energy,latency,memory]",
           "search.parents=2", "search.offspring=2", "search.generations=1",
           "search.bits=[4,8]", "mapper.max_evaluations=200", "data.resolution=16",
           "executor.workers=2"]


@needs_accelergy
@pytest.mark.skipif(not NATIVE, reason=NO_TOOLS)
def test_explore_on_the_real_tools_matches_timeloop_model_and_the_builtin_engine(
        tmp_path: Path, repo_root: Path) -> None:
    _, binaries = NATIVE[0]
    env = {**os.environ, "QUANTMAP_TIMELOOP_MODEL": str(binaries.model),
           "QUANTMAP_TIMELOOP_MAPPER": str(binaries.mapper), "QUANTMAP_ACCELERGY": str(ACCELERGY),
           "QUANTMAP_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    args = [sys.executable, "-m", "wrapper.explore", "-o", str(out)]
    for item in HW_ONLY:
        args += ["--set", item]
    done = subprocess.run(args, cwd=repo_root, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Accelergy had no estimate" not in done.stderr, done.stderr[-3000:]

    cache = tmp_path / "cache" / "quantmap"  # what the run used: the same tables, no new run
    model = TimeloopCostModel(binaries, mode="native", work_root=tmp_path / "work",
                              cache_dir=cache)
    accelergy_cache = AccelergyCache(ACCELERGY, cache / "accelergy")
    worst = 0.0
    checked = 0
    with Experiment(load_config(out / "config.yaml"), out) as experiment:
        for point in json.loads((out / "pareto.json").read_text())["points"]:
            genome = tuple(tuple(pair) for pair in point["bits"])
            jobs = experiment.hardware.jobs(genome)
            for job, result in zip(jobs, experiment.hardware.layer_results(genome), strict=True):
                assert result is not None and result.stats.valid, job.layer
                real = model.evaluate(job.arch, job.problem, result.mapping)
                assert not differences(real, result.stats), (job.layer, differences(real,
                                                                                    result.stats))
                builtin = BuiltinCostModel().evaluate(job.arch, job.problem, result.mapping)
                assert builtin.cycles == real.cycles
                worst = max(worst, abs(builtin.energy_pj / real.energy_pj - 1))
                tables = as_energy_table(accelergy_cache.tables_for(job.arch.spec))
                same_table = BuiltinCostModel(tables)
                assert not differences(same_table.evaluate(job.arch, job.problem, result.mapping),
                                       real, 1e-7, abs_pj=0.1)
                checked += 1
    print(f"\n{checked} layer results; built-in energy model vs real Accelergy: worst relative difference {worst:.2e}")
    assert checked and worst <= 1e-3
