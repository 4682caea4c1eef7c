"""The Ray executor on a real local Ray instance (2 CPUs, started once for this module): the same
front as the local pool, and failures retried on the cluster and then reported in the results."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from test_explore import _always_fails, _explore, _finish, _flaky

from wrapper.commands.cli import parse_set_options
from wrapper.errors import PrecisionError
from wrapper.explore import hardware as hwcost
from wrapper.explore.config import load_config
from wrapper.explore.executors import RayExecutor, Task
from wrapper.explore.experiment import run_experiment

# Hardware-only objectives (no training): the search still maps every layer through the executor.
HW_SMALL = ["search.objectives=[energy,latency,memory]", "search.parents=4",
            "search.offspring=4", "search.generations=1", "mapper.max_evaluations=100",
            "data.resolution=16", "seed=3"]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray instance for the module; yields its address for other drivers."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed "
                                            "(pip install 'quantmap[ray]')")
    # Workers import this module's task functions by name, so they need the tests folder.
    tests = str(Path(__file__).resolve().parent)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": tests}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_explore_on_ray_gives_the_same_front_as_the_local_pool(tmp_path: Path, repo_root: Path,
                                                               ray_cluster: str) -> None:
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    _finish(_explore(repo_root, local, HW_SMALL))
    _finish(_explore(repo_root, on_ray, HW_SMALL, "--executor", "ray", "--ray-address",
                     ray_cluster))
    config = load_config(on_ray / "config.yaml")
    assert (config.executor.kind, config.executor.address) == ("ray", ray_cluster)
    expected = json.loads((local / "pareto.json").read_text())
    assert expected["points"]
    assert json.loads((on_ray / "pareto.json").read_text())["points"] == expected["points"]
    counts = [json.loads((out / "run.json").read_text())["store_counts"] for out in (local, on_ray)]
    assert counts[0]["layer_results"] == counts[1]["layer_results"]


def _first_layer_fails_at_two_weight_bits(engine: str, options_json: str, arch: Any,
                                          problem: Any, settings: Any) -> Any:
    """The mapper job with an injected fault: the first layer (3 input channels) at 2-bit
    weights raises on whichever worker runs it; every other job maps as usual."""
    if problem.bounds["C"] == 3 and problem.precision.weights == 2:
        raise RuntimeError(f"injected fault in process {os.getpid()}")
    return _real_map_layer(engine, options_json, arch, problem, settings)


_real_map_layer = hwcost.map_layer


def test_a_task_raising_on_the_cluster_is_retried_then_reported_and_the_run_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_cluster: str) -> None:
    import ray

    monkeypatch.setattr(hwcost, "map_layer", _first_layer_fails_at_two_weight_bits)
    # Generation 0 only (one mapper batch); the uniform 2-bit seed holds the faulty job. Energy
    # and latency only: a candidate with a failed layer costs infinity and is dominated.
    overrides = {**parse_set_options(HW_SMALL), "search.objectives": ["energy", "latency"],
                 "search.generations": 0, "search.bits": [2, 8], "executor.kind": "ray",
                 "executor.retries": 2}
    out = tmp_path / "faulty"
    run_experiment(load_config(None, overrides), out)
    assert ray.is_initialized()  # the executor reused this driver's connection, left it open
    failures = json.loads((out / "run.json").read_text())["failures"]
    assert failures
    for failure in failures:
        assert failure["kind"] == "mapper" and failure["attempts"] == 3  # 1 try + 2 retries
        assert "RuntimeError: injected fault in process" in failure["message"]
        assert int(failure["message"].split("process ")[1].split()[0]) != os.getpid()
    assert f"{len(failures)} failures" in (out / "report.md").read_text()
    points = json.loads((out / "pareto.json").read_text())["points"]
    assert points and all(p["objectives"]["energy_pj"] is not None for p in points)


def _crash_worker() -> None:
    os._exit(3)


def _user_error() -> None:
    raise PrecisionError("9 bits do not fit", field="bits", fix="use fewer")


def test_ray_executor_retries_crashes_and_errors_then_reports_each_task(
        tmp_path: Path, ray_cluster: str) -> None:
    executor = RayExecutor(retries=1)
    tasks = [Task("flaky", _flaky, (str(tmp_path / "marker"),)),
             Task("broken", _always_fails, (3,)),
             Task("crash", _crash_worker),
             Task("user", _user_error),
             *(Task(f"f{i}", math.factorial, (i,)) for i in range(4))]
    try:
        results = {r.key: r for r in executor.run(tasks)}
    finally:
        executor.close()
    assert set(results) == {t.key for t in tasks}
    assert results["flaky"].ok and (results["flaky"].value, results["flaky"].attempts) == ("ok", 2)
    broken = results["broken"]
    assert (broken.ok, broken.attempts, broken.error_type) == (False, 2, "ValueError")
    assert "bad task 3" in broken.error and "test_explore.py" in broken.error  # where it raised
    assert not results["crash"].ok and results["crash"].attempts == 2
    user = results["user"]  # a user-facing error is a property of the job: not retried
    assert (user.attempts, user.user_error, user.error_type) == (1, True, "PrecisionError")
    assert [results[f"f{i}"].value for i in range(4)] == [1, 1, 2, 6]


def test_a_local_instance_started_by_the_executor_is_shut_down(repo_root: Path,
                                                               ray_cluster: str) -> None:
    code = ("import math, ray\n"
            "from wrapper.explore.executors import Task, make_executor\n"
            "executor = make_executor('ray', workers=1)\n"
            "print([r.value for r in executor.run([Task('a', math.factorial, (5,))])])\n"
            "executor.close()\n"
            "print(ray.is_initialized())\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["[120]", "False"]


def test_ray_executor_without_ray_installed_is_a_one_line_error(repo_root: Path,
                                                                 tmp_path: Path) -> None:
    code = ("import sys\n"
            "sys.modules['ray'] = None  # what an install without the extra looks like\n"
            "from wrapper.commands.explore import main\n"
            f"sys.exit(main(['--executor', 'ray', '-o', {str(tmp_path / 'out')!r}]))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "pip install 'quantmap[ray]'" in proc.stderr
    assert not (tmp_path / "out").exists()  # before any work
