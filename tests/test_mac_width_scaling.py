"""One MAC-energy default: operand-width MAC scaling is the switch ``--mac-width-scaling`` /
``engine.mac_width_scaling``, off by default in every command and both engines, and reported in
the stats JSON.

Without tools: the built-in engine's MAC is the unit's own energy unless the switch is on, and
the CLI reports the setting. With real Accelergy (plug-ins and primitive library) and a Timeloop
build: on the shipped Eyeriss and Simba renders without an ERT (MobileNetV1 layer 3 at i8w4o8, a
mapping the built-in mapper finds), ``wrapper.evaluate`` built-in and ``--engine timeloop`` agree
within 0.1 % in total energy; with the switch on, the real tools' MAC gets cheaper too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from realtools import NO_TOOLS, accelergy, builds_of

from wrapper.backends import evaluate_files
from wrapper.engine import BuiltinCostModel
from wrapper.explore.config import EngineConfig
from wrapper.spec.arch import arch_from_dict
from wrapper.spec.costmodel import EngineSettings, MapperSettings
from wrapper.spec.mapping import dump_mapping
from wrapper.spec.precision import Precision
from wrapper.spec.problem import CNN_LAYER_SHAPE, Problem, dump_problem
from wrapper.spec.templates import render_arch
from wrapper.spec.yamlio import load_specs

ACCELERGY = accelergy()
FORK_BUILDS = builds_of(accounting="fork")
HAVE_TOOLS = (ACCELERGY is not None and bool(FORK_BUILDS)
              and os.environ.get("REAL_TOOLS_ACCELERGY_PROFILE", "with_pclib") == "with_pclib")
# MobileNetV1 layer 3 (pointwise, 32 -> 64 channels at 112 x 112) at i8w4o8.
LAYER = Problem(CNN_LAYER_SHAPE, {"C": 32, "M": 64, "R": 1, "S": 1, "N": 1, "P": 112, "Q": 112},
                dict(CNN_LAYER_SHAPE.coefficients), precision=Precision(8, 4, 8))


def _render(template: str, folder: Path) -> tuple[list[Path], object]:
    """The rendered template (without constraint files) as files, and its Arch."""
    paths = []
    for rel, text in render_arch(template).items():
        if rel.startswith("constraints/"):
            continue
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    data, _ = load_specs(paths)
    return paths, arch_from_dict(data, template)


def _inputs(template: str, folder: Path) -> list[Path]:
    """The rendered template, the layer's problem and a built-in mapping, as files."""
    paths, arch = _render(template, folder)
    mapping, _ = BuiltinCostModel().find_mapping(
        arch, LAYER, MapperSettings(metric="edp", max_evaluations=300, exact=False))
    problem = dump_problem(LAYER, folder / "problem.yaml")
    return [*paths, problem, dump_mapping(mapping, folder / "mapping.yaml")]


def test_builtin_mac_is_unscaled_unless_asked(tmp_path: Path) -> None:
    _, arch = _render("eyeriss", tmp_path)
    mac = arch.arithmetic.name
    plain = BuiltinCostModel().table_for(arch, LAYER).action(mac, "compute")
    native = BuiltinCostModel().table_for(arch, LAYER.with_precision(Precision()))
    scaled = BuiltinCostModel(mac_width_scaling=True).table_for(arch, LAYER)
    assert plain == native.action(mac, "compute")
    assert scaled.action(mac, "compute") < plain
    assert EngineConfig().cost_model_options()["mac_width_scaling"] is False


def test_cli_reports_the_setting(tmp_path: Path) -> None:
    files = _inputs("eyeriss", tmp_path)
    energies = {}
    for flag in ((), ("--mac-width-scaling",)):
        proc = subprocess.run([sys.executable, "-m", "wrapper.evaluate", *map(str, files),
                               *flag], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["mac_width_scaling"] is bool(flag) and data["timeloop_version"] == "fork"
        energies[bool(flag)] = data["mac_energy_pj"]
    assert energies[True] < energies[False]


@pytest.mark.skipif(not HAVE_TOOLS, reason=f"needs real Accelergy (with_pclib) and {NO_TOOLS}")
@pytest.mark.parametrize("template", ["eyeriss", "simba"])
def test_builtin_and_real_tools_agree_without_an_ert(template: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTMAP_CACHE", str(tmp_path / "cache"))
    bin_dir = FORK_BUILDS[0][1].model.parent
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MODEL", str(bin_dir / "timeloop-model"))
    monkeypatch.setenv("QUANTMAP_TIMELOOP_MAPPER", str(bin_dir / "timeloop-mapper"))
    files = _inputs(template, tmp_path)
    builtin = evaluate_files(files, "builtin")
    real = evaluate_files(files, "timeloop")
    assert abs(builtin.energy_pj / real.energy_pj - 1) <= 1e-3, (builtin.energy_pj, real.energy_pj)
    scaled = evaluate_files(files, "timeloop", EngineSettings(mac_width_scaling=True))
    assert scaled.mac_energy_pj < real.mac_energy_pj and scaled.mac_width_scaling is True
