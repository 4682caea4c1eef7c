"""The ``quantmap`` front door as a user meets it: the console script pyproject declares is
``wrapper.commands.main:main``; ``--help`` lists every verb and works, exit 0, on every verb and
sub-verb; the ``python -m`` spellings the design card names still run."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from wrapper.commands.main import VERBS

EXPECTED = ["explore", "evaluate", "map", "check-mapping", "arch", "workload", "qat", "final",
            "figures"]
SUB_VERBS = [["arch", "render"], ["arch", "show"], ["arch", "params"], ["qat", "train"],
             ["qat", "finetune"], ["qat", "eval"]]


def _quantmap(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the console script's entry function, as the installed ``quantmap`` does."""
    code = "import sys; from wrapper.commands.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=repo, capture_output=True,
                          text=True, timeout=300)


def test_pyproject_names_the_entry_function(repo_root: Path) -> None:
    scripts = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"quantmap": "wrapper.commands.main:main"}


def test_help_lists_every_verb(repo_root: Path) -> None:
    result = _quantmap(repo_root, "--help")
    assert result.returncode == 0, result.stderr
    assert list(VERBS) == EXPECTED
    listed = [line.split()[0] for line in result.stdout.split("verbs:")[1].splitlines()
              if line.startswith("  ")]
    assert listed == EXPECTED


@pytest.mark.parametrize("argv", [[verb] for verb in EXPECTED] + SUB_VERBS,
                         ids=" ".join)
def test_every_verb_answers_help(repo_root: Path, argv: list[str]) -> None:
    result = _quantmap(repo_root, *argv, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: quantmap {' '.join(argv)}")


@pytest.mark.parametrize("argv", [[], ["nope"]], ids=["no verb", "unknown verb"])
def test_a_missing_or_unknown_verb_is_one_line(repo_root: Path, argv: list[str]) -> None:
    result = _quantmap(repo_root, *argv)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "quantmap --help" in result.stderr


@pytest.mark.parametrize("module", ["wrapper.explore", "wrapper.evaluate", "wrapper.map",
                                    "wrapper.commands"])
def test_the_python_m_spellings_run(repo_root: Path, module: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=repo_root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ")
