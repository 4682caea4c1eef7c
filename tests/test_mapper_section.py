"""timeloop-mapper's own ``mapper:`` keys: honoured where they mean something for QuantMap's
mapper (optimization-metric(s) in lexicographic order, search-size), accepted with one note line
each where not, in the dashed (v0.3) and underscored (v0.4) spellings; QuantMap's keys stay."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_map_cli import _write_inputs
from test_mapper_golden import CASES

from wrapper.errors import ConfigError
from wrapper.spec.costmodel import MapperSettings, mapper_settings

# The v0.3 exercises' exhaustive mapper file, as users have it.
EXHAUSTIVE_V03 = """mapper:
  optimization-metric: [ delay, energy ]
  num-threads: 1
  algorithm: linear-pruned
  victory-condition: 0
  timeout: 0
"""
# The v0.4 spelling of the example designs' mapper file.
RANDOM_V04 = {"version": 0.4, "optimization_metrics": ["edp"], "live_status": False,
              "num_threads": 4, "timeout": 10000, "victory_condition": 100, "algorithm": "random",
              "diagnostics": False, "search_size": 500}


def test_v04_spelling_is_read_and_every_unused_key_noted() -> None:
    notes: list[str] = []
    settings = mapper_settings(RANDOM_V04, "mapper.yaml", notes=notes)
    assert settings == MapperSettings(metric="edp", max_evaluations=500)
    noted = {n.split("mapper.", 2)[2].split(" ")[0] for n in notes}
    assert noted == {"version", "live_status", "num_threads", "timeout", "victory_condition",
                     "algorithm", "diagnostics"}
    assert all(n.startswith("mapper.yaml: ") and "\n" not in n for n in notes)


def test_metrics_are_lexicographic_and_quantmap_keys_win() -> None:
    notes: list[str] = []
    settings = mapper_settings({"optimization-metrics": ["delay", "energy", "edp"],
                                "budget": 100}, None, notes=notes)
    assert (settings.metric, settings.secondary_metric, settings.max_evaluations) == (
        "delay", "energy", 100)
    assert len(notes) == 1 and "edp ignored" in notes[0]
    one = mapper_settings({"optimization-metric": "last-level-accesses", "metric": "energy"})
    assert one.metric == "energy"
    assert mapper_settings({"optimization-metric": "last-level-accesses"}).metric == (
        "last_level_accesses")


@pytest.mark.parametrize("section,field", [
    ({"optimization-metric": ["ordered-accesses"]}, "optimization-metric"),
    ({"optimization-metric": "edp", "optimization_metrics": ["edp"]}, "optimization_metrics"),
    ({"search-size": -1}, "search-size"),
])
def test_bad_timeloop_keys_are_one_clear_error(section: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        mapper_settings(section, "m.yaml")
    assert f"mapper.{field}" in info.value.field and info.value.file == "m.yaml"


def test_the_exercises_exhaustive_mapper_file_maps(shared_dir, tmp_path, repo_root) -> None:
    inputs, constraints = _write_inputs(CASES[0], shared_dir, tmp_path, EXHAUSTIVE_V03)
    proc = subprocess.run([sys.executable, "-m", "wrapper.map",
                           *map(str, inputs + constraints + [tmp_path / "mapper.yaml"]),
                           "-o", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=repo_root, timeout=300)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "mapper.yaml: mapper." in line]
    assert len(notes) == 4 and all(line.startswith("note: ") for line in notes)
    assert "for delay" in proc.stderr  # the certificate names the metric honoured
