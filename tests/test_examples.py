"""The shipped example (examples/eyeriss-layer) and the stats comparison the container check uses."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from realtools import NO_TOOLS, builds_of

EXAMPLE = REPO_ROOT / "examples" / "eyeriss-layer"
FILES = [EXAMPLE / name for name in ("arch.yaml", "components/smartbuffer_RF.yaml",
                                     "components/smartbuffer_SRAM.yaml", "problem.yaml",
                                     "mapping.yaml", "ERT.yaml", "ART.yaml")]
NATIVE_BUILDS = builds_of("native")

# A script, not a module of the package: loaded from its file.
_SPEC = importlib.util.spec_from_file_location("compare_stats", REPO_ROOT / "scripts" / "compare_stats.py")
compare_stats = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(compare_stats)


def _evaluate(out: Path, *options: str, env: dict[str, str] | None = None) -> dict:
    # Relative paths from another folder: the real tool runs in its own work folder.
    proc = subprocess.run([sys.executable, "-m", "wrapper.evaluate", *options,
                           *(str(p.relative_to(REPO_ROOT)) for p in FILES), "--json", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_example_evaluates_with_the_builtin_engine(tmp_path: Path) -> None:
    stats = _evaluate(tmp_path / "builtin.json")
    assert stats["valid"] and stats["macs"] == 8 * 16 * 16 * 16 and stats["cycles"] == 512
    assert round(stats["energy_pj"] / 1e6, 3) == 0.575  # the figure examples/eyeriss-layer/README.md gives


@pytest.mark.skipif(not NATIVE_BUILDS, reason=f"{NO_TOOLS}; none is a bit-width build")
def test_example_is_equal_on_the_real_timeloop(tmp_path: Path) -> None:
    _, binaries = NATIVE_BUILDS[0]
    env = {**os.environ, "QUANTMAP_TIMELOOP_MODEL": str(binaries.model),
           "QUANTMAP_TIMELOOP_MAPPER": str(binaries.mapper), "QUANTMAP_CACHE": str(tmp_path / "cache")}
    builtin = _evaluate(tmp_path / "builtin.json")
    real = _evaluate(tmp_path / "timeloop.json", "--engine", "timeloop", env=env)
    assert list(compare_stats.differences(builtin, real)) == []


def test_compare_stats_allows_print_precision_only() -> None:
    a = {"cycles": 512, "energy_pj": 575291.166464, "levels": [{"name": "DRAM", "reads": 10}]}
    assert list(compare_stats.differences(a, {**a, "energy_pj": 575291.17})) == []
    assert compare_stats.differences(a, {**a, "cycles": 513}).__next__().startswith("cycles")
    changed = {**a, "levels": [{"name": "DRAM", "reads": 11}]}
    assert list(compare_stats.differences(a, changed)) == ["levels.0.reads: 10 != 11"]
    assert list(compare_stats.differences(a, {**a, "energy_pj": 575300.0})) != []
