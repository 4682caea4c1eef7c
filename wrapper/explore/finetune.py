"""The fine-tuning step: chosen points of a finished front trained longer, in parallel through
the experiment's executor; writes finetune/<id>.pt and finetune.csv."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..errors import ConfigError
from ..spec.yamlio import write_text_atomic
from .accuracy import Accuracy, cached_data
from .executors import Executor, Task
from .nsga2 import Genome
from .report import csv_text
from .results import point_id


def choose_points(genomes: Sequence[Genome], points: int) -> list[int]:
    """Indices of ``points`` evenly spread members of an ordered front (ends included)."""
    if points >= len(genomes):
        return list(range(len(genomes)))
    if points == 1:
        return [0]
    return sorted({round(i * (len(genomes) - 1) / (points - 1)) for i in range(points)})


def finetune_job(checkpoint: str, bits: Genome, data_spec: object, settings: object, out: str,
                 threads: int) -> float:
    """One fine-tuning job (runs in an executor worker); returns the final top-1."""
    import torch  # heavy: imported in the worker that trains

    from ..qat.train import finetune as qat_finetune
    torch.set_num_threads(threads)
    return qat_finetune(checkpoint, bits, cached_data(data_spec), settings,  # type: ignore[arg-type]
                        out=out).top1


def finetune(accuracy: Accuracy, executor: Executor, genomes: Sequence[Genome], points: int,
             epochs: int, out: Path) -> Path:
    """Retrain chosen points of the front (ordered as in pareto.csv) for ``epochs`` epochs, in
    parallel through ``executor``; writes ``out``/finetune/<id>.pt and ``out``/finetune.csv."""
    config = accuracy.config
    phase = accuracy.phase(config.search.generations)
    settings = accuracy.settings(phase, epochs=epochs)
    checkpoint = accuracy.float_checkpoint(executor)
    chosen = {point_id(i): genomes[i] for i in choose_points(genomes, points)}
    tasks = [Task(pid, finetune_job, (checkpoint, genome, accuracy.data_spec, settings,
                                      str(out / "finetune" / f"{pid}.pt"), config.qat.threads),
                  kind="qat")
             for pid, genome in chosen.items()]
    finished = {}
    with tqdm(total=len(tasks), desc="finetune", unit="point", file=sys.stderr) as bar:
        for outcome in executor.run(tasks):
            bar.update(1)
            finished[outcome.key] = outcome
    rows = []
    for pid, genome in chosen.items():
        stored = accuracy.get(genome, phase)
        outcome = finished[pid]
        rows.append([pid, None if stored is None else stored.accuracy,
                     None if stored is None else stored.source,
                     outcome.value if outcome.ok else None, epochs, outcome.error])
    header = ["id", "search_accuracy", "search_accuracy_source", "finetuned_accuracy", "epochs",
              "error"]
    return write_text_atomic(csv_text(header, rows), out / "finetune.csv")


def front_genomes(out: Path) -> list[Genome]:
    """The Pareto points of a finished run, in pareto.json order."""
    path = out / "pareto.json"
    if not path.is_file():
        raise ConfigError("no pareto.json in this folder", file=str(out), field="DIR",
                          fix="give the results folder of a finished explore run")
    points = json.loads(path.read_text())["points"]
    return [tuple((int(a), int(w)) for a, w in p["bits"]) for p in points]
