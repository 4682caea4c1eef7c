"""``quantmap qat`` as a real subprocess: train, finetune, eval, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _qat(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "wrapper.commands", "qat", *args], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def float_checkpoint(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qat_cli")
    done = _qat(repo_root, "train", "--width-mult", "0.25", "--epochs", "1",
                "--out", str(out / "f.pt"), "--json", str(out / "f.json"))
    assert done.returncode == 0, done.stderr
    assert "train mobilenet_v1" in done.stderr and "step/s" in done.stderr  # tqdm bar with rate
    report = json.loads((out / "f.json").read_text())
    assert report["model"] == {"name": "mobilenet_v1", "width_mult": 0.25, "num_classes": 10,
                               "relu6": None, "kwargs": {},
                               "state_dict": None, "skip_unsupported": False}
    assert len(report["epoch_seconds"]) == 1 and 0.0 <= report["top1"] <= 1.0
    return out / "f.pt"


def test_finetune_then_eval_reproduces_the_quantized_accuracy(repo_root: Path,
                                                              float_checkpoint: Path) -> None:
    quant = float_checkpoint.with_name("q.pt")
    done = _qat(repo_root, "finetune", "--float-checkpoint", str(float_checkpoint), "--bits",
                "i6w4o-", "--epochs", "1", "--lr", "0.01", "--out", str(quant), "--json", "-",
                "--no-progress")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["bits"] == [[6, 4]] * 28 and report["settings"]["epochs"] == 1
    check = _qat(repo_root, "eval", "--checkpoint", str(quant), "--json", "-", "--no-progress")
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["top1"] == report["top1"]


@pytest.mark.parametrize("args, text", [
    (["--bits", "i8w8o8", "i4w4o4"], "has 2 (A, W) pairs but the net has 28"),
    (["--bits", "i8w17o8"], "bits[0].W: layer 0: W = 17 bits is outside 1..16"),
    (["--bits", "i8w8o8", "--data", "imagenet", "--data-root", "/nonexistent/imgs"],
     "/nonexistent/imgs: data.root: data folder does not exist"),
])
def test_bad_bits_and_bad_data_give_one_line_and_exit_2(repo_root: Path, float_checkpoint: Path,
                                                       args: list[str], text: str) -> None:
    done = _qat(repo_root, "finetune", "--float-checkpoint", str(float_checkpoint), *args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], done.stderr


def test_finetune_defaults_are_the_explore_recipe_and_train_2_bit_weights(
        repo_root: Path, tmp_path: Path) -> None:
    # From a 10-epoch float checkpoint, W2/A8 with every default: the base rate 0.01 scaled by
    # the 2-bit factor (the float-training rate 0.1 times that factor diverges).
    done = _qat(repo_root, "train", "--width-mult", "0.25", "--epochs", "10", "--out",
                str(tmp_path / "f.pt"), "--no-progress")
    assert done.returncode == 0, done.stderr
    tune = _qat(repo_root, "finetune", "--float-checkpoint", str(tmp_path / "f.pt"), "--bits",
                "i8w2o8", "--json", "-", "--no-progress")
    assert tune.returncode == 0, tune.stderr
    report = json.loads(tune.stdout)
    settings = report["settings"]
    assert (settings["epochs"], settings["lr"], settings["scale_lr_by_bits"]) == (1, 0.01, True)
    assert report["top1"] >= 0.85
