"""The Timeloop patch series in patches/ (per-dataspace bit widths, packed words).

Always run: the patch files are well-formed (subject, message saying why, a diff; the same series
for both bases) and apply.sh tells the bases apart. Run against a patched build when
$QUANTMAP_TIMELOOP_PATCHED_DIR names its install prefix (bin/timeloop-model, bin/timeloop-mapper;
build.sh records the base in BASE): golden records reproduce the fork (base 4a74d71) or differ
from an unpatched build of the same version exactly by packing (base v3.0.3, with the unpatched
prefix in $QUANTMAP_TIMELOOP_UNPATCHED_DIR), bit widths wider than a word or <= 0 stop both tools
with a clear error, and the project's probe calls the build native. Nothing is built here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import ALL_GOLDEN_RECORDS, REPO_ROOT, SHARED_DIR

PATCHES = REPO_ROOT / "patches"
BASES = ("4a74d71", "v3.0.3")
PATCHED_ENV, UNPATCHED_ENV = "QUANTMAP_TIMELOOP_PATCHED_DIR", "QUANTMAP_TIMELOOP_UNPATCHED_DIR"
# Every 12th golden record: both architectures, every bit setting, mapper and cross evaluations.
SAMPLE = ALL_GOLDEN_RECORDS[::12]


def series(base: str) -> list[Path]:
    """The patch files of one base, in application order."""
    return sorted((PATCHES / base).glob("*.patch"))


def patch_message(path: Path) -> tuple[str, str]:
    """(subject, body) of a git format-patch file; the body is the text before the diffstat."""
    text = path.read_text()
    header, _, rest = text.partition("\n\n")
    subject = re.search(r"^Subject: (?:\[PATCH[^\]]*\] )?(.+(?:\n .+)*)", header, re.M)
    assert subject, f"{path.name}: no Subject header"
    body = rest.split("\n---\n", 1)[0]
    return " ".join(subject.group(1).split()), body.strip()


@pytest.mark.parametrize("base", BASES)
def test_patch_files_are_well_formed(base: str) -> None:
    patches = series(base)
    assert patches, f"no patches for {base}"
    for number, path in enumerate(patches, start=1):
        assert path.name.startswith(f"{number:04d}-"), path.name
        text = path.read_text()
        assert text.startswith("From ") and "\nFrom: " in text, f"{path.name}: not git format-patch"
        subject, body = patch_message(path)
        assert len(subject) > 10 and len(body.split()) >= 20, f"{path.name}: say why in the message"
        assert re.search(r"^diff --git a/\S+ b/\S+$", text, re.M), f"{path.name}: no diff"
        assert not re.search(r"/(opt|work|home)/", text), f"{path.name}: machine path"


def test_both_bases_carry_the_same_series() -> None:
    subjects = {base: [patch_message(p)[0] for p in series(base)] for base in BASES}
    assert subjects["4a74d71"] == subjects["v3.0.3"]


def _fake_tree(root: Path, v3: bool) -> Path:
    for name in ("src/model/buffer.cpp", "include/workload/workload.hpp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    if v3:
        (root / "src/mapspaces").mkdir(parents=True, exist_ok=True)
        (root / "src/mapspaces/ruby.cpp").write_text("")
    return root


def _apply(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(PATCHES / "apply.sh"), *args], capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.mark.parametrize("v3, base", [(False, "4a74d71"), (True, "v3.0.3")])
def test_apply_detects_the_base_by_content(tmp_path: Path, v3: bool, base: str) -> None:
    done = _apply("--detect", str(_fake_tree(tmp_path, v3)))
    assert done.returncode == 0 and done.stdout.strip() == base, done.stderr


def test_apply_refuses_a_tree_it_does_not_fit(tmp_path: Path) -> None:
    assert "not a Timeloop source tree" in _apply(str(tmp_path)).stderr
    tree = _fake_tree(tmp_path, v3=True)
    done = _apply(str(tree))
    assert done.returncode != 0 and "does not apply" in done.stderr
    assert (tree / "src/model/buffer.cpp").read_text() == "", "nothing is changed"


# ---- against a patched build ------------------------------------------------------------------

def _prefix(env: str) -> Path | None:
    value = os.environ.get(env)
    if not value:
        return None
    prefix = Path(value)
    if not (prefix / "bin" / "timeloop-model").is_file():
        raise pytest.UsageError(f"${env}={value}: no bin/timeloop-model there; give a PREFIX "
                                f"that patches/build.sh installed into")
    return prefix


PATCHED = _prefix(PATCHED_ENV)
needs_build = pytest.mark.skipif(PATCHED is None, reason=f"no patched Timeloop build: set "
                                 f"${PATCHED_ENV} to a PREFIX from patches/build.sh")


def _base() -> str:
    assert PATCHED is not None
    marker = PATCHED / "BASE"
    if not marker.is_file():
        pytest.skip(f"{marker} missing: build with patches/build.sh, which records the base")
    return marker.read_text().strip()


@pytest.fixture(scope="module")
def verify() -> ModuleType:
    """patches/verify.py, the driver that reruns golden records (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("patch_verify", PATCHES / "verify.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _folder(record: dict[str, Any]) -> Path:
    return SHARED_DIR / ("golden_dw" if "problem_shape" in record else "golden")


@needs_build
@pytest.mark.parametrize("record", SAMPLE, ids=lambda r: r["record_id"])
def test_patched_build_reproduces_golden_records(record: dict[str, Any], verify: ModuleType
                                                 ) -> None:
    assert PATCHED is not None
    model = PATCHED / "bin" / "timeloop-model"
    if _base() == "4a74d71":
        outcome = verify.check_fork(model, record, _folder(record))
    else:
        unpatched = _prefix(UNPATCHED_ENV)
        if unpatched is None:
            pytest.skip(f"base {_base()}: compare with an unpatched build of the same version, "
                        f"set ${UNPATCHED_ENV}")
        outcome = verify.check_packing(model, unpatched / "bin" / "timeloop-model", record,
                                       _folder(record))
    assert outcome.status == "identical", outcome.reasons


def _invalid_width_inputs(tmp_path: Path, widths: dict[str, int]) -> list[str]:
    """Model and mapper inputs of a golden Eyeriss case (16-bit words) with the given widths."""
    record = next(r for r in ALL_GOLDEN_RECORDS if r["case_id"] == "eyeriss__mbv1_L3__none")
    problem = yaml.safe_load(record["problem_yaml"])
    problem["problem"]["instance"]["bitwidths"] = widths
    mapper = {"mapper": {"algorithm": "linear-pruned", "victory-condition": 10, "timeout": 100,
                         "live-status": False}}
    return _write_record_inputs(tmp_path, record, problem, {"mapper.yaml": yaml.safe_dump(mapper)})


def _write_record_inputs(tmp_path: Path, record: dict[str, Any], problem: dict[str, Any],
                         extra: dict[str, str]) -> list[str]:
    """Write a golden record's arch, mapping, tables and components with ``problem`` (and the
    ``extra`` files) into ``tmp_path``; the sorted file names, as the tools take them."""
    files = {"arch.yaml": record["arch_yaml"], "map.yaml": record["mapping_yaml"],
             "prob.yaml": yaml.safe_dump(problem), **extra}
    for ref in (record["ert_ref"], record["art_ref"]):
        files[Path(ref).name] = (SHARED_DIR / "golden" / ref).read_text()
    files.update({f"comp_{k}": v for k, v in record["components_yaml"].items()})
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return sorted(files)


@needs_build
@pytest.mark.parametrize("widths, message", [
    ({"Inputs": 8, "Weights": 17, "Outputs": 8}, "Weights bit width 17 exceeds the 16-bit word"),
    ({"Inputs": 8, "Weights": 8, "Outputs": 32}, "Outputs bit width 32 exceeds the 16-bit word"),
    ({"Inputs": 0, "Weights": 8, "Outputs": 8}, "bitwidths.Inputs = 0 is not a valid bit width"),
    ({"Inputs": 8, "Weights": -4, "Outputs": 8}, "bitwidths.Weights = -4 is not a valid bit"),
])
@pytest.mark.parametrize("tool", ["timeloop-model", "timeloop-mapper"])
def test_invalid_bit_widths_stop_both_tools(tmp_path: Path, shared_dir: Path, tool: str,
                                            widths: dict[str, int], message: str) -> None:
    assert PATCHED is not None
    files = _invalid_width_inputs(tmp_path, widths)
    drop = "map.yaml" if tool == "timeloop-mapper" else "mapper.yaml"
    done = subprocess.run([str(PATCHED / "bin" / tool), *(f for f in files if f != drop)],
                          cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert "Fix:" in done.stdout + done.stderr
    assert not (tmp_path / f"{tool}.stats.txt").exists()


@needs_build
def test_probe_calls_the_patched_build_native(tmp_path: Path) -> None:
    from wrapper.timeloop.probe import NATIVE, probe_mode
    from wrapper.timeloop.runner import WorkDirs

    if shutil.which("accelergy") is None:
        pytest.skip("the probe's architecture has no energy table, so timeloop-model runs "
                    "Accelergy: put accelergy on PATH")
    assert PATCHED is not None
    assert probe_mode(PATCHED / "bin" / "timeloop-model", WorkDirs(tmp_path)) == NATIVE


# ---- the fork's other spellings of the bit widths ----------------------------------------------

def _spelled_inputs(tmp_path: Path, instance_widths: dict[str, Any]) -> list[str]:
    """timeloop-model inputs of a golden Eyeriss i8w8o8 record, its widths given as
    ``instance_widths`` (keys of the problem instance)."""
    record = next(r for r in ALL_GOLDEN_RECORDS if r["case_id"] == "eyeriss__mbv1_L3__i8w8o8")
    problem = yaml.safe_load(record["problem_yaml"])
    instance = problem["problem"]["instance"]
    instance.pop("bitwidths", None)
    instance.update(instance_widths)
    return _write_record_inputs(tmp_path, record, problem, {})


WIDTHS = {"Inputs": 8, "Weights": 8, "Outputs": 8}
SPELLINGS = [{"bitwidths": WIDTHS}, {"datawidths": WIDTHS}, {"wordwidths": WIDTHS},
             {"commonBitwidth": 8}, {"commonDatawidth": 8}, {"commonWordwidth": 8}]
TWO_SETTINGS = [({"commonBitwidth": 8, "bitwidths": WIDTHS}, "both commonBitwidth and bitwidths"),
                ({"bitwidths": WIDTHS, "datawidths": WIDTHS}, "both bitwidths and datawidths")]


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda s: next(iter(s)))
def test_quantmap_reads_every_spelling_of_the_fork(spelling: dict[str, Any]) -> None:
    from wrapper.spec.precision import Precision
    from wrapper.spec.problem import CNN_LAYER_SHAPE, problem_from_dict, shape_to_dict

    bounds = dict.fromkeys(CNN_LAYER_SHAPE.dimensions, 1)
    problem = {"shape": shape_to_dict(CNN_LAYER_SHAPE), "instance": {**bounds, **spelling}}
    assert problem_from_dict(problem).precision == Precision(8, 8, 8)


@pytest.mark.parametrize("instance, message", TWO_SETTINGS)
def test_quantmap_refuses_two_width_settings(instance: dict[str, Any], message: str) -> None:
    from wrapper.errors import SpecError
    from wrapper.spec.problem import CNN_LAYER_SHAPE, problem_from_dict, shape_to_dict

    with pytest.raises(SpecError, match=message):
        problem_from_dict({"shape": shape_to_dict(CNN_LAYER_SHAPE),
                           "instance": {**dict.fromkeys(CNN_LAYER_SHAPE.dimensions, 1),
                                        **instance}}, "prob.yaml")


def _model_run(tmp_path: Path, instance_widths: dict[str, Any]) -> subprocess.CompletedProcess:
    assert PATCHED is not None
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = _spelled_inputs(tmp_path, instance_widths)
    return subprocess.run([str(PATCHED / "bin" / "timeloop-model"), *files], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=120)


@needs_build
def test_patched_build_reads_every_spelling_of_the_fork(tmp_path: Path) -> None:
    """Each spelling gives the same packed stats as ``bitwidths:`` (which equal the fork's)."""
    reference = None
    for i, spelling in enumerate(SPELLINGS):
        done = _model_run(tmp_path / str(i), spelling)
        assert done.returncode == 0, done.stdout + done.stderr
        stats = (tmp_path / str(i) / "timeloop-model.stats.txt").read_text()
        summary = stats[stats.index("Summary Stats"):]
        reference = reference or summary
        assert summary == reference, next(iter(spelling))


@needs_build
@pytest.mark.parametrize("instance, message", TWO_SETTINGS)
def test_patched_build_refuses_two_width_settings(tmp_path: Path, instance: dict[str, Any],
                                                  message: str) -> None:
    done = _model_run(tmp_path, instance)
    assert done.returncode != 0 and message in done.stdout + done.stderr
    assert "Fix:" in done.stdout + done.stderr
