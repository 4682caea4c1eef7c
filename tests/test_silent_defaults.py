"""Defaults of the v0.3 spec layer that change numbers: a one-line note (file and field) where
Timeloop applies them silently, an error where Timeloop fails. Real files, real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from conftest import GOLDEN_RECORDS, REPO_ROOT

RECORD = GOLDEN_RECORDS[0]


def _drop_word_bits(nodes: list, level: str) -> None:
    for node in nodes or []:
        for leaf in node.get("local") or []:
            if leaf["name"].split("[")[0] == level:
                leaf["attributes"].pop("word-bits", None)
        _drop_word_bits(node.get("subtree"), level)


def _files(folder: Path, arch: dict, problem: dict) -> list[str]:
    texts = {"arch.yaml": yaml.safe_dump(arch), "prob.yaml": yaml.safe_dump(problem),
             "map.yaml": RECORD["mapping_yaml"],
             **{f"comp_{k}": v for k, v in RECORD["components_yaml"].items()}}
    for name, text in texts.items():
        (folder / name).write_text(text)
    return [str(folder / name) for name in texts]


def _evaluate(files: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrapper.evaluate", *files], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_level_without_word_bits_gets_timeloops_16_with_a_note(tmp_path: Path,
                                                                  shared_dir: Path) -> None:
    arch = yaml.safe_load(RECORD["arch_yaml"])
    problem = yaml.safe_load(RECORD["problem_yaml"])
    plain = _evaluate(_files(tmp_path, arch, problem))
    _drop_word_bits(arch["architecture"]["subtree"], "shared_glb")
    noted = _evaluate(_files(tmp_path, arch, problem))
    assert plain.returncode == noted.returncode == 0, noted.stderr
    notes = [line for line in noted.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "arch.yaml" in notes[0] and "(shared_glb).attributes.word-bits" \
        in notes[0] and "16 bits assumed" in notes[0]
    assert noted.stdout == plain.stdout  # the record's 16-bit words: the same numbers


def test_a_dimension_without_a_bound_is_an_error_as_in_timeloop(tmp_path: Path,
                                                                 shared_dir: Path) -> None:
    problem = yaml.safe_load(RECORD["problem_yaml"])
    del problem["problem"]["instance"]["N"]
    done = _evaluate(_files(tmp_path, yaml.safe_load(RECORD["arch_yaml"]), problem))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "prob.yaml" in lines[0] and "problem.instance" in lines[0]
    assert "dimension N" in lines[0] and "N: 1" in lines[0]
