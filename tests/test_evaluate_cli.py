"""`python -m wrapper.evaluate` as a subprocess on real golden inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import GOLDEN_RECORDS, REPO_ROOT


def _write_inputs(record: dict, folder: Path, problem_text: str | None = None) -> list[Path]:
    files = {"arch.yaml": record["arch_yaml"], "problem.yaml": problem_text or record["problem_yaml"],
             "mapping.yaml": record["mapping_yaml"], **record["components_yaml"]}
    for name, text in files.items():
        (folder / name).write_text(text)
    return [folder / name for name in files]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrapper.evaluate", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_reproduces_golden_record(tmp_path: Path, shared_dir: Path) -> None:
    record = GOLDEN_RECORDS[0]
    ert = shared_dir / "golden" / record["ert_ref"]
    art = shared_dir / "golden" / record["art_ref"]
    out = tmp_path / "out.json"
    proc = _run(*_write_inputs(record, tmp_path), ert, art, "--json", out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["valid"] and data["cycles"] == record["results"]["summary"]["cycles"]
    expected = record["results"]["summary"]["energy_pJ_sum_of_components"]
    assert abs(data["energy_pj"] - expected) <= 1e-3 * expected
    assert [lv["name"] for lv in data["levels"]] == [s["name"] for s in record["results"]["storage"]]
    assert "cycles" in proc.stderr


def test_cli_invalid_mapping_is_a_result(tmp_path: Path, shared_dir: Path) -> None:
    record = GOLDEN_RECORDS[0]
    problem = yaml.safe_load(record["problem_yaml"])
    problem["problem"]["instance"]["bitwidths"] = {"Inputs": 17, "Weights": 8, "Outputs": 8}
    proc = _run(*_write_inputs(record, tmp_path, yaml.safe_dump(problem)))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["valid"] is False and "Inputs" in data["reason"] and "b = 17" in data["reason"]


def test_cli_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("architecture: [unclosed\n")
    for args in ([tmp_path / "missing.yaml"], [broken]):
        proc = _run(*args)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_timeloop_engine_without_binaries_is_one_clear_error(tmp_path: Path,
                                                             shared_dir: Path) -> None:
    record = GOLDEN_RECORDS[0]
    env = {"PATH": str(tmp_path), "QUANTMAP_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "wrapper.evaluate", "--engine", "timeloop",
                           *map(str, _write_inputs(record, tmp_path))], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "timeloop-model not found" in proc.stderr and "QUANTMAP_TIMELOOP_MODEL" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
