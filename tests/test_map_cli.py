"""`python -m wrapper.map` as a timeloop-mapper drop-in: real files in, mapping YAML and stats
JSON out; the mapping re-evaluates identically through `python -m wrapper.evaluate`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from test_mapper_golden import CASES

from wrapper.engine.constraints import build_mapspace
from wrapper.spec.mapping import load_mapping


def _write_inputs(case, shared_dir, folder, mapper_text):
    record = case.records[0]
    files = {"arch.yaml": record["arch_yaml"], "prob.yaml": record["problem_yaml"],
             "mapper.yaml": mapper_text}
    files.update({f"comp_{name}": text for name, text in record["components_yaml"].items()})
    constraints = {f"cons_{name}": text for name, text in record["constraints_yaml"].items()}
    for name, text in {**files, **constraints}.items():
        (folder / name).write_text(text)
    for ref in (record["ert_ref"], record["art_ref"]):
        shutil.copy(shared_dir / "golden" / ref, folder / ref.split("/")[-1])
    model_inputs = [folder / n for n in files if n != "mapper.yaml"]
    model_inputs += [folder / r.split("/")[-1] for r in (record["ert_ref"], record["art_ref"])]
    return model_inputs, [folder / n for n in constraints]


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=300)


@pytest.mark.parametrize("case_id", ["eyeriss__mbv1_L2_dw__i4w4o8", "simba__mbv1_L28__i8w2o8"])
def test_map_then_evaluate_gives_identical_stats(case_id, shared_dir, tmp_path, repo_root):
    case = next(c for c in CASES if c.case_id == case_id)
    inputs, constraints = _write_inputs(
        case, shared_dir, tmp_path,
        "mapper:\n  optimization-metrics: [edp, energy]\n  algorithm: random-pruned\n"
        "  budget: 4000\n  seed: 1\n")
    out = tmp_path / "out"
    mapped = _run("wrapper.map", *map(str, inputs + constraints + [tmp_path / "mapper.yaml"]),
                  "-o", str(out), "--json", str(tmp_path / "map.json"), cwd=repo_root)
    assert mapped.returncode == 0, mapped.stderr
    mapping_file = out / "prob.map.yaml"
    mapping = load_mapping(mapping_file)
    assert build_mapspace(case.arch, case.problem).violations(mapping, strict=True) == []
    evaluated = _run("wrapper.evaluate", *map(str, inputs + [mapping_file]),
                     "--json", str(tmp_path / "eval.json"), cwd=repo_root)
    assert evaluated.returncode == 0, evaluated.stderr
    from_map = json.loads((tmp_path / "map.json").read_text())
    certificate = from_map.pop("certificate")
    assert certificate["optimal"] and certificate["gap"] == 0 and certificate["metric"] == "edp"
    assert certificate["value"] == from_map["energy_pj"] * from_map["cycles"]
    assert mapping_file.read_text().startswith("# optimal for edp")
    assert from_map["valid"] and from_map == json.loads((tmp_path / "eval.json").read_text())


def test_bad_mapper_key_is_one_line_exit_2(shared_dir, tmp_path, repo_root):
    inputs, constraints = _write_inputs(CASES[0], shared_dir, tmp_path, "mapper:\n  metrik: edp\n")
    result = _run("wrapper.map", *map(str, inputs + constraints + [tmp_path / "mapper.yaml"]),
                  "-o", str(tmp_path / "out"), cwd=repo_root)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "metrik" in result.stderr and "metric" in result.stderr
