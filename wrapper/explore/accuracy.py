"""The accuracy objective: QAT jobs and the store-backed accuracy of bit configurations.

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
from ..qat.settings import ModelSpec, TrainSettings
from ..spec.hashing import content_hash
from .config import ExperimentConfig
from .executors import Executor, SerialExecutor, Task
from .nsga2 import Genome
from .store import AccuracyResult, Store


@lru_cache(maxsize=2)
def cached_data(spec: object) -> object:
    """Loaded data per process (a QAT job reuses it instead of re-reading the files)."""
    from ..qat.data import load_data  # heavy (torch): imported only when accuracy is needed
    return load_data(spec)  # type: ignore[arg-type]


def qat_accuracy(model: str, bits: Genome, data_spec: object, settings: object,
                 checkpoint: str, threads: int) -> float:
    """The QAT job: top-1 after fine-tuning ``bits`` from the float checkpoint, on a fixed
    number of threads (the result depends on it, and oversubscribed cores slow PyTorch 5x)."""
    import torch

    from ..qat.train import evaluate_bit_config
    torch.set_num_threads(threads)
    return evaluate_bit_config(model, bits, cached_data(data_spec), settings,  # type: ignore[arg-type]
                               checkpoint)


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
    BatchNorm re-estimation batches and the validation split; a probe (``trained`` False) does
    one re-estimation and one validation pass; ``n_test`` the final evaluation's test pass."""
    batch = settings.batch_size
    calibration = min(n_train, max(1, settings.calibration_batches) * batch)
    recalibration = min(n_train, settings.bn_recalibration_batches * batch)
    train = (n_train // batch) * batch if n_train > batch else n_train
    epoch = recalibration + n_val + (train if trained else 0)
    return calibration + (settings.epochs if trained else 1) * epoch + n_test


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

    def settings(self, phase: str, epochs: int | None = None) -> TrainSettings:
        """The QAT settings of one job of ``phase`` (or of ``epochs`` epochs)."""
        qat = self.config.qat
        if epochs is None:
            epochs = qat.proxy_epochs if phase.startswith("proxy") else qat.epochs
        return qat.train_settings(epochs)

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

    def model_spec(self) -> ModelSpec:
        """The configured net with as many classes as the data has."""
        return replace(self.config.model, num_classes=self.num_classes)

    def _key(self, kind: str, genome: Genome, settings: TrainSettings) -> str:
        """(kind, model, data, QAT settings, float start, bits): the identity of one accuracy."""
        self.float_checkpoint()
        assert self._checkpoint is not None
        plain = {k: v for k, v in asdict(settings).items()
                 if k not in ("device", "progress", "num_workers")}
        return content_hash(kind, asdict(self.config.model), asdict(self.config.data),
                            plain, self.config.qat.threads, self._checkpoint[1],
                            [list(p) for p in genome])

    def key(self, genome: Genome, phase: str) -> str:
        """The store key of the search's validation score of ``genome`` in ``phase``."""
        return self._key("accuracy", genome, self.settings(phase))

    def get(self, genome: Genome, phase: str) -> AccuracyResult | None:
        return self.store.get_accuracy(self.key(genome, phase))

    def ensure(self, genomes: Sequence[Genome], phase: str, executor: Executor,
               desc: str) -> None:
        """QAT every genome not yet stored for ``phase``, with a progress bar and ETA."""
        self.float_checkpoint(executor)
        settings = self.settings(phase)
        cost = self.equivalents(settings)
        jobs = {self.key(g, phase): (g, phase, (self.config.model.name, g, self.data_spec,
                                                 settings, self.float_checkpoint(),
                                                 self.config.qat.threads), cost)
                for g in genomes if self.get(g, phase) is None}
        self._run(jobs, qat_accuracy, executor, f"{desc} QAT", tested=False)

    # -- per-layer sensitivity: one layer at a time at the lowest width, no training ---------

    def probes(self, n_layers: int) -> list[tuple[str, Genome]]:
        """(store key, genome) of each layer's sensitivity probe: that layer alone at the lowest
        searched width, every other layer at the widest."""
        bits = self.config.search.bits
        low, high = min(bits), max(bits)
        settings = self.settings(self.phase(0))
        genomes = [tuple((low, low) if i == layer else (high, high) for i in range(n_layers))
                   for layer in range(n_layers)]
        return [(self._key("sensitivity", g, settings), g) for g in genomes]

    def spent(self, keys: Sequence[str]) -> float:
        """QAT-run equivalents the stored accuracies under ``keys`` cost (missing ones and
        rows of a store that predates cost records count 0)."""
        results = (self.store.get_accuracy(key) for key in dict.fromkeys(keys))
        return round(sum(r.equivalents or 0.0 for r in results if r is not None), 3)

    def sensitivity_ranking(self, n_layers: int, executor: Executor) -> list[int]:
        """Layer indices, most quantization-sensitive first: each layer alone at the lowest
        searched width (every other layer at the widest), scored on validation without
        training. Stored like any accuracy, so a resumed run reuses the probes."""
        low = min(self.config.search.bits)
        settings = self.settings(self.phase(0))
        self.float_checkpoint(executor)
        probes = self.probes(n_layers)
        cost = self.equivalents(settings, trained=False)
        jobs = {key: (genome, f"ptq-w{low}", (genome, self.data_spec, settings,
                                               self.float_checkpoint(), self.config.qat.threads),
                      cost)
                for key, genome in probes if self.store.get_accuracy(key) is None}
        self._run(jobs, ptq_accuracy, executor, "layer sensitivity", tested=False)
        scores = [self.store.get_accuracy(key) for key, _ in probes]
        accuracy = [s.accuracy if s is not None else 0.0 for s in scores]
        return sorted(range(n_layers), key=lambda i: (accuracy[i], i))

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
