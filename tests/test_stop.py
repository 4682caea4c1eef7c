"""Stopping ``quantmap explore`` with SIGTERM or Ctrl-C (SIGINT) stops everything it started:
its pool workers and every real-tool process group. Every descendant seen while the run works is
recorded from /proc; after the signal none of them may survive, the run says how to resume, and
the resumed run finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from realtools import NO_TOOLS, builds_of

HW_ONLY = ["search.objectives=[energy,latency,memory]", "search.parents=6", "search.offspring=6",
           "search.generations=6", "mapper.max_evaluations=200", "data.resolution=16",
           "executor.workers=2", "seed=3"]
REAL = builds_of("native")


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (Linux /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            found[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return found


def _descendants(pid: int) -> set[int]:
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _explore(repo: Path, out: Path, sets: list[str], *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "wrapper.commands", "explore", "-o", str(out), *extra]
    for item in sets:
        args += ["--set", item]
    return subprocess.Popen(args, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=_as_from_a_terminal)


def _as_from_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a shell that runs the tests as a background job starts
    them with SIGINT ignored, which every child would inherit (and Python keeps ignoring)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop_and_check(repo: Path, out: Path, sets: list[str], signum: int,
                    wanted: str) -> None:
    proc = _explore(repo, out, sets)
    seen: dict[int, str] = {}
    deadline = time.monotonic() + 300
    while not any(wanted in cmd for cmd in seen.values()) and time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before it could be stopped: {proc.stderr.read()[-2000:]}"
        seen.update({pid: _command(pid) for pid in _descendants(proc.pid) if pid not in seen})
        time.sleep(0.05)
    assert any(wanted in cmd for cmd in seen.values()), f"no '{wanted}' process seen"
    seen.update({pid: _command(pid) for pid in _descendants(proc.pid) if pid not in seen})
    os.kill(proc.pid, signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert "resume with 'quantmap explore --resume -o" in last and str(out) in last
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 10  # the workers' parent watch polls once a second
    while any(map(_alive, seen)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [seen[pid] for pid in seen if _alive(pid)]
    assert survivors == []

    resumed = _explore(repo, out, [], "--resume")
    _, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    assert (out / "pareto.csv").is_file() and (out / "report.md").is_file()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_explore_leaves_no_process_and_resumes(tmp_path: Path, repo_root: Path,
                                                        signum: int) -> None:
    _stop_and_check(repo_root, tmp_path / "run", HW_ONLY, signum, "multiprocessing")


@pytest.mark.skipif(not REAL, reason=NO_TOOLS)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_explore_on_the_real_tools_leaves_no_timeloop_running(
        tmp_path: Path, repo_root: Path, signum: int) -> None:
    _stop_and_check(repo_root, tmp_path / "run", ["engine.name=timeloop", *HW_ONLY], signum,
                    "timeloop-mapper")
