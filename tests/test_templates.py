"""Architecture templates: default renders are the golden reference specs, parameters are real
(they reproduce the golden_var variants), depthwise constraints match golden_dw, bad parameters
give one clear error, and the CLI writes specs that parse."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from wrapper.errors import SpecError
from wrapper.spec.arch import load_arch
from wrapper.spec.constraints import adapt_constraints_for_shape
from wrapper.spec.problem import CNN_LAYER_SHAPE, DEPTHWISE_SHAPE
from wrapper.spec.templates import (
    TEMPLATES_DIR,
    available_templates,
    default_parameters,
    render_arch,
    write_arch,
)

VARIANT_PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "eyeriss_16x16": ("eyeriss", {"pe_rows": 16, "pe_cols": 16, "glb_depth": 16384, "glb_banks": 32}),
    "eyeriss_w8": ("eyeriss", {
        "dram_block_size": 8, "dram_word_bits": 8, "glb_block_size": 8, "glb_word_bits": 8,
        "dummy_depth": 32, "dummy_width": 8, "dummy_word_bits": 8,
        "ifmap_spad_depth": 24, "ifmap_spad_width": 8, "ifmap_spad_word_bits": 8,
        "weights_spad_depth": 448, "weights_spad_width": 8, "weights_spad_word_bits": 8,
        "psum_spad_depth": 48, "psum_spad_width": 8, "psum_spad_word_bits": 8, "mac_width": 8}),
    "simba_8pe": ("simba", {"pe_cols": 8, "weight_buffer_depth": 512}),
}


def _golden_reference(shared_dir: Path, arch: str) -> dict[str, Any]:
    with (shared_dir / "golden" / "cases.jsonl").open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["arch"] == arch:
                return record
    raise AssertionError(f"no golden record for {arch}")


def _trees(files: dict[str, str]) -> dict[str, Any]:
    """{base file name: parsed YAML}; the arch file is keyed 'architecture'."""
    out = {}
    for name, text in files.items():
        data = yaml.safe_load(text)
        out["architecture" if "architecture" in data else Path(name).name] = data
    return out


def _write_texts(texts: dict[str, str], folder: Path) -> list[Path]:
    paths = []
    for name, text in texts.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def _assert_same_arch(ours: list[Path], theirs: list[Path]) -> None:
    """Structural comparison through the spec layer: levels, MAC, constraints."""
    a, b = load_arch(*ours), load_arch(*theirs)
    assert a.levels == b.levels
    assert a.arithmetic == b.arithmetic
    assert a.constraints == b.constraints
    for level in a.levels:
        assert a.fanout(level.name) == b.fanout(level.name), level.name


@pytest.mark.parametrize("arch", ["eyeriss", "simba"])
def test_default_render_is_the_golden_reference_spec(shared_dir: Path, tmp_path: Path, arch: str) -> None:
    record = _golden_reference(shared_dir, arch)
    rendered = render_arch(arch)
    ours = _trees(rendered)
    assert ours["architecture"] == yaml.safe_load(record["arch_yaml"])
    golden_files = {**record["components_yaml"], **record["constraints_yaml"]}
    assert set(ours) - {"architecture"} == set(golden_files)
    for name, text in golden_files.items():
        assert ours[name] == yaml.safe_load(text), name
    theirs = _write_texts({"arch.yaml": record["arch_yaml"], **golden_files}, tmp_path / "golden")
    _assert_same_arch(write_arch(arch, None, tmp_path / "ours"), theirs)


@pytest.mark.parametrize("variant", sorted(VARIANT_PARAMS))
def test_parameters_reproduce_golden_variants(shared_dir: Path, tmp_path: Path, variant: str) -> None:
    template, params = VARIANT_PARAMS[variant]
    folder = shared_dir / "golden_var" / "specs" / variant
    ours = _trees(render_arch(template, params))
    assert ours["architecture"] == yaml.safe_load((folder / f"{variant}.yaml").read_text())
    golden_files = sorted((folder / "components").glob("*.yaml")) + sorted(
        (folder / "constraints").glob("*.yaml"))
    assert set(ours) - {"architecture"} == {p.name for p in golden_files}
    for path in golden_files:
        assert ours[path.name] == yaml.safe_load(path.read_text()), path.name
    _assert_same_arch(write_arch(template, params, tmp_path), [folder / f"{variant}.yaml", *golden_files])


@pytest.mark.parametrize("arch", ["eyeriss", "simba"])
def test_depthwise_render_matches_golden_dw_constraints(shared_dir: Path, arch: str) -> None:
    rendered = render_arch(arch, problem_shape=DEPTHWISE_SHAPE)
    golden = shared_dir / "golden_dw" / "constraints" / arch
    for path in sorted(golden.glob("*_dw.yaml")):
        ours = rendered[f"constraints/{path.name.replace('_dw.yaml', '.yaml')}"]
        assert yaml.safe_load(ours) == yaml.safe_load(path.read_text()), path.name
    for name, text in rendered.items():
        if name.startswith("constraints/"):
            assert "M" not in "".join(str(t.get("permutation", "")) + str(t.get("factors", ""))
                                      for section in yaml.safe_load(text).values()
                                      for t in section["targets"]), name


@pytest.mark.parametrize("arch", ["eyeriss", "simba"])
def test_adapt_constraints_on_golden_files(shared_dir: Path, arch: str) -> None:
    record = _golden_reference(shared_dir, arch)
    golden = shared_dir / "golden_dw" / "constraints" / arch
    for name, text in record["constraints_yaml"].items():
        original = yaml.safe_load(text)
        adapted = adapt_constraints_for_shape(original, DEPTHWISE_SHAPE)
        expected = yaml.safe_load((golden / name.replace(".yaml", "_dw.yaml")).read_text())
        assert adapted == expected, name
        assert original == yaml.safe_load(text), "the input must not be modified"
        assert adapt_constraints_for_shape(original, CNN_LAYER_SHAPE) == original


def test_cnn_shape_render_is_unchanged() -> None:
    assert render_arch("simba", problem_shape=CNN_LAYER_SHAPE) == render_arch("simba")


def test_every_parameter_is_documented_in_the_template_header() -> None:
    for name in available_templates():
        header = (TEMPLATES_DIR / f"{name}.yaml.j2").read_text().split("-#}")[0]
        for key in default_parameters(name):
            assert re.search(rf"^\s+{key}\s", header, re.M), f"{name}: {key} undocumented"


def test_unknown_parameter_suggests_the_closest() -> None:
    with pytest.raises(SpecError) as err:
        render_arch("eyeriss", {"pe_rowz": 16})
    assert "pe_rowz" in str(err.value) and "did you mean 'pe_rows'" in str(err.value)


@pytest.mark.parametrize("params, words", [
    ({"pe_rows": "16"}, "is not a number"),
    ({"pe_rows": 0}, "outside >= 1"),
    ({"pe_rows": 2.5}, "not a whole number"),
    ({"glb_depth": True}, "is not a number"),
    ({"glb_read_bandwidth": -1}, "outside > 0"),
    ({"glb_read_bandwidth": float("nan")}, "not a finite number"),
    ({"technology": 45}, "is not text"),
    ({"technology": "45"}, "process node"),
    ({"dram_type": "LPDDR5"}, "unknown value 'LPDDR5'"),
])
def test_wrong_parameter_values_are_refused(params: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError) as err:
        render_arch("eyeriss", params)
    assert words in str(err.value)
    assert err.value.field == f"parameters.{next(iter(params))}"


def test_optional_parameters_appear_only_when_given() -> None:
    assert "read_bandwidth" not in render_arch("simba")["simba.yaml"]
    text = render_arch("simba", {"glb_read_bandwidth": 32})["simba.yaml"]
    assert yaml.safe_load(text)["architecture"]["subtree"][0]["subtree"][0]["local"][0][
        "attributes"]["read_bandwidth"] == 32


def test_unknown_template_suggests_the_closest() -> None:
    with pytest.raises(SpecError) as err:
        render_arch("eyris")
    assert "did you mean 'eyeriss'" in str(err.value)


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("module", ["wrapper.commands"])
def test_cli_render_writes_a_spec_that_parses(repo_root: Path, tmp_path: Path, module: str) -> None:
    result = _run(module, "arch", "render", "eyeriss", "--set", "pe_rows=16", "-o", str(tmp_path), cwd=repo_root)
    assert result.returncode == 0, result.stderr
    written = [Path(line) for line in result.stdout.split()]
    assert {p.relative_to(tmp_path).as_posix() for p in written} == set(render_arch("eyeriss"))
    arch = load_arch(*written)
    assert arch.arithmetic.instances == 16 * 14
    assert arch.fanout("DummyBuffer") == (1, 16)


def test_cli_render_depthwise_shape(repo_root: Path, tmp_path: Path) -> None:
    result = _run("wrapper.commands", "arch", "render", "simba", "--shape", "depthwise", "-o",
                  str(tmp_path), cwd=repo_root)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "constraints" / "simba_like_map_constraints.yaml").read_text()
    assert "C=4" in text and "M=" not in text


@pytest.mark.parametrize("setting, words", [("pe_rowz=16", "did you mean 'pe_rows'"),
                                            ("pe_rows=abc", "is not a number"),
                                            ("pe_rows", "key=value")])
def test_cli_bad_set_gives_one_line_and_exit_2(repo_root: Path, tmp_path: Path, setting: str,
                                               words: str) -> None:
    result = _run("wrapper.commands", "arch", "render", "eyeriss", "--set", setting, "-o",
                  str(tmp_path), cwd=repo_root)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())
