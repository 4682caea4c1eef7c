"""Timeloop-style input files: depthwise problems with constraint files that name M."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from conftest import GOLDEN_DW_RECORDS, GOLDEN_RECORDS, REPO_ROOT

from wrapper.spec.inputs import load_inputs


def _write_depthwise_job(folder: Path) -> list[str]:
    """Golden Eyeriss spec with its original (M-naming) constraints + a real depthwise problem."""
    dense = next(r for r in GOLDEN_RECORDS if r["arch"] == "eyeriss")
    depthwise = next(r for r in GOLDEN_DW_RECORDS if r["arch"] == "eyeriss")
    files = {"arch.yaml": dense["arch_yaml"], "problem.yaml": depthwise["problem_yaml"],
             **dense["components_yaml"], **dense["constraints_yaml"]}
    for name, text in files.items():
        (folder / name).write_text(text)
    return [str(folder / name) for name in files]


def test_depthwise_problem_gets_adapted_constraints(tmp_path, shared_dir):
    inputs = load_inputs(_write_depthwise_job(tmp_path))
    assert inputs.notes and "Depthwise" in inputs.notes[0]
    named = {d for c in inputs.arch.constraints for d in (*c.factors, *(c.permutation or ""))}
    assert "M" not in named
    glb = [c for c in inputs.arch.constraints if c.target == "shared_glb" and c.type == "spatial"]
    expected = yaml.safe_load((shared_dir / "golden_dw" / "constraints" / "eyeriss"
                               / "eyeriss_like_arch_constraints_dw.yaml").read_text())
    want = next(t for t in expected["architecture_constraints"]["targets"]
                if t["target"] == "shared_glb" and t["type"] == "spatial")
    assert glb[0].split == want["split"]


def test_map_cli_runs_a_depthwise_layer_with_dense_constraint_files(tmp_path, shared_dir):
    paths = _write_depthwise_job(tmp_path)
    result = subprocess.run([sys.executable, "-m", "wrapper.map", *paths, "-o", str(tmp_path / "out"),
                             "--json", str(tmp_path / "stats.json")], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "constraints adapted" in result.stderr
    assert (tmp_path / "out" / "problem.map.yaml").exists()
