"""Every malformed input of the corpus (tests/hostile_corpus.py) is refused by every CLI with one
line on stderr naming the right file, exit code 2, no traceback, and well within a wall-time cap.

The CLIs run through their ``main(argv)`` in a process forked from a multiprocessing fork server
that has already imported them (so a case costs milliseconds, and a hang inside C code, e.g.
comparing an expanded alias bomb, is still caught: the process is killed at the cap); a few run
as real subprocesses.
An accepted input counts as a failure: `evaluate` may instead report the mapping as
``valid: false``, which is how timeloop-model answers a mapping that does not fit.
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from cli_child import MODULES, run_cli
from conftest import REPO_ROOT
from hostile_corpus import Case, corpus

# A hang runs forever; the cap leaves room for importing torch on a loaded 2-core machine.
WALL_CAP_S = 60.0
CASES = corpus()


class Hang(Exception):
    """The wall-time cap ran out."""


def _write(case: Case, folder: Path) -> list[str]:
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    return [arg.replace("{d}", str(folder)) for arg in case.argv]


def _fork_server() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["cli_child", *MODULES.values()])
    return context


FORK_SERVER = _fork_server()


def _run_forked(argv: list[str], folder: Path) -> tuple[int, str, str]:
    out, err = folder / ".stdout", folder / ".stderr"
    child = FORK_SERVER.Process(target=run_cli, args=(argv, str(out), str(err)))
    child.start()
    child.join(WALL_CAP_S)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise Hang(" ".join(argv))
    return child.exitcode, out.read_text(), err.read_text()


def _run_subprocess(argv: list[str]) -> tuple[int, str, str]:
    try:
        proc = subprocess.run([sys.executable, "-m", MODULES[argv[0]], *argv[1:]], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=WALL_CAP_S + 30)
    except subprocess.TimeoutExpired:
        raise Hang(" ".join(argv)) from None
    return proc.returncode, proc.stdout, proc.stderr


def _refused_as_invalid_mapping(argv: list[str], code: int, out: str) -> bool:
    if argv[0] != "evaluate" or code != 0:
        return False
    try:
        return json.loads(out)["valid"] is False
    except (ValueError, KeyError):
        return False


def test_corpus_is_large_and_covers_every_cli() -> None:
    assert len(CASES) >= 300
    assert {case.argv[0] for case in CASES} == set(MODULES)
    assert sum(case.subprocess for case in CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_input_is_one_clear_line(case: Case, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    argv = _write(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    if case.subprocess:
        code, out, err = _run_subprocess(argv)
    else:
        code, out, err = _run_forked(argv, tmp_path)
    if _refused_as_invalid_mapping(argv, code, out):
        return
    assert code == 2, f"accepted (exit {code}): {err[-500:]}"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    assert case.names in lines[0], lines[0]
