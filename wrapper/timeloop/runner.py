"""Run external tools (timeloop-model, timeloop-mapper, accelergy) as isolated, killable jobs.

Each job gets its own work directory and log; it runs in its own process group so a timeout kills
the tool and everything it spawned (timeloop-mapper starts threads, timeloop-model may start
Accelergy). Every failure becomes a ``BackendError`` carrying the reason and the log tail, so a
caller evaluating many candidates records the failure and goes on. Work directories of failed
jobs are kept for inspection; those of successful jobs are removed unless asked to keep them.

A tool killed by a signal while its executable or one of the libraries next to it was rewritten
(a rebuild or reinstall into the same folder: the pages it had mapped change under it, which the
kernel answers with SIGBUS) is run once more on the settled files, and the error says so if that
fails too. The libraries watched are the tool family's own (``libtimeloop*`` for timeloop-mapper)
in the ``lib`` folder beside ``bin``, where Timeloop installs put them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from ..errors import BackendError

LOG_NAME = "run.log"
_TAIL_CHARS = 3000
_KILL_GRACE_S = 2.0
_SETTLE_S = 1.0
_ASSERTION = re.compile(r"^.*Assertion .* failed.*$", re.MULTILINE)
_ERROR_LINE = re.compile(r"^.*\b(ERROR|Error|error)\b.*$", re.MULTILINE)

T = TypeVar("T")

# Process groups of the tools running in this process, and whether the process is stopping:
# stop_tools() ends them all and refuses new ones, so a stopped command leaves no tool behind.
_LIVE_GROUPS: set[int] = set()
_LIVE_LOCK = threading.Lock()
_STOPPING = threading.Event()


def stop_tools() -> None:
    """Kill the process group of every tool this process started and start no more. Called
    when the command is interrupted (Ctrl-C, SIGTERM) or a worker's driver is gone."""
    _STOPPING.set()
    with _LIVE_LOCK:
        groups = list(_LIVE_GROUPS)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass(frozen=True)
class JobResult:
    """A finished job: exit status, wall time and where its log and files are."""

    argv: tuple[str, ...]
    work_dir: Path
    returncode: int
    wall_s: float

    @property
    def log_path(self) -> Path:
        return self.work_dir / LOG_NAME

    def log_tail(self, chars: int = _TAIL_CHARS) -> str:
        """The last ``chars`` characters of the job's combined stdout/stderr."""
        return read_tail(self.log_path, chars)


class ToolCrash(BackendError):
    """The tool was killed by a signal (crash or assertion abort), not a plain error exit."""


def read_tail(path: Path, chars: int = _TAIL_CHARS) -> str:
    """The end of a text file ('' when it does not exist)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, then SIGKILL whatever is left after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            if sig == signal.SIGTERM:
                os.killpg(process.pid, signal.SIGKILL)  # children may outlive the leader
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def failure_reason(returncode: int, log: str) -> str:
    """A one-line reason for a non-zero exit: assertion abort, signal, or the tool's ERROR line."""
    assertion = _ASSERTION.search(log)
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else "?"
        if assertion:
            return f"aborted on an assertion ({name}): {assertion.group(0).strip()}"
        return f"crashed with signal {name}"
    error = _ERROR_LINE.search(log)
    detail = f": {error.group(0).strip()}" if error else ""
    return f"exited with code {returncode}{detail}"


def build_files(executable: str) -> dict[str, tuple[int, int, int]]:
    """Identity (inode, size, mtime) of an executable and the shared libraries of its build."""
    path = Path(shutil.which(executable) or executable).resolve()
    family = path.name.split("-")[0]
    files = [path, *sorted((path.parent.parent / "lib").glob(f"lib{family}*.so*"))]
    identity = {}
    for file in files:
        try:
            info = file.stat()
        except OSError:
            continue
        identity[str(file)] = (info.st_ino, info.st_size, info.st_mtime_ns)
    return identity


def _settled(executable: str, wait_s: float = _SETTLE_S) -> dict[str, tuple[int, int, int]]:
    """The build's identity once it stopped changing for ``wait_s`` (an install in progress)."""
    current = build_files(executable)
    for _ in range(30):
        time.sleep(wait_s)
        again = build_files(executable)
        if again == current:
            break
        current = again
    return current


