"""The main job: joint search of per-layer bit widths and mappings.

``python -m wrapper.explore [--config exp.yaml] [--set key=value ...] [--resume] [-o DIR]``

With no arguments it runs the default experiment (digits data, MobileNetV1 x0.25, Eyeriss-like,
built-in engine, small budget) and prints where the results are. Everything is checked before any
work starts (``Experiment`` construction: config, arch, word widths, data, model tracing); then
NSGA-II runs with every mapper run and QAT run stored in ``DIR/store.sqlite``, so ``--resume``
(or any later run with the same settings) recomputes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .arch import Arch, arch_from_dict
from .config import ArchConfig, ExperimentConfig, load_config, save_config
from .costmodel import content_hash
from .errors import ConfigError, PrecisionError, QuantMapError, report_error
from .executors import EXECUTORS, Executor, SerialExecutor, Task, make_executor
from .hwcost import HardwareCost, HardwareTotals
from .nets import build_model
from .problem import CNN_LAYER_SHAPE, DEPTHWISE_SHAPE
from .search import Genome, Objective, SearchResult, nsga2
from .store import AccuracyResult, Store
from .templates import adapt_constraints_for_shape, parse_set_options, write_arch
from .workload import Layer, extract_layers
from .yamlio import load_specs

STORE_NAME = "store.sqlite"
CONFIG_NAME = "config.yaml"


# ---------------------------------------------------------------------------------------------
# Accuracy (QAT jobs; PyTorch is imported only when accuracy is needed)


@lru_cache(maxsize=2)
def _bundle(spec: object) -> object:
    """Loaded data per process (a QAT job reuses it instead of re-reading the files)."""
    from .qat.data import load_data
    return load_data(spec)  # type: ignore[arg-type]


def qat_accuracy(model: str, bits: Genome, data_spec: object, settings: object,
                 checkpoint: str, threads: int) -> float:
    """The QAT job: top-1 after fine-tuning ``bits`` from the float checkpoint, on a fixed
    number of threads (the result depends on it, and oversubscribed cores slow PyTorch 5x)."""
    import torch

    from .qat.train import evaluate_bit_config
    torch.set_num_threads(threads)
    return evaluate_bit_config(model, bits, _bundle(data_spec), settings,  # type: ignore[arg-type]
                               checkpoint)


def float_training(model: object, data_spec: object, settings: object, path: str,
                   threads: int) -> float:
    """The float pre-training job (once per model and data): writes the checkpoint, returns
    its top-1."""
    import torch

    from .qat.train import train_float
    torch.set_num_threads(threads)
    return train_float(model, _bundle(data_spec), settings, out=path).top1  # type: ignore[arg-type]


class Accuracy:
    """Store-backed accuracy of bit configurations (QAT, or a cheaper QAT as proxy)."""

    def __init__(self, config: ExperimentConfig, data_spec: object, num_classes: int,
                 store: Store, checkpoint_dir: Path) -> None:
        self.config = config
        self.data_spec = data_spec
        self.num_classes = num_classes
        self.store = store
        self.checkpoint_dir = checkpoint_dir
        self._checkpoint: tuple[str, str] | None = None  # (path, content hash)

    def phase(self, generation: int) -> str:
        """The accuracy source of a generation, e.g. 'qat-3ep' or 'proxy-qat-1ep'."""
        qat = self.config.qat
        if generation < qat.proxy_generations:
            return f"proxy-qat-{qat.proxy_epochs}ep"
        return f"qat-{qat.epochs}ep"

    def settings(self, phase: str, epochs: int | None = None) -> object:
        from .qat.train import TrainSettings
        qat = self.config.qat
        if epochs is None:
            epochs = qat.proxy_epochs if phase.startswith("proxy") else qat.epochs
        return TrainSettings(epochs=epochs, lr=qat.lr, momentum=qat.momentum,
                             weight_decay=qat.weight_decay, batch_size=qat.batch_size,
                             seed=self.config.seed, device=qat.device,
                             per_channel=qat.per_channel,
                             calibration_batches=qat.calibration_batches, progress=False)

    def float_checkpoint(self, executor: Executor | None = None) -> str:
        """The float starting point: the configured file, or one trained (once) and stored."""
        if self._checkpoint is None:
            path = self.config.qat.float_checkpoint or str(self._train_float(executor))
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            self._checkpoint = (path, digest)
        return self._checkpoint[0]

    def _train_float(self, executor: Executor | None) -> Path:
        from .qat.train import TrainSettings
        model = self.model_spec()
        qat = self.config.qat
        settings = TrainSettings(epochs=qat.float_epochs, lr=qat.float_lr,
                                 momentum=qat.momentum, weight_decay=qat.weight_decay,
                                 batch_size=qat.batch_size, seed=self.config.seed,
                                 device=qat.device)
        key = content_hash("float", asdict(model), asdict(self.config.data), qat.threads,
                           {k: v for k, v in asdict(settings).items()
                            if k not in ("device", "progress", "num_workers")})
        path = self.checkpoint_dir / f"float-{key[:16]}.pt"
        if not path.is_file():
            print(f"training the float {model.name} ({qat.float_epochs} epochs)", file=sys.stderr)
            task = Task(key, float_training, (model, self.data_spec, settings, str(path),
                                              qat.threads), kind="qat")
            outcome = next(iter((executor or SerialExecutor()).run([task])))
            if not outcome.ok:
                raise ConfigError(f"float training failed: {outcome.error}", field="qat",
                                  fix="check the data and qat settings, or give "
                                      "qat.float_checkpoint")
        return path

    def model_spec(self) -> object:
        from .qat.train import ModelSpec
        model = self.config.model
        return ModelSpec(model.name, model.width_mult, self.num_classes, model.relu6)

    def key(self, genome: Genome, phase: str) -> str:
        """(model, data, QAT settings, float start, bits): the identity of one accuracy."""
        self.float_checkpoint()
        assert self._checkpoint is not None
        settings = {k: v for k, v in asdict(self.settings(phase)).items()
                    if k not in ("device", "progress", "num_workers")}
        return content_hash("accuracy", asdict(self.config.model), asdict(self.config.data),
                            settings, self.config.qat.threads, self._checkpoint[1],
                            [list(p) for p in genome])

    def get(self, genome: Genome, phase: str) -> AccuracyResult | None:
        return self.store.get_accuracy(self.key(genome, phase))

    def ensure(self, genomes: Sequence[Genome], phase: str, executor: Executor,
               desc: str) -> None:
        """QAT every genome not yet stored for ``phase``, with a progress bar and ETA."""
        self.float_checkpoint(executor)
        missing = {self.key(g, phase): g for g in genomes if self.get(g, phase) is None}
        if not missing:
            return
        tasks = [Task(key, qat_accuracy, (self.config.model.name, genome, self.data_spec,
                                          self.settings(phase), self.float_checkpoint(),
                                          self.config.qat.threads),
                      kind="qat") for key, genome in missing.items()]
        with tqdm(total=len(tasks), desc=f"{desc} QAT", unit="cand", file=sys.stderr) as bar:
            for outcome in executor.run(tasks):
                bar.update(1)
                genome = missing[outcome.key]
                if outcome.ok:
                    self.store.put_accuracy(AccuracyResult(outcome.key, genome,
                                                           float(outcome.value), phase))
                    continue
                self.store.put_failure(outcome.key, "qat", outcome.error, outcome.attempts)
                if outcome.user_error and outcome.error_type != "DataError":
                    # e.g. training diverged: a property of this bit config, a useless net
                    self.store.put_accuracy(AccuracyResult(outcome.key, genome, 0.0,
                                                           f"{phase}-failed"))


# ---------------------------------------------------------------------------------------------
# The experiment


@dataclass(frozen=True)
class Candidate:
    """Everything known about one scored bit configuration."""

    genome: Genome
    hardware: HardwareTotals
    accuracy: AccuracyResult | None

    def objective(self, name: str) -> float:
        if name == "accuracy":
            return math.nan if self.accuracy is None else self.accuracy.accuracy
        return self.hardware.objective(name)

    def values(self, objectives: Sequence[Objective]) -> tuple[float, ...]:
        """Objective values for the search; a candidate whose accuracy could not be computed
        (a crashed QAT job, retried by the next run) or whose hardware cost is unknown (a layer
        without a valid mapping) gets the worst value everywhere, so it can never sit on a front
        (memory alone would otherwise look finite)."""
        accuracy_missing = any(o.name == "accuracy" for o in objectives) and self.accuracy is None
        if accuracy_missing or not self.hardware.valid:
            return tuple(-math.inf if o.maximize else math.inf for o in objectives)
        return tuple(self.objective(o.name) for o in objectives)


def build_archs(arch: ArchConfig, folder: Path) -> dict[str, Arch]:
    """One Arch per problem-shape name: depthwise layers need constraints adapted to their
    shape (no M). A template is rendered into ``folder`` so the results hold the exact spec."""
    if arch.files:
        paths = [Path(p) for p in arch.files]
    else:
        paths = write_arch(arch.template, dict(arch.params), folder)
    data, origin = load_specs(paths)
    source = origin.get("architecture", str(paths[0]))
    return {shape.name: arch_from_dict(adapt_constraints_for_shape(data, shape), source)
            for shape in (CNN_LAYER_SHAPE, DEPTHWISE_SHAPE)}


class Experiment:
    """A validated experiment bound to a results folder: arch, layers, store, cost models."""

    def __init__(self, config: ExperimentConfig, out_dir: str | Path) -> None:
        self.config = config
        self.out = Path(out_dir)
        self.data_spec, num_classes = self._data()
        self.layers: list[Layer] = self._layers(num_classes)
        self.archs = build_archs(config.arch, self.out / "arch")
        self._check_bits()
        self.objectives = tuple(Objective(name, maximize=name == "accuracy")
                                for name in config.search.objectives)
        store_path = Path(config.store) if config.store else self.out / STORE_NAME
        self.store = Store(store_path)
        run_on = config.executor
        self.executor = make_executor(run_on.kind, workers=run_on.workers,
                                      retries=run_on.retries, address=run_on.address,
                                      qat_gpus=run_on.qat_gpus)
        self.hardware = HardwareCost(
            archs=self.archs, layers=self.layers, engine=config.engine.name,
            engine_options=config.engine.options, settings=config.mapper, store=self.store,
            executor=self.executor, last_outputs_bits=config.search.last_outputs_bits)
        self.accuracy = Accuracy(config, self.data_spec, num_classes, self.store,
                                 store_path.parent / "checkpoints")
        self.run_id = config.run_id()

    def close(self) -> None:
        self.executor.close()
        self.store.close()

    # -- validation and set-up (no training, no mapping) ---------------------------------------

    def _check_bits(self) -> None:
        """Every searched width must fit every storage word (b > W is invalid hardware)."""
        arch = next(iter(self.archs.values()))
        narrowest = min(level.word_bits for level in arch.levels)
        widest = max((*self.config.search.bits, self.config.search.last_outputs_bits))
        if widest > narrowest:
            raise PrecisionError(f"bit width {widest} is wider than the {narrowest}-bit words of "
                                 f"'{arch.name}'", field="search.bits",
                                 fix=f"use widths up to {narrowest}")

    def _data(self) -> tuple[object, int]:
        """The data spec and class count; loading it checks the folder up front."""
        from .qat.data import DataSpec
        data = self.config.data
        spec = DataSpec(kind=data.kind, root=data.root, resolution=data.resolution,
                        seed=self.config.seed, val_fraction=data.val_fraction,
                        max_classes=data.max_classes)
        return spec, _bundle(spec).num_classes  # type: ignore[attr-defined]

    def _layers(self, num_classes: int) -> list[Layer]:
        model = self.config.model
        extra = {} if model.relu6 is None else {"relu6": model.relu6}
        net = build_model(model.name, width_mult=model.width_mult, num_classes=num_classes,
                          **extra)
        return extract_layers(net, self.config.data.resolution)

    # -- scoring -----------------------------------------------------------------------------

    @property
    def uses_accuracy(self) -> bool:
        return "accuracy" in self.config.search.objectives

    def phase(self, generation: int) -> str:
        return self.accuracy.phase(generation) if self.uses_accuracy else "hardware"

    def candidate(self, genome: Genome, phase: str | None = None) -> Candidate:
        """A candidate from stored results only (accuracy None when not computed)."""
        phase = phase or self.accuracy.phase(self.config.search.generations)
        accuracy = self.accuracy.get(genome, phase) if self.uses_accuracy else None
        return Candidate(genome, self.hardware.totals(genome), accuracy)

    def score(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        """The search's evaluator: map missing layers, QAT missing candidates, read totals."""
        total = self.config.search.generations
        desc = f"gen {generation}/{total}"
        unique = list(dict.fromkeys(genomes))
        groups = self.hardware.missing(unique)
        if groups:
            with tqdm(total=len(groups), desc=f"{desc} mapper", unit="job",
                      file=sys.stderr) as bar:
                self.hardware.compute(groups, bar.update)
        phase = self.phase(generation)
        if self.uses_accuracy:
            self.accuracy.ensure(unique, phase, self.executor, desc)
        candidates = {g: self.candidate(g, phase) for g in unique}
        values = [candidates[g].values(self.objectives) for g in genomes]
        self.store.put_evaluations(self.run_id, generation, phase, list(zip(genomes, values)))
        return values

    def search(self, resume: bool = False) -> SearchResult:
        """Run (or continue) the NSGA-II search with this experiment as its evaluator."""
        return nsga2(len(self.layers), self.objectives, _Scorer(self), self.config.search,
                     seed=self.config.seed, store=self.store, run=self.run_id, resume=resume)


