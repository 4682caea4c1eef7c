"""Fewer QAT runs per front: screens, warm starts, cheap probes and what each costs.

The search-level tests use a cheap synthetic objective; the others train real Brevitas nets on
digits and run the real explore command.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pytest
import torch

from wrapper.explore.accuracy import Accuracy, distance, samples_processed
from wrapper.explore.config import load_config
from wrapper.explore.experiment import Experiment
from wrapper.explore.guided import GuidedSettings, guided, probe_weights
from wrapper.explore.nsga2 import Genome, Objective, nsga2
from wrapper.qat.data import load_data
from wrapper.qat.settings import DataSpec, ModelSpec, TrainSettings
from wrapper.qat.train import _warm_start, finetune, load_checkpoint, train_float

N_LAYERS = 5
BITS = (2, 4, 8)
OBJECTIVES = (Objective("accuracy", maximize=True), Objective("memory"))


class ScreeningEvaluator:
    """A synthetic objective with a screen: keeps genomes whose first layer is wide, records
    which genomes were screened and which got the full evaluation."""

    def __init__(self) -> None:
        self.screened: list[Genome] = []
        self.full: list[Genome] = []

    @staticmethod
    def _values(genome: Genome) -> tuple[float, float]:
        noise = sum(2.0 ** -w * (i + 1) + 2.0 ** -a for i, (a, w) in enumerate(genome))
        return 1.0 - noise / 10.0, float(sum(a + w for a, w in genome))

    def __call__(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        self.full += genomes
        return [self._values(g) for g in genomes]

    def phase(self, generation: int) -> str:
        return "full"

    def screen(self, genomes: Sequence[Genome], generation: int) -> list[bool]:
        self.screened += genomes
        return [g[0][1] >= 4 for g in genomes]

    def costs(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        return [(math.nan, self._values(g)[1]) for g in genomes]


@pytest.mark.parametrize("search", ["nsga2", "guided"])
def test_only_screen_survivors_are_evaluated_and_reach_the_front(search: str) -> None:
    evaluator = ScreeningEvaluator()
    settings = GuidedSettings(bits=BITS, parents=6, offspring=6, generations=3, pool=40)
    run = {"nsga2": nsga2, "guided": guided}[search]
    result = run(N_LAYERS, OBJECTIVES, evaluator, settings, seed=1)
    assert evaluator.full and set(evaluator.full) <= set(evaluator.screened)
    assert all(g[0][1] >= 4 for g in evaluator.full)  # only survivors got a full evaluation
    assert any(g[0][1] < 4 for g in evaluator.screened)  # and the screen did drop some
    assert all(g[0][1] >= 4 for g, _ in result.population)
    assert all(g[0][1] >= 4 for g, _ in result.front)
    if search == "guided":  # a dropped child is remembered, never screened again
        assert len(evaluator.screened) == len(set(evaluator.screened))


def test_probe_weights_favour_the_layers_whose_probe_lost_most() -> None:
    weights = probe_weights([0.9, 0.5, 0.88, 0.1])
    assert sum(weights) / len(weights) == pytest.approx(1.0)
    assert weights[3] > weights[1] > weights[2] > weights[0] > 0.0


def test_a_fraction_costs_its_share_of_a_full_run_and_full_runs_keep_their_keys(
        tmp_path: Path) -> None:
    full = TrainSettings()
    sizes = (1078, 359)
    unit = samples_processed(full, *sizes)
    screen = samples_processed(replace(full, fraction=0.25), *sizes) / unit
    probe = samples_processed(replace(full, fraction=0.125), *sizes, trained=False) / unit
    assert screen == pytest.approx(0.25, abs=0.02)
    assert probe < 0.1
    assert samples_processed(replace(full, fraction=1.0), *sizes) == unit
    config = load_config(None, {"data.resolution": 16})
    accuracy = Accuracy(config, config.data, 10, store=None, checkpoint_dir=tmp_path)  # type: ignore[arg-type]
    accuracy._checkpoint = ("float.pt", "0" * 64)
    genome = ((8, 8),) * 28
    assert accuracy.key(genome, "qat-1ep") != accuracy.key(genome, accuracy.screen_phase())
    assert accuracy.key(genome, "qat-1ep") != accuracy.key(genome, "qat-1ep", "parent")


def test_the_warm_start_is_the_nearest_fully_trained_net_that_is_kept(tmp_path: Path) -> None:
    config = load_config(None, {"data.resolution": 16, "search.warm_start": True})
    accuracy = Accuracy(config, config.data, 10, store=None, checkpoint_dir=tmp_path)  # type: ignore[arg-type]
    near, far, kept_far = (((4, 4),) * 3, "near"), (((2, 2),) * 3, "far"), \
        (((8, 8),) * 3, "kept-far")
    target = ((4, 4), (4, 4), (2, 4))
    for _, key in (far, kept_far):
        accuracy.trained_path(key).parent.mkdir(parents=True, exist_ok=True)
        accuracy.trained_path(key).write_bytes(b"")
    assert distance(target, near[0]) < distance(target, far[0]) < distance(target, kept_far[0])
    # "near" has no kept net: the nearest one with a kept net is chosen
    assert accuracy.parent(target, [kept_far, near, far]) == "far"
    accuracy.trained_path("near").write_bytes(b"")
    assert accuracy.parent(target, [kept_far, near, far]) == "near"
    assert accuracy.parent(near[0], [near]) is None  # never itself
    cold = Accuracy(load_config(None), config.data, 10,  # the default: no warm starts
                    store=None, checkpoint_dir=tmp_path)  # type: ignore[arg-type]
    assert cold.parent(target, [near, far]) is None


def test_a_warm_start_loads_the_neighbours_trained_weights(tmp_path: Path) -> None:
    """Real Brevitas on digits: the warm start carries the neighbour's fine-tuned weights and
    BatchNorm state, while the quantizers are set up afresh for the new widths."""
    data = load_data(DataSpec(resolution=16))
    model = ModelSpec(width_mult=0.25, num_classes=data.num_classes)
    quick = TrainSettings(progress=False, fraction=0.25)
    start = train_float(model, data, replace(quick, lr=0.1), out=tmp_path / "float.pt")
    neighbour = [(4, 4)] * 28
    finetune(start.checkpoint, neighbour, data, quick, out=tmp_path / "neighbour.pt")
    trained = load_checkpoint(tmp_path / "neighbour.pt")
    warm = _warm_start(start.checkpoint, tmp_path / "neighbour.pt")
    assert set(warm.state_dict) == set(start.checkpoint.state_dict)
    moved = [k for k, v in start.checkpoint.state_dict.items()
             if not torch.equal(v, trained.state_dict[k])]
    assert moved  # fine-tuning changed weights, and the warm start holds the changed ones
    assert all(torch.equal(warm.state_dict[k], trained.state_dict[k]) for k in moved)
    result = finetune(start.checkpoint, [(4, 4)] * 27 + [(2, 2)], data, quick,
                      warm=tmp_path / "neighbour.pt")
    assert 0.0 <= result.top1 <= 1.0


SCREENED = ["search.parents=4", "search.offspring=4", "search.generations=1",
            "search.bits=[2,8]", "qat.float_epochs=2", "final.evaluate=false",
            "mapper.max_evaluations=100", "data.resolution=16", "search.warm_start=true"]


def _explore(repo: Path, out: Path, sets: list[str], *extra: str) -> None:
    args = [sys.executable, "-m", "wrapper.explore", "-o", str(out), *extra]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "candidates.csv") as handle:
        return list(csv.DictReader(handle))


def _bits(row: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(v) for k, v in row.items() if k.startswith("L") and v)


def _beats(other: dict[str, str], row: dict[str, str], margin: float) -> bool:
    """The screening rule, restated: better accuracy by more than the margin, no more cost."""
    return (float(other["val_accuracy"]) - margin > float(row["val_accuracy"])
            and all(float(other[c]) <= float(row[c]) for c in ("energy_pj", "memory_bits")))


def test_a_run_screens_warm_starts_and_counts_every_equivalent(
        tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "run"
    _explore(repo_root, out, SCREENED)
    rows = _rows(out)
    screens = [r for r in rows if r["accuracy_source"].startswith("screen")]
    full = [r for r in rows if not r["accuracy_source"].startswith("screen")]
    assert screens and full
    config = load_config(out / "config.yaml")
    margin = config.search.screen_margin
    # Screens are the only way to a full QAT: a screened candidate got one exactly when no
    # screen of the run beat it (the first generation may keep two to breed from).
    for generation in ("0", "1"):
        screened = [r for r in screens if r["generation"] == generation]
        promoted = {_bits(r) for r in full if r["generation"] == generation}
        survivors = {_bits(r) for r in screened
                     if not any(_beats(o, r, margin) for o in screens
                                if o is not r and o["generation"] <= generation)}
        assert {_bits(r) for r in screened} >= promoted
        if generation == "1" or len(survivors) >= 2:
            assert promoted == survivors, generation
    summary = json.loads((out / "run.json").read_text())
    spent = summary["qat_equivalents"]
    fraction = config.search.screen_fraction
    assert all(float(r["qat_equivalents"]) == pytest.approx(fraction, abs=0.02) for r in screens)
    assert spent["screens"] == pytest.approx(sum(float(r["qat_equivalents"]) for r in screens),
                                             abs=1e-3)
    assert spent["search"] == pytest.approx(sum(float(r["qat_equivalents"]) for r in full),
                                            abs=1e-3)
    assert spent["final"] == 0.0
    with sqlite3.connect(out / "store.sqlite") as db:
        probes = [cost for cost, in db.execute(
            "SELECT equivalents FROM accuracies WHERE source = 'ptq-w2'")]
    assert len(probes) == 28 and all(0.0 < cost < 0.1 for cost in probes)  # the first level
    assert spent["probes"] == pytest.approx(sum(probes), abs=1e-3)
    # Every full QAT of the second generation started from the nearest net the first trained.
    with Experiment(config, out) as experiment:
        keys = experiment.accuracy_keys()
    first = [(_bits(r), keys[tuple(zip(_bits(r)[::2], _bits(r)[1::2])), "qat-1ep"][0])
             for r in full if r["generation"] == "0"]
    for row in full:
        if row["generation"] != "1":
            continue
        genome = tuple(zip(_bits(row)[::2], _bits(row)[1::2]))
        parent = keys[genome, "qat-1ep"][1]
        nearest = min(distance(genome, tuple(zip(b[::2], b[1::2]))) for b, _ in first)
        chosen = next(b for b, k in first if k == parent)
        assert distance(genome, tuple(zip(chosen[::2], chosen[1::2]))) == nearest
        assert (out / "checkpoints" / f"qat-{parent[:16]}.pt").is_file()
    # A resumed run finds the same warm starts: nothing is trained again, the table is equal.
    before = (out / "candidates.csv").read_text()
    _explore(repo_root, out, [], "--resume")
    assert json.loads((out / "run.json").read_text())["store_counts"]["recomputed"] == 0
    assert (out / "candidates.csv").read_text() == before
