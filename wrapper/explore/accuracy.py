"""The accuracy objective: QAT jobs and the store-backed accuracy of bit configurations.

Three fidelity levels (docs/search.md): the sensitivity probes (no training, on
``search.probe_fraction`` of the calibration batches and validation split), the screens (QAT on
``search.screen_fraction`` of one epoch) and the full QAT the front is made of. A search QAT job
may start from the weights of the nearest configuration the run trained fully
(``search.warm_start``); the key of its accuracy names that start, and every fully trained net is
kept under the store's checkpoints folder so a resumed run finds the same starts.

PyTorch and the QAT package are imported inside the job functions only: they are heavy, and a
hardware-only experiment (no accuracy objective) never needs them.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from ..errors import ConfigError
from ..qat.settings import ModelSpec, TrainSettings, portion
from ..spec.hashing import content_hash
from .config import ExperimentConfig
from .executors import Executor, SerialExecutor, Task
from .nsga2 import Genome, Shared
from .store import AccuracyResult, Store


@lru_cache(maxsize=2)
def cached_data(spec: object) -> object:
    """Loaded data per process (a QAT job reuses it instead of re-reading the files)."""
    from ..qat.data import load_data  # heavy (torch): imported only when accuracy is needed
    return load_data(spec)  # type: ignore[arg-type]


def qat_accuracy(model: str, bits: Genome, data_spec: object, settings: object,
                 checkpoint: str, threads: int, warm: str | None = None,
                 out: str | None = None) -> float:
    """The QAT job: top-1 after fine-tuning ``bits`` from the float checkpoint (its weights
    replaced by those of the QAT checkpoint ``warm`` when given; the trained net written to
    ``out`` when given), on a fixed number of threads (the result depends on it, and
    oversubscribed cores slow PyTorch 5x)."""
    import torch

    from ..qat.train import evaluate_bit_config
    torch.set_num_threads(threads)
    return evaluate_bit_config(model, bits, cached_data(data_spec), settings,  # type: ignore[arg-type]
                               checkpoint, warm=warm, out=out)


def ptq_accuracy(bits: Genome, data_spec: object, settings: object, checkpoint: str,
                 threads: int) -> float:
    """The sensitivity probe job: validation top-1 of ``bits`` without training."""
    import torch

    from ..qat.train import post_training_accuracy
    torch.set_num_threads(threads)
    return post_training_accuracy(checkpoint, bits, cached_data(data_spec),  # type: ignore[arg-type]
                                  settings)


def final_accuracy(bits: Genome, data_spec: object, settings: object, checkpoint: str,
                   threads: int) -> tuple[float, float]:
    """The final-evaluation job: QAT of ``bits`` from the float checkpoint with one fresh seed
    (``settings.seed``); returns (validation top-1, test top-1). Only this job reads the test
    split, and only after the search has finished selecting."""
    import torch

    from ..qat.train import evaluate_checkpoint, finetune
    torch.set_num_threads(threads)
    data = cached_data(data_spec)
    result = finetune(checkpoint, bits, data, settings)  # type: ignore[arg-type]
    return result.top1, evaluate_checkpoint(result.checkpoint, data, settings,  # type: ignore[arg-type]
                                            split="test")


def float_training(model: object, data_spec: object, settings: object, path: str,
                   threads: int) -> float:
    """The float pre-training job (once per model and data): writes the checkpoint, returns
    its top-1."""
    import torch

    from ..qat.train import train_float
    torch.set_num_threads(threads)
    return train_float(model, cached_data(data_spec), settings, out=path).top1  # type: ignore[arg-type]


def samples_processed(settings: TrainSettings, n_train: int, n_val: int, n_test: int = 0, *,
                      trained: bool = True) -> int:
    """Samples one accuracy job passes through the net, the unit its cost is counted in: the
    activation calibration batches, then per epoch the training split (full batches only), the
    BatchNorm re-estimation batches and the validation split, each cut to its
    ``settings.fraction`` as the trainer cuts it; a probe (``trained`` False) does one
    re-estimation and one validation pass; ``n_test`` the final evaluation's test pass."""
    batch, share = settings.batch_size, settings.fraction
    calibration = min(n_train, portion(max(1, settings.calibration_batches), share) * batch)
    recalibration = min(n_train, portion(settings.bn_recalibration_batches, share) * batch)
    train = portion(n_train // batch, share) * batch if n_train > batch else n_train
    epoch = recalibration + portion(n_val, share) + (train if trained else 0)
    return calibration + (settings.epochs if trained else 1) * epoch + n_test


def identity(settings: TrainSettings) -> dict[str, object]:
    """The settings that decide a run's result: not where or how visibly it runs, and
    ``fraction`` only when it cuts the run (so full runs keep the keys they always had)."""
    dropped = {"device", "progress", "num_workers", *(("fraction",) if settings.fraction >= 1.0
                                                      else ())}
    return {k: v for k, v in asdict(settings).items() if k not in dropped}


def distance(first: Genome, second: Genome) -> int:
    """How far apart two configurations are: the summed per-layer, per-operand bit difference."""
    return sum(abs(a - b) for x, y in zip(first, second) for a, b in zip(x, y))


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

    def equivalents(self, settings: TrainSettings, trained: bool = True,
                    tested: bool = False) -> float:
        """The cost of one job in QAT-run equivalents: its samples processed relative to one
        full one-epoch QAT run of this experiment (the search's unit of budget)."""
        data = cached_data(self.data_spec)
        sizes = (len(data.train), len(data.val))  # type: ignore[attr-defined]
        test = len(data.test) if tested and data.test is not None else 0  # type: ignore[attr-defined]
        unit = samples_processed(self.config.qat.train_settings(1), *sizes)
        return samples_processed(settings, *sizes, test, trained=trained) / unit

    def phase(self, generation: int) -> str:
        """The accuracy source of a generation, e.g. 'qat-3ep' or 'proxy-qat-1ep'."""
        qat = self.config.qat
        if generation < qat.proxy_generations:
            return f"proxy-qat-{qat.proxy_epochs}ep"
        return f"qat-{qat.epochs}ep"

    def screen_phase(self) -> str:
        """The accuracy source of a screen, e.g. 'screen-qat-0.25ep'."""
        return f"screen-qat-{self.config.search.screen_fraction:g}ep"

    def settings(self, phase: str, epochs: int | None = None) -> TrainSettings:
        """The QAT settings of one job of ``phase`` (or of ``epochs`` epochs); a screen is
        screen_fraction of a one-epoch run."""
        qat = self.config.qat
        if is_screen(phase):
            return replace(qat.train_settings(1), fraction=self.config.search.screen_fraction)
        if epochs is None:
            epochs = qat.proxy_epochs if phase.startswith("proxy") else qat.epochs
        return qat.train_settings(epochs)

    def trained_path(self, key: str) -> Path:
        """Where the net a full search QAT run trained is kept (the warm starts of later runs)."""
        return self.checkpoint_dir / f"qat-{key[:16]}.pt"

    def parent(self, genome: Genome, trained: Sequence[tuple[Genome, str]]) -> str | None:
        """The accuracy key of the warm start of ``genome``: of all fully trained (genome, key)
        pairs whose net is kept, the nearest in bits (`distance`), the earliest on ties;
        None without search.warm_start or without such a pair (then QAT starts from float)."""
        if not self.config.search.warm_start:
            return None
        options = [(distance(genome, other), index, key)
                   for index, (other, key) in enumerate(trained)
                   if other != genome and self.trained_path(key).is_file()]
        return min(options)[2] if options else None

    def float_checkpoint(self, executor: Executor | None = None) -> str:
        """The float starting point: the configured file, or one trained (once) and stored."""
        if self._checkpoint is None:
            path = self.config.qat.float_checkpoint or str(self._train_float(executor))
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            self._checkpoint = (path, digest)
        return self._checkpoint[0]

    def _train_float(self, executor: Executor | None) -> Path:
        model = self.model_spec()
        qat = self.config.qat
        settings = replace(qat.train_settings(qat.float_epochs), lr=qat.float_lr)
        key = content_hash("float", asdict(model), asdict(self.config.data), qat.threads,
                           identity(settings))
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

    def model_spec(self) -> ModelSpec:
        """The configured net with as many classes as the data has."""
        return replace(self.config.model, num_classes=self.num_classes)

    def _key(self, kind: str, genome: Genome, settings: TrainSettings, *start: str) -> str:
        """(kind, model, data, QAT settings, float start, bits[, warm start]): the identity of
        one accuracy."""
        self.float_checkpoint()
        assert self._checkpoint is not None
        return content_hash(kind, asdict(self.config.model), asdict(self.config.data),
                            identity(settings), self.config.qat.threads, self._checkpoint[1],
                            [list(p) for p in genome], *start)

    def key(self, genome: Genome, phase: str, parent: str | None = None) -> str:
        """The store key of the search's validation score of ``genome`` in ``phase``, warm-
        started from the net of the accuracy keyed ``parent`` (None: from float)."""
        return self._key("accuracy", genome, self.settings(phase),
                         *(() if parent is None else (parent,)))

    def ensure(self, entries: Sequence[tuple[Genome, str, str | None]], phase: str,
               executor: Executor, desc: str) -> None:
        """QAT every (genome, key, parent key) not yet stored for ``phase``, with a progress
        bar and ETA; a full run keeps its trained net (`trained_path`)."""
        self.float_checkpoint(executor)
        settings = self.settings(phase)
        cost = self.equivalents(settings)
        jobs = {key: (genome, phase,
                      (self.config.model.name, genome, self.data_spec, settings,
                       self.float_checkpoint(), self.config.qat.threads,
                       None if parent is None else str(self.trained_path(parent)),
                       None if is_screen(phase) else str(self.trained_path(key))), cost)
                for genome, key, parent in entries if self.store.get_accuracy(key) is None}
        kind = "screen" if is_screen(phase) else "QAT"
        self._run(jobs, qat_accuracy, executor, f"{desc} {kind}", tested=False)

    # -- per-layer sensitivity: one layer at a time at the lowest width, no training ---------

    def probes(self, n_layers: int, shared: Shared = ()) -> list[tuple[str, Genome]]:
        """(store key, genome) of each layer's sensitivity probe: that layer alone at the lowest
        searched width, every other layer at the widest (the calls of a module in ``shared``
        together, since they share one pair)."""
        bits = self.config.search.bits
        low, high = min(bits), max(bits)
        settings = self.probe_settings()
        together = {i: set(group) for group in shared for i in group}
        genomes = [tuple((low, low) if i in together.get(layer, {layer}) else (high, high)
                         for i in range(n_layers))
                   for layer in range(n_layers)]
        return [(self._key("sensitivity", g, settings), g) for g in genomes]

    def probe_settings(self) -> TrainSettings:
        """The probes' settings: the first generation's, cut to search.probe_fraction."""
        return replace(self.settings(self.phase(0)),
                       fraction=self.config.search.probe_fraction)

    def spent(self, keys: Sequence[str]) -> float:
        """QAT-run equivalents the stored accuracies under ``keys`` cost (missing ones and
        rows of a store that predates cost records count 0)."""
        results = (self.store.get_accuracy(key) for key in dict.fromkeys(keys))
        return round(sum(r.equivalents or 0.0 for r in results if r is not None), 3)

    def probe_accuracies(self, n_layers: int, shared: Shared, executor: Executor) -> list[float]:
        """Per layer the validation top-1 of that layer alone at the lowest searched width
        (every other layer at the widest), without training: the first fidelity level. Stored
        like any accuracy, so a resumed run reuses the probes."""
        low = min(self.config.search.bits)
        settings = self.probe_settings()
        self.float_checkpoint(executor)
        probes = self.probes(n_layers, shared)
        cost = self.equivalents(settings, trained=False)
        jobs = {key: (genome, f"ptq-w{low}", (genome, self.data_spec, settings,
                                               self.float_checkpoint(), self.config.qat.threads),
                      cost)
                for key, genome in probes if self.store.get_accuracy(key) is None}
        self._run(jobs, ptq_accuracy, executor, "layer sensitivity", tested=False)
        scores = [self.store.get_accuracy(key) for key, _ in probes]
        return [s.accuracy if s is not None else 0.0 for s in scores]

    # -- the final evaluation: fresh seeds, validation and test ------------------------------

    def final_settings(self, index: int) -> TrainSettings:
        """QAT settings of the index-th final seed: qat.seed + 1 + index, so never the seed
        whose lucky scores the search selected."""
        qat, final = self.config.qat, self.config.final
        return replace(qat.train_settings(final.epochs or qat.epochs), seed=qat.seed + 1 + index)

    def final_keys(self, genome: Genome) -> list[str]:
        return [self._key("final", genome, self.final_settings(i))
                for i in range(self.config.final.seeds)]

    def get_final(self, genome: Genome) -> list[AccuracyResult | None]:
        """The final evaluation of ``genome``, one result per fresh seed (None: not run)."""
        return [self.store.get_accuracy(key) for key in self.final_keys(genome)]

    def ensure_final(self, genomes: Sequence[Genome], executor: Executor) -> None:
        """Retrain every genome with every final seed not yet stored (validation and test)."""
        self.float_checkpoint(executor)
        jobs = {}
        for genome in dict.fromkeys(genomes):
            for index, key in enumerate(self.final_keys(genome)):
                if self.store.get_accuracy(key) is None:
                    settings = self.final_settings(index)
                    jobs[key] = (genome, f"retrain-{settings.epochs}ep-seed{settings.seed}",
                                 (genome, self.data_spec, settings, self.float_checkpoint(),
                                  self.config.qat.threads),
                                 self.equivalents(settings, tested=True))
        self._run(jobs, final_accuracy, executor, "final evaluation", tested=True)

    def _run(self, jobs: dict[str, tuple[Genome, str, tuple[object, ...], float]],
             fn: Callable[..., float | tuple[float, float]], executor: Executor, desc: str,
             tested: bool) -> None:
        """Run QAT jobs (key -> genome, source, arguments of ``fn``, cost in QAT-run
        equivalents) and store each outcome with its cost; ``fn`` returns a validation top-1,
        or (validation, test) top-1 when ``tested``."""
        if not jobs:
            return
        tasks = [Task(key, fn, args, kind="qat") for key, (_, _, args, _) in jobs.items()]
        with tqdm(total=len(tasks), desc=desc, unit="run", file=sys.stderr) as bar:
            for outcome in executor.run(tasks):
                bar.update(1)
                genome, source, _, cost = jobs[outcome.key]
                if outcome.ok:
                    val, test = outcome.value if tested else (outcome.value, None)
                    self.store.put_accuracy(AccuracyResult(
                        outcome.key, genome, float(val), source,
                        None if test is None else float(test), cost))
                    continue
                self.store.put_failure(outcome.key, "qat", outcome.error, outcome.attempts)
                if outcome.user_error and outcome.error_type != "DataError":
                    # e.g. training diverged: a property of this bit config, a useless net
                    self.store.put_accuracy(AccuracyResult(outcome.key, genome, 0.0,
                                                           f"{source}-failed",
                                                           0.0 if tested else None, cost))


def is_screen(phase: str) -> bool:
    """Whether ``phase`` names a screen (a cheap QAT that only decides who gets a full one)."""
    return phase.startswith("screen")
