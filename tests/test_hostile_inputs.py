"""Every malformed input of the corpus (tests/hostile_corpus.py) is refused by every CLI with one
line on stderr naming the right file, exit code 2, no traceback, and well within a wall-time cap.

The CLIs run through their ``main(argv)`` in a forked copy of the test process (modules already
imported, so a case costs milliseconds, and a hang inside C code, e.g. comparing an expanded
alias bomb, is still caught: the copy is killed at the cap); a few run as real subprocesses.
An accepted input counts as a failure: `evaluate` may instead report the mapping as
``valid: false``, which is how timeloop-model answers a mapping that does not fit.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from hostile_corpus import Case, corpus

# A hang runs forever; the cap leaves room for importing torch on a loaded 2-core machine.
WALL_CAP_S = 60.0
ACCEPTED_EXIT = 99  # the explore CLI accepted its config and would start the search
MODULES = {"evaluate": "wrapper.evaluate", "map": "wrapper.map", "mapping": "wrapper.mapping",
           "arch": "wrapper.arch", "workload": "wrapper.workload", "qat": "wrapper.qat.__main__",
           "explore": "wrapper.explore.__main__", "report": "wrapper.report"}
CASES = corpus()


class Hang(Exception):
    """The wall-time cap ran out."""


def _write(case: Case, folder: Path) -> list[str]:
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    return [arg.replace("{d}", str(folder)) for arg in case.argv]


def _child(module: object, argv: list[str], out: Path, err: Path) -> None:
    """Run one CLI in the forked copy; never returns."""
    code = 98
    try:
        sys.stdout, sys.stderr = open(out, "w"), open(err, "w")
        if argv[0] == "explore":
            def accept(*args: object, **kwargs: object) -> None:
                os._exit(ACCEPTED_EXIT)
            module.run_experiment = accept  # type: ignore[attr-defined]
        code = module.main(argv[1:])  # type: ignore[attr-defined]
    except BaseException:  # a crash must show up as a traceback, as it would on a terminal
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 97)


def _run_forked(argv: list[str], folder: Path) -> tuple[int, str, str]:
    module = importlib.import_module(MODULES[argv[0]])
    out, err = folder / ".stdout", folder / ".stderr"
    pid = os.fork()
    if pid == 0:
        _child(module, argv, out, err)
    deadline = time.monotonic() + WALL_CAP_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise Hang(" ".join(argv))
        time.sleep(0.005)
    return os.waitstatus_to_exitcode(status), out.read_text(), err.read_text()


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
