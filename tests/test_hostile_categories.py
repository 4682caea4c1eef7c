"""One test per kind of hostile input: the bounded loader, typed fields, strict mapping checks,
constraints honoured or refused, duplicate keys, bad numbers, the file an error names, and the
permissions of output files. The corpus (test_hostile_inputs.py) covers the breadth; these pin
the behaviour and the wording users rely on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from hostile_corpus import ARCH, CONSTRAINTS, MAPPER, MAPPING, PROBLEM

from wrapper.commands import check_mapping as mapping
from wrapper.commands import evaluate
from wrapper.commands import map as map_cli
from wrapper.errors import SpecError
from wrapper.spec import yamlio
from wrapper.spec.yamlio import load_yaml_file, parse_yaml_text, write_text_atomic


def _files(folder: Path, **changed: object) -> dict[str, str]:
    """Write the corpus's small valid specs (some replaced) and return their paths."""
    data = {"arch": ARCH, "problem": PROBLEM, "mapping": MAPPING, "constraints": CONSTRAINTS,
            "mapper": MAPPER, **changed}
    paths = {}
    for name, content in data.items():
        path = folder / f"{name}.yaml"
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        paths[name] = str(path)
    return paths


def _error_line(capsys: pytest.CaptureFixture, code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


# ---- the loader ----------------------------------------------------------------------------
def test_alias_bomb_is_refused_before_expansion() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 40)]
    with pytest.raises(SpecError, match="aliases expand to more than"):
        parse_yaml_text("\n".join(lines), "bomb.yaml")


def test_small_aliases_and_merge_keys_still_work() -> None:
    data = parse_yaml_text("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nlist: [*b, *b]\n")
    assert data["use"] == {"x": 1, "y": 3} and data["list"] == [{"x": 1, "y": 2}] * 2


@pytest.mark.parametrize("text, needle", [
    ("a: &r [*r]\n", "cycle"),
    ("a: " + "[" * 500 + "]" * 500, "nesting deeper"),
    ("M: 100\nM: 50\n", "given twice"),
    ("x:\n  word-bits: 16\n  word-bits: 8\n", "given twice"),
])
def test_loader_refuses(text: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as info:
        parse_yaml_text(text, "in.yaml")
    assert info.value.file == "in.yaml" and "line" in info.value.problem


def test_binary_and_oversized_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: \xe9t\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="not UTF-8 text"):
        load_yaml_file(path)
    monkeypatch.setattr(yamlio, "MAX_FILE_BYTES", 10)
    path.write_text("a: 1\n" * 10)
    with pytest.raises(SpecError, match="larger than"):
        load_yaml_file(path)
    with pytest.raises(SpecError, match="is a folder"):
        load_yaml_file(tmp_path)


# ---- typed fields and bad numbers ----------------------------------------------------------
_RF = ARCH["architecture"]["subtree"][0]["subtree"][0]["subtree"][0]


def _arch_with(**attributes: object) -> dict:
    arch = yaml.safe_load(yaml.safe_dump(ARCH))
    arch["architecture"]["subtree"][0]["subtree"][0]["local"][0]["attributes"].update(attributes)
    return arch


@pytest.mark.parametrize("attributes, needle", [
    ({"word-bits": float("inf")}, "not a finite number"),
    ({"word-bits": 16.5}, "not a whole number"),
    ({"block-size": 2.5}, "not a whole number"),
    ({"width": 60}, "not a multiple of the 16-bit word"),
    ({"depth": "abc"}, "not a number"),
    ({"word-bits": 10 ** 30}, "outside"),
])
def test_arch_numbers_are_typed(tmp_path: Path, capsys: pytest.CaptureFixture,
                                attributes: dict, needle: str) -> None:
    paths = _files(tmp_path, arch=_arch_with(**attributes))
    line = _error_line(capsys, evaluate.main([paths["arch"], paths["problem"], paths["mapping"]]))
    assert needle in line and "arch.yaml" in line and "GLB" in line


