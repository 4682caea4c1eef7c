"""The one seam for fan-out: every batch of independent jobs (mapper runs, QAT runs) goes through
an ``Executor``, the way DEAP routes parallelism through ``toolbox.map``.

Contract (what a new backend such as Ray must keep):
- ``run(tasks)`` yields one ``TaskResult`` per task, in completion order, so callers can show
  progress; results come back to the driver, which alone writes the store.
- A task that raises is retried up to ``retries`` more times and then reported with its error,
  never silently dropped. A ``QuantMapError`` is a user-facing error, not a crash: it is
  reported at once, without retries.
- ``Task.kind`` says what a job needs ("cpu": mapper; "qat": PyTorch training). Locally both
  fan out over the same processes (a QAT job pins its own thread count, so two 1-thread jobs on
  two cores beat one oversubscribed 2-thread job); on a Ray cluster with GPUs "qat" jobs
  reserve GPUs.

Ray is an optional extra (``quantmap[ray]``) and is imported only when the Ray executor starts.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..errors import ConfigError, QuantMapError, unknown_name_fix
from ..timeloop.runner import stop_tools


@dataclass(frozen=True)
class Task:
    """One job: a picklable module-level function and its arguments, named by a result key."""

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kind: str = "cpu"


@dataclass(frozen=True)
class TaskResult:
    """What came back for one task: its value, or the error after ``attempts`` tries.

    ``error_type`` is the exception's class name. A QuantMapError (``user_error``) is not
    retried; the caller decides from its type whether it is a property of the job worth caching
    (a bit width wider than a word) or of the environment (a missing binary).
    """

    key: str
    value: Any = None
    error: str | None = None
    attempts: int = 1
    error_type: str | None = None
    user_error: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs batches of tasks; see the module docstring for the contract."""

    name: str

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        ...

    def close(self) -> None:
        ...

    def terminate(self) -> None:
        """Stop at once (Ctrl-C, SIGTERM): end running jobs and every tool they started."""
        ...


def _describe(exc: BaseException, remote_traceback: str = "") -> str:
    """One line naming the error and where it was raised: the last frame of the worker's
    traceback text when the task ran elsewhere, else of the exception's own traceback."""
    remote = re.findall(r'File "([^"]+)", line (\d+)', remote_traceback)
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
    where = (remote or frames)[-1] if (remote or frames) else None
    return f"{type(exc).__name__}: {exc}" + (f" at {where[0]}:{where[1]}" if where else "")


def _failed(task: Task, exc: BaseException, attempts: int, retries: int,
            remote_traceback: str = "") -> TaskResult | None:
    """The contract's rule for a failed attempt, shared by every backend: the result to report,
    or None when the task is to be tried again. A QuantMapError is reported at once."""
    if isinstance(exc, QuantMapError):
        return TaskResult(task.key, error=str(exc), attempts=attempts,
                          error_type=type(exc).__name__, user_error=True)
    if attempts > retries:
        return TaskResult(task.key, error=_describe(exc, remote_traceback), attempts=attempts,
                          error_type=type(exc).__name__)
    return None


