"""Experiment configs: YAML + --set overrides, and one-line errors before any work starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wrapper.errors import ConfigError
from wrapper.explore.config import config_from_dict, load_config, save_config

BAD_CONFIGS = {
    "unknown objective": ({"search.objectives": ["accuracy", "energyy"]}, "energyy",
                          "did you mean 'energy'"),
    "unknown arch": ({"arch.template": "eyeris"}, "eyeris", "did you mean 'eyeriss'"),
    "unknown model": ({"model.name": "mobilenet_v3"}, "mobilenet_v3", "valid models"),
    "bit outside range": ({"search.bits": [2, 4, 17]}, "17", "1 to 16"),
    "missing data folder": ({"data.kind": "cifar10", "data.root": "/no/such/folder"},
                            "/no/such/folder", "data.root"),
    "unknown key": ({"search.generation": 3}, "generation", "did you mean 'generations'"),
    "wrong type": ({"search.parents": "ten"}, "ten", "search.parents"),
}


def test_default_experiment_is_valid_and_small() -> None:
    config = load_config()
    assert config.search.objectives == ("accuracy", "energy", "memory")
    assert config.search.bits == (2, 3, 4, 5, 6, 7, 8)
    assert config.search.last_outputs_bits == 8
    assert config.data.kind == "digits" and config.arch.template == "eyeriss"
    assert config.engine.name == "builtin"


def test_yaml_file_then_overrides_and_the_saved_config_reloads_equal(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("seed: 3\nsearch:\n  objectives: [accuracy, energy, latency, memory]\n"
                    "  generations: 9\narch:\n  template: simba\n")
    config = load_config(path, {"search.generations": 2, "qat.epochs": 3})
    assert config.seed == 3 and config.arch.template == "simba"
    assert config.search.objectives == ("accuracy", "energy", "latency", "memory")
    assert config.search.generations == 2 and config.qat.epochs == 3
    save_config(config, tmp_path / "used.yaml")
    assert load_config(tmp_path / "used.yaml") == config


def test_run_identity_ignores_budget_length_but_not_the_search_itself() -> None:
    base = load_config()
    assert load_config(None, {"search.generations": 50}).run_id() == base.run_id()
    assert load_config(None, {"executor.workers": 1}).run_id() == base.run_id()
    assert load_config(None, {"seed": 1}).run_id() != base.run_id()
    assert load_config(None, {"search.bits": [2, 4, 8]}).run_id() != base.run_id()


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_gives_a_one_line_error_naming_the_problem(case: str) -> None:
    overrides, culprit, hint = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as info:
        config_from_dict({}, "exp.yaml", overrides)
    message = str(info.value)
    assert "\n" not in message
    assert culprit in message and hint in message, message


def test_cli_rejects_a_bad_config_before_any_work(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "wrapper.explore", "-o", str(out),
         "--set", "search.objectives=[accuracy,energyy]"],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "energyy" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()  # nothing trained, mapped or written


def test_cli_rejects_bits_wider_than_the_arch_words_before_any_work(tmp_path: Path,
                                                                   repo_root: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "wrapper.explore", "-o", str(out), "--set",
         "arch.params={glb_word_bits: 8, dram_word_bits: 8, ifmap_spad_word_bits: 8, "
         "weights_spad_word_bits: 8, psum_spad_word_bits: 8, dummy_word_bits: 8}",
         "--set", "search.bits=[4,12]"],
        cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "12" in lines[0] and "8-bit words" in lines[0], proc.stderr
    assert not (out / "store.sqlite").exists()