def test_empty_instance_range_and_zero_mesh(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arch = yaml.safe_load(yaml.safe_dump(ARCH))
    pe = arch["architecture"]["subtree"][0]["subtree"][0]["subtree"][0]
    pe["name"] = "PE[1..0]"
    paths = _files(tmp_path, arch=arch)
    assert "[1..0]" in _error_line(capsys, evaluate.main(list(paths.values())[:3]))
    pe["name"], pe["local"][0]["attributes"]["meshX"] = "PE[0..3]", 0
    paths = _files(tmp_path, arch=arch)
    assert "meshX" in _error_line(capsys, evaluate.main(list(paths.values())[:3]))


def test_empty_ert_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = _files(tmp_path, ert="")
    line = _error_line(capsys, evaluate.main([paths["arch"], paths["problem"], paths["mapping"],
                                              paths["ert"]]))
    assert "ert.yaml" in line and "empty" in line


# ---- mappings as strict as Timeloop's ------------------------------------------------------
def test_mapping_that_stores_nothing_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bypassing = yaml.safe_load(yaml.safe_dump(MAPPING))
    for entry in bypassing["mapping"][:3]:
        entry["keep"], entry["bypass"] = [], ["Weights", "Inputs", "Outputs"]
    paths = _files(tmp_path, mapping=bypassing)
    files = [paths["arch"], paths["problem"], paths["mapping"]]
    assert evaluate.main(files) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["valid"] is False and "does not keep" in stats["reason"]
    assert "mapping.yaml" in _error_line(capsys, mapping.main([*files]))


def test_mapping_check_counts_capacity(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    arch = yaml.safe_load(yaml.safe_dump(ARCH))
    arch["architecture"]["subtree"][0]["subtree"][0]["subtree"][0]["local"][0][
        "attributes"]["depth"] = 2
    paths = _files(tmp_path, arch=arch)
    line = _error_line(capsys, mapping.main([paths["arch"], paths["problem"],
                                             paths["mapping"]]))
    assert "capacity exceeded at level RF" in line


# ---- constraints honoured or refused -------------------------------------------------------
def _map(paths: dict[str, str], out: Path) -> int:
    return map_cli.main([paths["arch"], paths["problem"], paths["constraints"], paths["mapper"],
                         "-o", str(out)])


def _factors(path: Path, target: str, kind: str) -> dict[str, int]:
    for entry in yaml.safe_load(path.read_text())["mapping"]:
        if entry["target"] == target and entry["type"] == kind:
            return {t[0]: int(t[1:]) for t in entry["factors"].split()}
    raise AssertionError(f"no {kind} entry for {target}")


def test_maxima_and_utilization_are_honoured(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    constraints = {"mapspace_constraints": {"targets": [
        {"target": "GLB", "type": "utilization", "min": 1.0},
        {"target": "RF", "type": "temporal", "factors": "M<=2 C<=1 Q<=2"}]}}
    paths = _files(tmp_path, constraints=constraints)
    assert _map(paths, tmp_path / "out") == 0, capsys.readouterr().err
    found = tmp_path / "out" / "problem.map.yaml"
    rf = _factors(found, "RF", "temporal")
    assert rf["M"] <= 2 and rf["C"] == 1 and rf["Q"] <= 2
    spatial = _factors(found, "GLB", "spatial")
    assert spatial["C"] * spatial["M"] * spatial["P"] * spatial["Q"] == 4


@pytest.mark.parametrize("targets, needles", [
    ([{"target": "GLB", "type": "spatial", "factors": "M=4 C=4 P=4"}], ["no mapping satisfies"]),
    ([{"target": "GLB", "type": "parallelism", "min": 5}], ["no mapping satisfies", "min"]),
    ([{"target": "RF", "type": "temporal", "factors": "K=4"}], ["K", "constraints.yaml"]),
    ([{"target": "RF", "type": "bypass", "keep": ["Inputs"], "bypass": ["Inputs"]}],
     ["both kept and bypassed", "constraints.yaml"]),
    ([{"target": "RF", "type": "temporal", "factors": "R=3", "min": 1}], ["no meaning"]),
    ([{"target": "RF", "type": "temporal", "factors": "R=3 R=1"}], ["given twice"]),
])
def test_impossible_or_meaningless_constraints_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, targets: list, needles: list) -> None:
    paths = _files(tmp_path, constraints={"mapspace_constraints": {"targets": targets}})
    line = _error_line(capsys, _map(paths, tmp_path / "out"))
    assert all(n in line for n in needles), line


def test_contradiction_between_files_names_both(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = {"architecture_constraints": {"targets": [
        {"target": "RF", "type": "temporal", "factors": "R=1"}]}}
    paths = _files(tmp_path, other=other)
    code = map_cli.main([paths["arch"], paths["problem"], paths["constraints"], paths["other"],
                         paths["mapper"], "-o", str(tmp_path / "out")])
    line = _error_line(capsys, code)
    assert "no mapping satisfies" in line and "other.yaml" in line and "constraints.yaml" in line


def test_released_factor_gets_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    constraints = {"mapspace_constraints": {"targets": [
        {"target": "RF", "type": "temporal", "factors": "R=2"}]}}
    paths = _files(tmp_path, constraints=constraints)
    assert _map(paths, tmp_path / "out") == 0
    assert "note: RF (temporal): R=2 does not divide R = 3" in capsys.readouterr().err


# ---- the file an error names ---------------------------------------------------------------
def test_problem_bits_error_names_the_problem_file(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    problem = yaml.safe_load(yaml.safe_dump(PROBLEM))
    problem["problem"]["instance"]["bitwidths"] = {"Weights": 33}
    paths = _files(tmp_path, problem=problem)
    assert "problem.yaml" in _error_line(capsys, _map(paths, tmp_path / "out"))


def test_template_parameter_error_names_the_experiment_file(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from wrapper.commands import explore as explore_cli

    config = tmp_path / "exp.yaml"
    config.write_text("arch: {template: eyeriss, params: {glb_width: 60}}\n")
    line = _error_line(capsys, explore_cli.main(["--config", str(config), "-o",
                                                 str(tmp_path / "run")]))
    assert "exp.yaml" in line and "width 60" in line


# ---- outputs -------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        path = write_text_atomic("x\n", tmp_path / "sub" / "out.txt")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == mode


def test_blocked_output_paths(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    paths = _files(tmp_path)
    line = _error_line(capsys, _map(paths, blocker / "sub"))
    assert "is a file" in line and str(blocker) in line
