"""Bad spec input gives one clear line (file, field, fix) and exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GOLDEN_RECORDS, REPO_ROOT

if not GOLDEN_RECORDS:
    pytest.skip("../shared (golden data) is not present", allow_module_level=True)
RECORD = next(r for r in GOLDEN_RECORDS if r["record_id"] == "eyeriss__mbv1_L3__none__m0")


def _write_case(tmp_path: Path, arch: str | None = None, problem: str | None = None,
                mapping: str | None = None) -> list[str]:
    files = {"arch.yaml": arch or RECORD["arch_yaml"], "problem.yaml": problem or RECORD["problem_yaml"],
             "mapping.yaml": mapping or RECORD["mapping_yaml"]}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return [str(tmp_path / name) for name in files]


def _check(paths: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrapper.commands", "check-mapping", *paths], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def _assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_valid_golden_case_passes(tmp_path):
    result = _check(_write_case(tmp_path))
    assert result.returncode == 0, result.stderr


def test_malformed_yaml_names_file_and_line(tmp_path):
    paths = _write_case(tmp_path, mapping="mapping:\n  - target: psum_spad\n   type: [temporal\n")
    _assert_one_line_error(_check(paths), "mapping.yaml", "line", "fix")


def test_unknown_level_suggests_closest(tmp_path):
    text = RECORD["mapping_yaml"].replace("target: psum_spad", "target: psum_spd")
    _assert_one_line_error(_check(_write_case(tmp_path, mapping=text)), "psum_spd", "psum_spad")


def test_unknown_dataspace_suggests_closest(tmp_path):
    text = RECORD["mapping_yaml"].replace("- Outputs", "- Output", 1)
    _assert_one_line_error(_check(_write_case(tmp_path, mapping=text)), "Output", "Outputs")


def test_unknown_dimension_suggests_closest(tmp_path):
    text = RECORD["problem_yaml"].replace("    C: ", "    Cc: ", 1)
    _assert_one_line_error(_check(_write_case(tmp_path, problem=text)), "problem.yaml", "Cc", "'C'")


def test_unknown_dimension_in_mapping_factors(tmp_path):
    text = RECORD["mapping_yaml"].replace("factors: C1 M4", "factors: C1 X4", 1)
    _assert_one_line_error(_check(_write_case(tmp_path, mapping=text)), "X", "dimension")


def test_factors_that_do_not_multiply_to_the_dims(tmp_path):
    text = RECORD["mapping_yaml"].replace("factors: C8 M1", "factors: C4 M1", 1)
    assert text != RECORD["mapping_yaml"]
    _assert_one_line_error(_check(_write_case(tmp_path, mapping=text)), "C", "multiply")


def test_bit_width_wider_than_word(tmp_path):
    text = RECORD["problem_yaml"].replace("    Hstride: 1\n", "    Hstride: 1\n    bitwidths: {Inputs: 8, Weights: 17, Outputs: 8}\n")
    _assert_one_line_error(_check(_write_case(tmp_path, problem=text)), "Weights", "17", "16")


def test_bit_width_zero(tmp_path):
    text = RECORD["problem_yaml"].replace("    Hstride: 1\n", "    Hstride: 1\n    bitwidths: {Inputs: 0}\n")
    _assert_one_line_error(_check(_write_case(tmp_path, problem=text)), "Inputs", "> 0")


def test_missing_key(tmp_path):
    text = RECORD["problem_yaml"].replace("  instance:", "  instanse:")
    _assert_one_line_error(_check(_write_case(tmp_path, problem=text)), "problem.instance", "missing")


def test_missing_arch_file(tmp_path):
    paths = _write_case(tmp_path)
    _assert_one_line_error(_check(paths[1:]), "architecture")