def _call_inline(task: Task, retries: int) -> TaskResult:
    """Run a task in this process with the retry rule of the contract."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return TaskResult(task.key, task.fn(*task.args), attempts=attempts)
        except Exception as exc:  # noqa: BLE001 - any task failure is reported, never raised
            outcome = _failed(task, exc, attempts, retries)
            if outcome is not None:
                return outcome


@dataclass
class SerialExecutor:
    """Everything in the driver, one task at a time (workers = 1, and the reference in tests)."""

    retries: int = 1
    name: str = "serial"

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        for task in tasks:
            yield _call_inline(task, self.retries)

    def close(self) -> None:
        """Nothing to release."""

    def terminate(self) -> None:
        """The jobs run here: end the tools they started."""
        stop_tools()


_PARENT_POLL_S = 1.0
_TERMINATE_WAIT_S = 5.0


def _stop_worker(code: int) -> None:
    """End this worker and every tool it started, now."""
    stop_tools()
    os._exit(code)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker, with its tools, when the driver dies or terminates
    the pool (SIGTERM). A driver killed with SIGKILL (the case ``--resume`` exists for) cannot
    shut its pool down, and idle workers would otherwise wait for work forever. Ctrl-C reaches
    the whole terminal process group; the driver alone handles it and terminates the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: _stop_worker(128 + signum))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        _stop_worker(1)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


@dataclass
class LocalPoolExecutor:
    """Jobs over a pool of worker processes (spawned, so workers never inherit the driver's
    PyTorch threads or locks). The pool starts on first use and is reused across batches, so
    worker start-up (and loading a data set) is paid once per run."""

    workers: int = 2
    retries: int = 1
    name: str = "local"
    _pool: ProcessPoolExecutor | None = field(default=None, init=False, repr=False)

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_exit_with_parent,
                                             initargs=(os.getpid(),))
        return self._pool

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        attempts = {task.key: 0 for task in tasks}
        pending: dict[Future, Task] = {}

        def submit(task: Task) -> None:
            attempts[task.key] += 1
            pending[self._ensure_pool().submit(task.fn, *task.args)] = task

        for task in tasks:
            submit(task)
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    yield TaskResult(task.key, future.result(), attempts=attempts[task.key])
                except Exception as exc:  # noqa: BLE001 - reported after bounded retries
                    if isinstance(exc, BrokenProcessPool):
                        self.close()  # a worker died: start a fresh pool for the retries
                    outcome = _failed(task, exc, attempts[task.key], self.retries,
                                      str(exc.__cause__ or ""))
                    if outcome is None:
                        submit(task)
                    else:
                        yield outcome

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def terminate(self) -> None:
        """SIGTERM every worker (each kills its tools' process groups and exits), then wait."""
        stop_tools()
        if self._pool is None:
            return
        workers = list(self._pool._processes.values())  # the pool has no public kill
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(_TERMINATE_WAIT_S)
            if worker.is_alive():
                worker.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None


def _invoke(fn: Callable[..., Any], *args: Any) -> Any:
    """The one remote function of the Ray executor: runs a task's own function on a worker."""
    return fn(*args)


def _import_ray() -> Any:
    """Ray, imported on first use so the project works without the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs the 'ray' package", field="executor.kind",
                          fix="pip install 'quantmap[ray]'") from None
    return ray


@dataclass
class RayExecutor:
    """Jobs as Ray tasks on an existing cluster (``address``) or on a local instance with
    ``cpus`` CPUs that this executor starts on first use and shuts down on ``close``.

    Retries are counted here, not by Ray (tasks are submitted with ``max_retries=0``), so a
    crashed worker and a raising task both use one bounded budget and report their attempts
    exactly like the local pool. A driver that already called ``ray.init`` keeps its
    connection: the executor then neither connects nor shuts anything down.
    """

    address: str | None = None
    cpus: int = 2
    retries: int = 1
    qat_gpus: float = 1.0
    name: str = "ray"
    _ray: Any = field(default=None, init=False, repr=False)
    _remote: Any = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)
    _gpus: float = field(default=0.0, init=False, repr=False)

    def _connect(self) -> Any:
        """Ray with a connection and the remote function, set up once per executor."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if not ray.is_initialized():
            where = {"address": self.address} if self.address else \
                {"num_cpus": self.cpus, "include_dashboard": False}
            try:
                ray.init(**where, logging_level=logging.WARNING)
            except (ConnectionError, ValueError) as exc:
                reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise ConfigError(f"cannot connect to the Ray cluster at '{self.address}': "
                                  f"{reason}",
                                  field="executor.address",
                                  fix="give the head node's address (host:6379, or 'auto' on a "
                                      "cluster node), or leave it empty for a local instance") \
                    from None
            self._started = True
        self._gpus = float(ray.cluster_resources().get("GPU", 0.0))
        self._remote = ray.remote(max_retries=0)(_invoke)
        self._ray = ray
        return ray

    def _options(self, task: Task) -> dict[str, float]:
        """Resources of one task: a CPU each; QAT jobs also a GPU share if the cluster has GPUs
        (the job trains on it when the experiment's qat.device is 'cuda')."""
        if task.kind == "qat" and self._gpus > 0 and self.qat_gpus > 0:
            return {"num_cpus": 1, "num_gpus": self.qat_gpus}
        return {"num_cpus": 1}

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskResult]:
        ray = self._connect()
        attempts = {task.key: 0 for task in tasks}
        pending: dict[Any, Task] = {}

        def submit(task: Task) -> None:
            attempts[task.key] += 1
            ref = self._remote.options(**self._options(task)).remote(task.fn, *task.args)
            pending[ref] = task

        for task in tasks:
            submit(task)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    yield TaskResult(task.key, ray.get(ref), attempts=attempts[task.key])
                except ray.exceptions.RayError as exc:
                    # a raising task carries its exception as ``cause`` and the worker's
                    # traceback in its text; a crashed worker or lost node is the error itself
                    cause = getattr(exc, "cause", None) or exc.with_traceback(None)
                    outcome = _failed(task, cause, attempts[task.key], self.retries, str(exc))
                    if outcome is None:
                        submit(task)
                    else:
                        yield outcome

    def close(self) -> None:
        """Shut down the local instance or the connection this executor made (only those)."""
        if self._started and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._remote, self._started = None, None, False

    def terminate(self) -> None:
        """Shutting the instance down ends its workers; a cluster's own tasks are its to stop."""
        self.close()


EXECUTORS: tuple[str, ...] = ("local", "ray")


def check_executor_available(kind: str) -> None:
    """Fail before any work when the chosen backend's package is missing."""
    if kind == "ray":
        _import_ray()


def make_executor(kind: str = "local", *, workers: int = 2, retries: int = 1,
                  address: str | None = None, qat_gpus: float = 1.0) -> Executor:
    """The executor named in the experiment config. ``workers`` is the process count of the
    local pool and the CPU count of a local Ray instance (unused with a cluster ``address``).
    A new backend implements the ``Executor`` protocol and adds its name here and to
    ``EXECUTORS``."""
    if kind == "local":
        return SerialExecutor(retries) if workers <= 1 else LocalPoolExecutor(workers, retries)
    if kind == "ray":
        check_executor_available(kind)
        return RayExecutor(address=address, cpus=workers, retries=retries, qat_gpus=qat_gpus)
    raise ConfigError(f"unknown executor '{kind}'", field="executor.kind",
                      fix=unknown_name_fix(kind, EXECUTORS, "executors"))
