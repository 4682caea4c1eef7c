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
  two cores beat one oversubscribed 2-thread job); a cluster backend may give "qat" jobs GPUs.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

from .errors import ConfigError, QuantMapError, unknown_name_fix



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


def _describe(exc: BaseException) -> str:
    """One line naming the error and where it was raised; for a worker process that is the
    last frame of the remote traceback the pool attaches as the cause."""
    remote = re.findall(r'File "([^"]+)", line (\d+)', str(exc.__cause__ or ""))
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
    where = (remote or frames)[-1] if (remote or frames) else None
    return f"{type(exc).__name__}: {exc}" + (f" at {where[0]}:{where[1]}" if where else "")


def _call_inline(task: Task, retries: int) -> TaskResult:
    """Run a task in this process with the retry rule of the contract."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return TaskResult(task.key, task.fn(*task.args), attempts=attempts)
        except QuantMapError as exc:
            return TaskResult(task.key, error=str(exc), attempts=attempts,
                              error_type=type(exc).__name__, user_error=True)
        except Exception as exc:  # noqa: BLE001 - any task failure is reported, never raised
            if attempts > retries:
                return TaskResult(task.key, error=_describe(exc), attempts=attempts,
                                  error_type=type(exc).__name__)


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


_PARENT_POLL_S = 1.0


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the driver dies. A driver killed with SIGKILL
    (the case ``--resume`` exists for) cannot shut its pool down, and idle workers would
    otherwise wait for work forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(1)

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
                except QuantMapError as exc:
                    yield TaskResult(task.key, error=str(exc), attempts=attempts[task.key],
                                     error_type=type(exc).__name__, user_error=True)
                except Exception as exc:  # noqa: BLE001 - reported after bounded retries
                    if isinstance(exc, BrokenProcessPool):
                        self.close()  # a worker died: start a fresh pool for the retries
                    if attempts[task.key] > self.retries:
                        yield TaskResult(task.key, error=_describe(exc),
                                         attempts=attempts[task.key],
                                         error_type=type(exc).__name__)
                    else:
                        submit(task)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


EXECUTORS: tuple[str, ...] = ("local",)


def make_executor(kind: str = "local", *, workers: int = 2, retries: int = 1) -> Executor:
    """The executor named in the experiment config. A new backend (Ray, issue 8) implements the
    ``Executor`` protocol and adds its name here and to ``EXECUTORS``."""
    if kind == "local":
        return SerialExecutor(retries) if workers <= 1 else LocalPoolExecutor(workers, retries)
    raise ConfigError(f"unknown executor '{kind}'", field="executor.kind",
                      fix=unknown_name_fix(kind, EXECUTORS, "executors"))