def run_job(argv: Sequence[str], work_dir: Path, *, timeout_s: float,
            env: dict[str, str] | None = None) -> JobResult:
    """Run ``argv`` in ``work_dir`` (log in run.log); BackendError on timeout or non-zero exit.

    A crash while the tool's build changed on disk is retried once (module docstring)."""
    before = build_files(argv[0])
    try:
        return _run_once(argv, work_dir, timeout_s=timeout_s, env=env)
    except ToolCrash:
        if build_files(argv[0]) == before:
            raise
        changed = sorted(name for name, ident in _settled(argv[0]).items()
                         if before.get(name) != ident)
    note = f"its build changed on disk while it ran ({', '.join(changed)})"
    _append_log(work_dir, f"[quantmap] {Path(argv[0]).name} crashed; {note}; running it again\n")
    try:
        return _run_once(argv, work_dir, timeout_s=timeout_s, env=env)
    except BackendError as exc:
        raise type(exc)(f"{exc.problem}, also on a second try after {note}", file=exc.file,
                        log_tail=exc.log_tail, fix="do not rebuild or reinstall Timeloop while "
                        "QuantMap uses it") from None


def _append_log(work_dir: Path, text: str) -> None:
    with (work_dir / LOG_NAME).open("a") as log:
        log.write(text)


def _run_once(argv: Sequence[str], work_dir: Path, *, timeout_s: float,
              env: dict[str, str] | None) -> JobResult:
    """One run of ``argv``; see ``run_job``."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / LOG_NAME
    start = time.monotonic()
    with log_path.open("ab") as log:
        with _LIVE_LOCK:
            if _STOPPING.is_set():
                raise BackendError(f"{Path(argv[0]).name} not started: the command is stopping",
                                   file=str(argv[0]), fix="run the command again (--resume)")
            try:
                process = subprocess.Popen(list(argv), cwd=work_dir, stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           start_new_session=True, env=env)
            except OSError as exc:
                raise BackendError(f"cannot start {argv[0]}: {exc.strerror}",
                                   file=str(argv[0]),
                                   fix="check the binary path and that it is executable") from None
            _LIVE_GROUPS.add(process.pid)
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise BackendError(f"{Path(argv[0]).name} timed out after {timeout_s:g} s and was "
                               f"killed with its process group", file=str(log_path),
                               log_tail=read_tail(log_path),
                               fix="raise the timeout or shrink the search (budget, victory "
                                   "condition)") from None
        except BaseException:
            _kill_group(process)  # e.g. KeyboardInterrupt: never leave a tool running
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE_GROUPS.discard(process.pid)
    result = JobResult(tuple(argv), work_dir, returncode, time.monotonic() - start)
    if returncode != 0:
        tail = result.log_tail()
        kind = ToolCrash if returncode < 0 else BackendError
        raise kind(f"{Path(argv[0]).name} {failure_reason(returncode, tail)}",
                   file=str(log_path), log_tail=tail,
                   fix=f"inspect the inputs and log kept in {work_dir}")
    return result


class WorkDirs:
    """Creates one fresh work directory per job under ``root``; keeps failed ones for debugging."""

    def __init__(self, root: Path | None = None, *, keep: str = "failed") -> None:
        if keep not in ("failed", "always", "never"):
            raise ValueError(f"keep must be failed|always|never, not {keep!r}")
        self.root = Path(root) if root is not None else Path(tempfile.gettempdir()) / "quantmap-timeloop"
        self.keep = keep

    def run(self, name: str, job: Callable[[Path], T]) -> T:
        """Call ``job(work_dir)`` in a new directory; remove it afterwards unless policy keeps it."""
        self.root.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix=f"{_safe(name)}-", dir=self.root))
        try:
            value = job(work_dir)
        except BaseException:
            if self.keep == "never":
                shutil.rmtree(work_dir, ignore_errors=True)
            raise
        if self.keep != "always":
            shutil.rmtree(work_dir, ignore_errors=True)
        return value


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "job"


def run_parallel(tasks: Sequence[Callable[[], T]], workers: int) -> list[T | BackendError]:
    """Run independent jobs on ``workers`` threads; a failed job yields its BackendError in place.

    Threads suffice: each job waits on a subprocess, so the GIL is never the bottleneck.
    """
    def guarded(task: Callable[[], T]) -> T | BackendError:
        try:
            return task()
        except BackendError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(guarded, tasks))