class _Scorer:
    """Adapts an Experiment to the search's Evaluator protocol."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment

    def __call__(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        return self.experiment.score(genomes, generation)

    def phase(self, generation: int) -> str:
        return self.experiment.phase(generation)


# ---------------------------------------------------------------------------------------------
# Command line


def resolve_config(config_path: str | None, overrides: dict[str, object], out: Path,
                   resume: bool) -> ExperimentConfig:
    """The experiment to run: with --resume the results folder's own config (plus overrides)."""
    if resume:
        saved = out / CONFIG_NAME
        if not saved.is_file() or not (out / STORE_NAME).is_file():
            raise ConfigError("nothing to resume in this folder", file=str(out), field="--resume",
                              fix="give the -o folder of an earlier run, or drop --resume")
        return load_config(config_path or saved, overrides)
    return load_config(config_path, overrides)


def run_experiment(config: ExperimentConfig, out: Path, resume: bool = False) -> Path:
    """Validate, search, report (and fine-tune); returns the results folder."""
    from .report import finetune, write_report

    started = time.perf_counter()
    experiment = Experiment(config, out)
    try:
        save_config(config, out / CONFIG_NAME)
        result = experiment.search(resume=resume)
        front = write_report(experiment, result, seconds=time.perf_counter() - started)
        if config.finetune.points > 0 and experiment.uses_accuracy:
            finetune(experiment, front, config.finetune.points, config.finetune.epochs)
    finally:
        experiment.close()
    return out


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message, field="command line", fix=f"see '{self.prog} --help'")


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m wrapper.explore",
                     description="Joint NSGA-II search of per-layer bit widths and mappings.")
    parser.add_argument("--config", help="experiment YAML (default: the built-in demo)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. search.generations=10 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in the -o folder")
    parser.add_argument("-o", "--out", help="results folder (default: results/<name>)")
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="where mapper and QAT jobs run (default: local process pool)")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="an existing Ray cluster (host:port or 'auto'; implies --executor "
                             "ray); without it --executor ray starts a local instance")
    return parser


def executor_overrides(executor: str | None, ray_address: str | None) -> dict[str, object]:
    """The config overrides of --executor / --ray-address (a cluster address implies Ray)."""
    overrides: dict[str, object] = {}
    if executor is not None or ray_address is not None:
        overrides["executor.kind"] = executor or "ray"
    if ray_address is not None:
        overrides["executor.address"] = ray_address
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        overrides = {**parse_set_options(args.set),
                     **executor_overrides(args.executor, args.ray_address)}
        if args.out:
            out = Path(args.out)
        else:
            out = Path("results") / load_config(args.config, overrides).name
        config = resolve_config(args.config, overrides, out, args.resume)
        folder = run_experiment(config, out, resume=args.resume)
    except QuantMapError as exc:
        return report_error(exc)
    print(f"results: {folder.resolve()} (pareto.csv, pareto.json, candidates.csv, plots/, "
          "mappings/, report.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
