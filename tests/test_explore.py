"""The main job end to end, as users run it: real subprocesses, real store, real QAT and mapper."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrapper.explore.config import load_config
from wrapper.explore.executors import LocalPoolExecutor, SerialExecutor, Task
from wrapper.explore.experiment import Experiment
from wrapper.explore.nsga2 import protected_genomes
from wrapper.spec.stats import Stats

# A test-sized budget of the default experiment (digits, MobileNetV1 x0.25, Eyeriss, builtin);
# two widths keep the uniform references (U4, U8) few.
SMALL = ["search.parents=4", "search.offspring=4", "search.generations=1", "search.bits=[4,8]",
         "qat.float_epochs=2", "final.points=1", "final.seeds=2",
         "mapper.max_evaluations=100", "data.resolution=16"]
# Hardware-only objectives: no training, so a longer search stays fast enough to kill mid-run.
HW_ONLY = ["search.objectives=[energy,latency,memory]", "search.parents=6",
           "search.offspring=6", "search.generations=5", "mapper.max_evaluations=100",
           "data.resolution=16", "seed=7"]
RESULT_FILES = ("config.yaml", "run.json", "report.md", "pareto.csv", "pareto.json",
                "candidates.csv", "plots/pareto.png", "plots/bits.png",
                "plots/energy_breakdown.png", "plots/accuracy_vs_energy.png", "store.sqlite")


def _explore(repo: Path, out: Path, sets: list[str], *extra: str,
             env: dict[str, str] | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "wrapper.explore", "-o", str(out), *extra]
    for item in sets:
        args += ["--set", item]
    return subprocess.Popen(args, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _dominates(a: list[float], b: list[float], maximize: list[bool]) -> bool:
    wa = [v if m else -v for v, m in zip(a, maximize)]
    wb = [v if m else -v for v, m in zip(b, maximize)]
    return all(x >= y for x, y in zip(wa, wb)) and any(x > y for x, y in zip(wa, wb))


COLUMN = {"accuracy": "val_accuracy", "energy": "energy_pj", "latency": "latency_cycles",
          "memory": "memory_bits", "edp": "edp_pj_cycles", "dram_accesses": "dram_accesses"}


def test_default_run_writes_every_file_with_a_consistent_front(tmp_path: Path,
                                                                repo_root: Path) -> None:
    out = tmp_path / "run"
    stdout = _finish(_explore(repo_root, out, SMALL))
    assert str(out.resolve()) in stdout  # says where the results are
    for name in RESULT_FILES:
        assert (out / name).is_file(), name
    pareto = json.loads((out / "pareto.json").read_text())
    points = pareto["points"]
    assert points and all(len(p["bits"]) == 28 for p in points)
    assert len(list((out / "mappings" / "P01").glob("L*.map.yaml"))) == 28
    assert (out / "mappings" / "P01" / "L01.problem.yaml").is_file()
    # The front is non-dominated in the searched objectives.
    names = pareto["objectives"]
    maximize = [n == "accuracy" for n in names]
    vectors = [[p["objectives"][COLUMN[n]] for n in names] for p in points]
    assert not any(_dominates(a, b, maximize) for a in vectors for b in vectors)
    # Per-layer bits: Outputs of layer i are the Inputs (A) of layer i+1, the last one 8.
    layers = points[0]["layers"]
    assert all(layers[i]["O"] == layers[i + 1]["A"] for i in range(27))
    assert layers[-1]["O"] == 8
    assert json.loads((out / "run.json").read_text())["accuracy_sources"] == ["qat-1ep"]
    # Validation (selection) and test (final evaluation) accuracy side by side; the uniform
    # references are always there.
    header = (out / "pareto.csv").read_text().splitlines()[0].split(",")
    for column in ("val_accuracy", "val_accuracy_mean", "test_accuracy_mean",
                   "test_accuracy_std", "seeds"):
        assert column in header, column
    assert [u["id"] for u in pareto["uniform"]] == ["U4", "U8"]
    assert all(u["final"]["seeds"] == 2 for u in pareto["uniform"])
    evaluated = [p for p in points if p["final"]["seeds"] is not None]
    assert evaluated  # P01 at least (front points equal to a uniform reference share its runs)
    assert all(0.0 <= p["final"]["test_accuracy_mean"] <= 1.0 for p in evaluated)
    # report.md opens with the headline table, one row per hardware objective.
    report = (out / "report.md").read_text().splitlines()
    assert report[0].startswith("# ") and "no accuracy drop" in report[0]
    assert report[2].startswith("| objective | saving vs uniform 8-bit")
    assert report[4].startswith("| energy |") and report[5].startswith("| memory |")
    # The paper's accuracy-vs-energy figure of a finished run, from its files alone.
    figure = subprocess.run([sys.executable, "-m", "wrapper.commands", "figures", "--run", str(out), "-o",
                             str(tmp_path / "figure")], cwd=repo_root, capture_output=True,
                            text=True, timeout=120)
    assert figure.returncode == 0, figure.stderr[-2000:]
    assert (tmp_path / "figure" / "accuracy_vs_energy.png").is_file()
    # Objectives recomputed from the raw store rows equal the reported ones.
    with Experiment(load_config(out / "config.yaml"), out) as experiment:
        # Every front point dominating a uniform reference on validation was retrained; a
        # reference the screens kept from a full QAT is compared at its screen's score.
        refs = []
        for reference in pareto["uniform"]:
            objectives = dict(reference["objectives"])
            if objectives["val_accuracy"] is None:
                genome = tuple(tuple(pair) for pair in reference["bits"])
                screened = experiment.candidate(genome, experiment.accuracy.screen_phase())
                objectives["val_accuracy"] = screened.objective("accuracy")
            refs.append([objectives[COLUMN[n]] for n in names])
        for point, vector in zip(points, vectors):
            if any(_dominates(vector, ref, maximize) for ref in refs):
                assert point["final"]["seeds"] == 2, point["id"]
        db = sqlite3.connect(out / "store.sqlite")
        for point in points:
            genome = tuple(tuple(pair) for pair in point["bits"])
            stats = []
            for job in experiment.hardware.jobs(genome):
                row = db.execute("SELECT stats FROM layer_results WHERE key = ?",
                                 (job.key,)).fetchone()
                stats.append(Stats.from_dict(json.loads(row[0])))
            reported = point["objectives"]
            assert reported["energy_pj"] == pytest.approx(sum(s.energy_pj for s in stats),
                                                          rel=1e-12)
            assert reported["latency_cycles"] == sum(s.cycles for s in stats)
            assert reported["dram_accesses"] == sum(s.last_level_accesses for s in stats)
            assert reported["edp_pj_cycles"] == pytest.approx(sum(s.edp for s in stats),
                                                              rel=1e-12)
            key = experiment.accuracy_keys()[genome, "qat-1ep"][0]
            row = db.execute("SELECT accuracy, test_accuracy FROM accuracies WHERE key = ?",
                             (key,)).fetchone()
            assert reported["val_accuracy"] == row[0]
            assert row[1] is None  # the search never scored the test split
        db.close()


def test_a_configured_accuracy_proxy_is_named_in_the_results(tmp_path: Path,
                                                              repo_root: Path) -> None:
    out = tmp_path / "proxy"
    _finish(_explore(repo_root, out, [
        "search.parents=2", "search.offspring=2", "search.generations=1", "qat.epochs=2",
        "qat.proxy_epochs=1", "qat.proxy_generations=1", "qat.float_epochs=1",
        "final.points=0", "final.seeds=1", "search.bits=[4,8]", "mapper.max_evaluations=100",
        "data.resolution=16"]))
    summary = json.loads((out / "run.json").read_text())
    assert summary["accuracy_sources"] == ["qat-2ep"]  # the final front: the real objective
    assert "1-epoch" in summary["accuracy_proxy"]
    assert "proxy" in (out / "report.md").read_text()
    lines = (out / "candidates.csv").read_text().splitlines()
    column = lines[0].split(",").index("accuracy_source")
    sources = {(row.split(",")[0], row.split(",")[column]) for row in lines[1:]}
    assert ("0", "proxy-qat-1ep") in sources and ("1", "qat-2ep") in sources
    assert ("0", "qat-2ep") not in sources


# Loaded by every Python process of a run (driver and spawned workers) through PYTHONPATH:
# every test label moves to the next class, so test accuracies change and nothing else does.
_SCRAMBLE_TEST_LABELS = """
import wrapper.qat.data as data

_load = data._LOADERS["digits"]


def _scrambled(spec):
    bundle = _load(spec)
    bundle.test.labels = (bundle.test.labels + 1) % bundle.num_classes
    return bundle


data._LOADERS["digits"] = _scrambled
"""


def test_the_test_split_never_reaches_selection(tmp_path: Path, repo_root: Path) -> None:
    """Scrambling every test label changes the reported test accuracy but not one search score
    nor which candidates survive: the test split takes part in no decision."""
    sets = ["search.parents=4", "search.offspring=4", "search.generations=1",
            "search.bits=[4,8]", "qat.float_epochs=1", "final.points=2", "final.seeds=1",
            "mapper.max_evaluations=100", "data.resolution=16"]
    clean = tmp_path / "clean"
    _finish(_explore(repo_root, clean, sets))
    float_start = next((clean / "checkpoints").glob("float-*.pt"))  # trained on train/val only
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SCRAMBLE_TEST_LABELS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(repo_root)])}
    scrambled = tmp_path / "scrambled"
    _finish(_explore(repo_root, scrambled, [*sets, f"qat.float_checkpoint={float_start}"],
                     env=env))

    assert (scrambled / "candidates.csv").read_text() == (clean / "candidates.csv").read_text()
    runs = [json.loads((out / "pareto.json").read_text()) for out in (clean, scrambled)]
    assert [(p["bits"], p["objectives"]) for p in runs[0]["points"]] == \
        [(p["bits"], p["objectives"]) for p in runs[1]["points"]]

    def finals(run: dict) -> list[dict]:
        return [entry["final"] for entry in run["points"] + run["uniform"]]

    assert [f["val_accuracy_mean"] for f in finals(runs[0])] == \
        [f["val_accuracy_mean"] for f in finals(runs[1])]
    assert [f["test_accuracy_mean"] for f in finals(runs[0])] != \
        [f["test_accuracy_mean"] for f in finals(runs[1])]

    def claims(out: Path) -> list[tuple[str, list[tuple[str, str] | None]]]:
        rows = json.loads((out / "run.json").read_text())["headline"]
        return [(row["objective"], [None if row[k] is None else (row[k]["point"],
                                                                 row[k]["reference"])
                                    for k in ("vs_widest_uniform", "vs_same_accuracy_uniform")])
                for row in rows]

    assert claims(clean) == claims(scrambled)  # the claim is decided without the test split


def _generations(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return int(db.execute("SELECT COUNT(DISTINCT generation) FROM generations")
                       .fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def _children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("search", [["search.algorithm=nsga2"],
                                    ["search.algorithm=guided", "search.pool=30"]],
                         ids=["nsga2", "guided"])
def test_killed_run_resumes_to_the_same_front_recomputing_nothing(tmp_path: Path,
                                                                  repo_root: Path,
                                                                  search: list[str]) -> None:
    reference = tmp_path / "reference"
    _finish(_explore(repo_root, reference, HW_ONLY + search))

    out = tmp_path / "killed"
    proc = _explore(repo_root, out, HW_ONLY + search)
    deadline = time.monotonic() + 240
    while _generations(out / "store.sqlite") < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    workers = _children(proc.pid)
    assert workers, "the mapper jobs should run in a process pool"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "pareto.json").exists()
    deadline = time.monotonic() + 30
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, workers)), "orphaned pool workers keep running"

    _finish(_explore(repo_root, out, [], "--resume"))
    resumed = json.loads((out / "pareto.json").read_text())
    expected = json.loads((reference / "pareto.json").read_text())
    assert resumed["points"] == expected["points"]
    summary = json.loads((out / "run.json").read_text())
    assert summary["resumed_from_generation"] >= 1
    assert summary["store_counts"]["recomputed"] == 0  # nothing stored was evaluated again
    reference_counts = json.loads((reference / "run.json").read_text())["store_counts"]
    assert summary["store_counts"]["layer_results"] == reference_counts["layer_results"]


def test_resume_without_an_earlier_run_is_a_one_line_error(tmp_path: Path,
                                                           repo_root: Path) -> None:
    proc = _explore(repo_root, tmp_path / "none", [], "--resume")
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert len(stderr.strip().splitlines()) == 1 and "nothing to resume" in stderr


def _flaky(marker: str) -> str:
    """Fails on its first call (per marker file), succeeds on the retry."""
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("transient failure")
    return "ok"


def _always_fails(value: int) -> int:
    raise ValueError(f"bad task {value}")


@pytest.mark.parametrize("executor", [SerialExecutor(retries=1), LocalPoolExecutor(2, 1)],
                         ids=["serial", "pool"])
def test_executor_retries_then_reports_failures_and_never_drops_a_task(tmp_path: Path,
                                                                       executor) -> None:
    tasks = [Task("flaky", _flaky, (str(tmp_path / "marker"),)),
             Task("broken", _always_fails, (3,)),
             *(Task(f"sq{i}", math.factorial, (i,)) for i in range(5))]
    try:
        results = {r.key: r for r in executor.run(tasks)}
    finally:
        executor.close()
    assert set(results) == {t.key for t in tasks}
    assert results["flaky"].ok and results["flaky"].value == "ok"
    assert results["flaky"].attempts == 2
    assert not results["broken"].ok and "bad task 3" in results["broken"].error
    assert results["broken"].attempts == 2 and not results["broken"].user_error
    assert results["broken"].error_type == "ValueError"
    assert [results[f"sq{i}"].value for i in range(5)] == [1, 1, 2, 6, 24]


def test_figures_show_energy_falling_with_weight_bits_at_the_word_steps(
        tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "figures"
    proc = subprocess.run([sys.executable, "-m", "wrapper.commands", "figures", "-o", str(out),
                           "--evaluations", "300"], cwd=repo_root, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("figures.csv", "figures.json", "energy_vs_weight_bits.png",
                 "remap_savings.png"):
        assert (out / name).is_file(), name
    points = json.loads((out / "figures.json").read_text())
    for arch in ("eyeriss", "simba"):
        energy = {p["weight_bits"]: p["energy_pj"] for p in points if p["arch"] == arch}
        # k = floor(16 / w) = 8, 5, 4, 3, 2, 2, 2: energy falls at every k step, and w = 6, 7, 8
        # (all k = 2) pack identically, so they cost exactly the same.
        assert energy[2] < energy[3] < energy[4] < energy[5] < energy[6], (arch, energy)
        assert energy[6] == energy[7] == energy[8], (arch, energy)
        mine = [p for p in points if p["arch"] == arch]
        # Joint search never loses to keeping the 16-bit mapping, nor to the mapper's own
        # result at that width.
        assert all(p["kept_16bit_mapping_energy_pj"] >= p["energy_pj"] for p in mine)
        assert all(p["mapper_at_this_width_energy_pj"] >= p["energy_pj"] for p in mine)
        assert any(p["kept_16bit_mapping_energy_pj"] > p["energy_pj"] for p in mine)


def test_candidate_without_valid_hardware_never_looks_good():
    """A layer without a valid mapping makes the whole candidate worst in every objective, even
    in objectives (memory) that the failed layer would not make infinite on its own."""
    import math

    from wrapper.explore.experiment import Candidate
    from wrapper.explore.hardware import HardwareTotals
    from wrapper.explore.nsga2 import Objective
    from wrapper.explore.store import AccuracyResult

    broken = HardwareTotals(energy_pj=math.inf, cycles=math.inf, edp=math.inf,
                            dram_accesses=math.inf, memory_bits=1000, valid=False)
    objectives = (Objective("accuracy", maximize=True), Objective("memory"))
    accuracy = AccuracyResult(key="k", bits=((8, 8),), accuracy=0.9, source="qat-1ep")
    values = Candidate(genome=((8, 8),), hardware=broken, accuracy=accuracy).values(objectives)
    assert values == (-math.inf, math.inf)


def test_sensitivity_seeding_probes_each_layer_once_and_seeds_from_its_ranking(
        tmp_path: Path, repo_root: Path) -> None:
    """search.seeding=sensitivity: every layer is probed once alone at the lowest width (no
    training, stored), the initial population holds the seeds that keep the most sensitive
    layers wide, and a resumed run reuses every probe."""
    out = tmp_path / "run"
    sets = SMALL + ["search.seeding=sensitivity", "search.bits=[2,8]", "search.generations=0",
                    "final.points=0"]
    _finish(_explore(repo_root, out, sets))
    with sqlite3.connect(out / "store.sqlite") as db:
        probes = [json.loads(bits) for bits, in db.execute(
            "SELECT bits FROM accuracies WHERE source = 'ptq-w2'")]
        scores = dict(zip(map(str, probes), (a for a, in db.execute(
            "SELECT accuracy FROM accuracies WHERE source = 'ptq-w2'"))))
        initial = {tuple(map(tuple, json.loads(g))) for g, in db.execute(
            "SELECT genome FROM evaluations WHERE generation = 0")}
    n_layers = len(probes[0])
    assert len(probes) == n_layers
    low_layer = {str(p): next(i for i, pair in enumerate(p) if pair == [2, 2]) for p in probes}
    assert sorted(low_layer.values()) == list(range(n_layers))
    accuracy = {low_layer[k]: v for k, v in scores.items()}
    ranking = sorted(range(n_layers), key=lambda i: (accuracy[i], i))
    assert set(protected_genomes((2, 8), ranking, 2)) <= initial

    _finish(_explore(repo_root, out, [], "--resume"))
    summary = json.loads((out / "run.json").read_text())
    assert summary["store_counts"]["recomputed"] == 0
