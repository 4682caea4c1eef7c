"""The main job: joint search of per-layer bit widths and mappings.

An `Experiment` is assembled in explicit steps: the constructor only keeps the settings;
`prepare` checks everything that needs no training or mapping (data folder, model tracing,
architecture rendering, word widths); `open` opens the store and starts the executor. Then the
configured search (the paper's NSGA-II or the guided search) runs with every
mapper run and QAT run stored in ``DIR/store.sqlite``, so
``--resume`` (or any later run with the same settings) recomputes nothing. The search selects on
validation accuracy only; then `evaluate_final` retrains chosen front points and the uniform
references with fresh seeds and scores them on validation and test, and `collect` turns it all
into a `RunResult` from which the report is written.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..errors import ConfigError, PrecisionError
from ..network.layers import Layer, trace_model
from ..network.registry import build_network, check_class_count
from ..spec.arch import Arch, arch_from_dict
from ..spec.constraints import adapt_constraints_for_shape
from ..spec.problem import CNN_LAYER_SHAPE, DEPTHWISE_SHAPE, GROUPED_SHAPE
from ..spec.templates import write_arch
from ..spec.yamlio import load_specs
from .accuracy import Accuracy, cached_data, is_screen
from .config import ArchConfig, ExperimentConfig, load_config, save_config
from .executors import Executor, make_executor
from .guided import guided, probe_weights
from .hardware import HardwareCost, layer_precisions
from .nsga2 import (Genome, Objective, SearchResult, Shared, nsga2, protected_genomes,
                    shared_layers, uniform_genomes)
from .report import write_report
from .results import Candidate, FrontPoint, Reference, RunResult, SeedScores, point_id
from .selection import choose_final
from .store import Store

STORE_NAME = "store.sqlite"
CONFIG_NAME = "config.yaml"


def build_archs(arch: ArchConfig, folder: Path) -> dict[str, Arch]:
    """One Arch per problem-shape name: depthwise (no M) and grouped layers (G) need
    constraints adapted to their shape. A template is rendered into ``folder`` so the results hold the exact spec."""
    if arch.files:
        paths = [Path(p) for p in arch.files]
    else:
        paths = write_arch(arch.template, dict(arch.params), folder)
    data, origin = load_specs(paths)
    source = origin.get("architecture", str(paths[0]))
    return {shape.name: arch_from_dict(adapt_constraints_for_shape(data, shape), source)
            for shape in (CNN_LAYER_SHAPE, DEPTHWISE_SHAPE, GROUPED_SHAPE)}


class Experiment:
    """A validated experiment bound to a results folder: arch, layers, store, cost models.

    Use it as a context manager (``with Experiment(config, out) as experiment:``), which runs
    `prepare` and `open` and closes the store and executor at the end.
    """

    def __init__(self, config: ExperimentConfig, out_dir: str | Path) -> None:
        self.config = config
        self.out = Path(out_dir)
        self.run_id = config.run_id()
        self.objectives = tuple(Objective(name, maximize=name == "accuracy")
                                for name in config.search.objectives)
        self.store_path = Path(config.store) if config.store else self.out / STORE_NAME
        self.data_spec: object | None = None
        self.num_classes = 0
        self.layers: list[Layer] = []
        self.shared: Shared = ()  # layers that are calls of one module (one (A, W) pair)
        self.archs: dict[str, Arch] = {}
        self.store: Store | None = None
        self.executor: Executor | None = None
        self.hardware: HardwareCost | None = None
        self.accuracy: Accuracy | None = None

    def __enter__(self) -> "Experiment":
        self.prepare()
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception) \
                and self.executor is not None:  # Ctrl-C or SIGTERM: stop the jobs now
            self.executor.terminate()
        self.close()

    def prepare(self) -> None:
        """Load the data, trace the net, render the arch and check the word widths (no
        training, no mapping): every setup error surfaces here, before any work."""
        self.data_spec, self.num_classes = self._data()
        self.layers, self.shared = self._layers(self.num_classes)
        self.archs = build_archs(self.config.arch, self.out / "arch")
        self._check_bits()

    def open(self) -> None:
        """Open the store, start the executor and bind the hardware and accuracy sources."""
        config = self.config
        self.store = Store(self.store_path)
        run_on = config.executor
        self.executor = make_executor(run_on.kind, workers=run_on.workers,
                                      retries=run_on.retries, address=run_on.address,
                                      qat_gpus=run_on.qat_gpus)
        self.hardware = HardwareCost(
            archs=self.archs, layers=self.layers, engine=config.engine.name,
            engine_options=config.engine.cost_model_options(), settings=config.mapper,
            store=self.store,
            executor=self.executor, last_outputs_bits=config.search.last_outputs_bits)
        self.accuracy = Accuracy(config, self.data_spec, self.num_classes, self.store,
                                 self.store_path.parent / "checkpoints")

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
        if self.store is not None:
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
        spec = self.config.data
        return spec, cached_data(spec).num_classes  # type: ignore[attr-defined]

    def _layers(self, num_classes: int) -> tuple[list[Layer], Shared]:
        """The net's layers in call order, and which of them call one module."""
        model = replace(self.config.model, num_classes=num_classes)
        net = build_network(model.name, **model.network_args())
        check_class_count(net, model.name, num_classes, self.config.data.resolution)
        traced = trace_model(net, self.config.data.resolution,
                             skip_unsupported=model.skip_unsupported)
        return [t.layer for t in traced], shared_layers([t.module_name for t in traced])

    # -- scoring -----------------------------------------------------------------------------

    @property
    def uses_accuracy(self) -> bool:
        return "accuracy" in self.config.search.objectives

    def phase(self, generation: int) -> str:
        return self.accuracy.phase(generation) if self.uses_accuracy else "hardware"

    def candidate(self, genome: Genome, phase: str | None = None,
                  keys: dict[tuple[Genome, str], tuple[str, str | None]] | None = None
                  ) -> Candidate:
        """A candidate from stored results only (accuracy None when not computed), its
        accuracy looked up under this run's key (`accuracy_keys`, computed when not given)."""
        phase = phase or self.accuracy.phase(self.config.search.generations)
        accuracy = None
        if self.uses_accuracy:
            entry = (keys if keys is not None else self.accuracy_keys()).get((genome, phase))
            accuracy = None if entry is None else self.store.get_accuracy(entry[0])
        return Candidate(genome, self.hardware.totals(genome), accuracy)

    @property
    def screen_run(self) -> str:
        """Where the store keeps this run's screens (apart from its full evaluations)."""
        return f"{self.run_id}:screen"

    def run_evaluations(self) -> list[tuple[int, Genome, tuple[float, ...], str]]:
        """Every evaluation of this run, screens and full ones, by generation (a generation's
        screens first, as they ran)."""
        rows = self.store.evaluations(self.screen_run) + self.store.evaluations(self.run_id)
        return sorted(rows, key=lambda row: (row[0], not is_screen(row[3])))

    def accuracy_keys(self, pending: Sequence[tuple[int, Genome, str]] = ()
                      ) -> dict[tuple[Genome, str], tuple[str, str | None]]:
        """(accuracy key, warm start's key or None) of every (genome, phase) this run
        evaluated, and of ``pending`` (generation, genome, phase) ones about to be: with
        search.warm_start a key names its start, the nearest configuration trained fully in an
        earlier generation, so the keys are replayed from the stored evaluations in order (the
        same on resume)."""
        rows = [(g, genome, phase) for g, genome, _, phase in self.run_evaluations()]
        keys: dict[tuple[Genome, str], tuple[str, str | None]] = {}
        trained: list[tuple[Genome, str]] = []
        finished: list[tuple[Genome, str]] = []
        current = None
        for generation, genome, phase in sorted([*rows, *pending], key=lambda row: row[0]):
            if generation != current:
                trained += finished
                finished, current = [], generation
            if (genome, phase) in keys:
                continue
            parent = self.accuracy.parent(genome, trained)
            key = self.accuracy.key(genome, phase, parent)
            keys[genome, phase] = (key, parent)
            if not is_screen(phase):
                finished.append((genome, key))
        return keys

    def costs(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        """Exact hardware objectives without training (accuracy NaN): what the guided search
        ranks its pool by before it spends QAT runs."""
        unique = list(dict.fromkeys(genomes))
        self._map(unique, f"gen {generation}/{self.config.search.generations} pool mapper")
        totals = {g: self.hardware.totals(g) for g in unique}
        return [tuple(math.nan if o.name == "accuracy" else
                      (totals[g].objective(o.name) if totals[g].valid else math.inf)
                      for o in self.objectives) for g in genomes]

    def score(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        """The search's evaluator: map missing layers, QAT missing candidates, read totals."""
        total = self.config.search.generations
        desc = f"gen {generation}/{total}"
        values = self._evaluate(genomes, generation, self.phase(generation), desc)
        self.store.put_evaluations(self.run_id, generation, self.phase(generation),
                                   list(zip(genomes, values)))
        return values

    def _evaluate(self, genomes: Sequence[Genome], generation: int, phase: str,
                  desc: str) -> list[tuple[float, ...]]:
        """Map missing layers, QAT missing candidates at ``phase``, read the objectives."""
        unique = list(dict.fromkeys(genomes))
        self._map(unique, f"{desc} mapper")
        keys: dict[tuple[Genome, str], tuple[str, str | None]] = {}
        if self.uses_accuracy:
            keys = self.accuracy_keys([(generation, g, phase) for g in unique])
            self.accuracy.ensure([(g, *keys[g, phase]) for g in unique], phase, self.executor,
                                 desc)
        candidates = {g: self.candidate(g, phase, keys) for g in unique}
        return [candidates[g].values(self.objectives) for g in genomes]

    def screen(self, genomes: Sequence[Genome], generation: int) -> list[bool]:
        """Which genomes get a full QAT: with search.screen_fraction, each not yet trained
        fully is screened (a QAT on that share of an epoch), and kept when no screen of this
        run, earlier or in this batch, beats it by search.screen_margin in accuracy at no more
        hardware cost; one this run already trained fully is always kept. The first generation
        keeps at least two, so a population can breed."""
        search = self.config.search
        if not search.screen_fraction or not self.uses_accuracy:
            return [True] * len(genomes)
        phase = self.phase(generation)
        evaluated = self.accuracy_keys()  # by this run: another run's cached result is no reason
        trained = {g for g in genomes if (g, phase) in evaluated}
        batch = [g for g in dict.fromkeys(genomes) if g not in trained]
        if not batch:
            return [True] * len(genomes)
        screen = self.accuracy.screen_phase()
        values = self._evaluate(batch, generation, screen,
                                f"gen {generation}/{search.generations}")
        self.store.put_evaluations(self.screen_run, generation, screen, list(zip(batch, values)))
        screened = {g: v for _, g, v, _ in self.store.evaluations(self.screen_run)}
        kept = {g for g in batch if not any(self._beats(other, screened[g], search.screen_margin)
                                            for o, other in screened.items() if o != g)}
        if generation == 0 and len(kept | trained) < 2:
            best = sorted(batch, key=lambda g: -self._accuracy_of(screened[g]))
            kept |= set(best[:2 - len(trained)])
        return [g in kept or g in trained for g in genomes]

    def _accuracy_of(self, values: tuple[float, ...]) -> float:
        index = [o.name for o in self.objectives].index("accuracy")
        return values[index] if math.isfinite(values[index]) else -math.inf

    def _beats(self, other: tuple[float, ...], values: tuple[float, ...],
               margin: float) -> bool:
        """Whether screen values ``other`` beat ``values``: accuracy better by more than
        ``margin``, no hardware objective worse."""
        if not all(math.isfinite(v) for v in other):
            return False
        for objective, a, b in zip(self.objectives, other, values):
            if objective.name == "accuracy" and not a - margin > b:
                return False
            if objective.name != "accuracy" and a > b:
                return False
        return True

    def _map(self, genomes: Sequence[Genome], desc: str) -> None:
        """Run the mapper for every layer of ``genomes`` not yet stored, with a progress bar."""
        groups = self.hardware.missing(genomes)
        if groups:
            with tqdm(total=len(groups), desc=desc, unit="job", file=sys.stderr) as bar:
                self.hardware.compute(groups, bar.update)

    def search(self, resume: bool = False) -> SearchResult:
        """Run (or continue) the configured search with this experiment as its evaluator."""
        search = self.config.search
        if not resume:
            self.store.drop_generations(self.screen_run)
        probes = self._probes()
        options = {}
        if search.algorithm == "guided" and search.probe_prior and probes:
            options["layer_weights"] = probe_weights(probes)
        algorithm = {"nsga2": nsga2, "guided": guided}[search.algorithm]
        return algorithm(len(self.layers), self.objectives, _Scorer(self), search,
                         seed=self.config.seed, store=self.store, run=self.run_id, resume=resume,
                         seeds=self._seeds(probes), shared=self.shared, **options)

    def _probes(self) -> list[float]:
        """The sensitivity probes' accuracies, per layer, when the search uses them
        (search.seeding 'sensitivity', or the guided search's search.probe_prior)."""
        if not self._uses_probes():
            return []
        assert self.accuracy is not None and self.executor is not None
        return self.accuracy.probe_accuracies(len(self.layers), self.shared, self.executor)

    def _uses_probes(self) -> bool:
        search = self.config.search
        return self.uses_accuracy and (search.seeding == "sensitivity" or (
            search.algorithm == "guided" and search.probe_prior))

    def _seeds(self, probes: Sequence[float]) -> list[Genome]:
        """The initial population's seeds beside the uniform ones (search.seeding): layers
        ranked most sensitive (lowest probe accuracy) first."""
        search = self.config.search
        slots = search.parents - len(self.uniform())
        if search.seeding != "sensitivity" or slots <= 0 or not probes:
            return []
        ranking = sorted(range(len(probes)), key=lambda i: (probes[i], i))
        return protected_genomes(search.bits, ranking, slots)

    def uniform(self) -> list[Genome]:
        """The uniform reference configurations: every layer at (b, b), for each searched b."""
        bits = self.config.search.bits
        return uniform_genomes(len(self.layers), bits, len(bits))

    def ordered_front(self, result: SearchResult) -> list[Candidate]:
        """The front's candidates best first by the first objective (the pareto.csv order)."""
        first = self.objectives[0]
        sign = -1.0 if first.maximize else 1.0

        def order(cand: Candidate) -> tuple[float, Genome]:
            value = sign * cand.objective(first.name)
            return (value if math.isfinite(value) else math.inf, cand.genome)

        keys = self.accuracy_keys() if self.uses_accuracy else {}
        return sorted((self.candidate(genome, keys=keys) for genome, _ in result.front),
                      key=order)

    def evaluate_final(self, result: SearchResult) -> None:
        """Cost the uniform references; with accuracy as an objective, retrain them and the
        chosen front points (`choose_final`: those dominating a uniform reference on
        validation, then up to final.points by validation hypervolume contribution) with fresh
        seeds on validation and test. Runs after selection and chooses on validation scores
        only, so no test score can influence which candidates are evaluated."""
        uniform = self.uniform()
        # Those the search scored were costed then (a failed layer is retried by a rerun).
        scored = {genome for _, genome, _, _ in self.store.evaluations(self.run_id)}
        self._map([g for g in uniform if g not in scored], "uniform references mapper")
        if not self.uses_accuracy or not self.config.final.evaluate:
            return
        front = self.ordered_front(result)
        keys = self.accuracy_keys()
        indices = choose_final(front, [self._selection_reference(g, keys) for g in uniform],
                               self.objectives, self.config.final.points)
        self.accuracy.ensure_final([*(front[i].genome for i in indices), *uniform],
                                   self.executor)

    def _selection_reference(self, genome: Genome,
                             keys: dict[tuple[Genome, str], tuple[str, str | None]]) -> Candidate:
        """A uniform reference as the final-point selection compares with it. One the screens
        kept from a full QAT has only its screen's validation score; that score stands in, so a
        front point that may dominate the reference is still always retrained (a screen trains
        on a share of an epoch, so its score tends to be the lower one: the rule errs towards
        evaluating more points, never fewer)."""
        candidate = self.candidate(genome, keys=keys)
        if candidate.accuracy is None and self.config.search.screen_fraction:
            candidate = self.candidate(genome, self.accuracy.screen_phase(), keys=keys)
        return candidate

    def seed_scores(self, genome: Genome) -> SeedScores | None:
        """The final evaluation of ``genome`` when every seed of it is stored, else None."""
        if not self.uses_accuracy:
            return None
        results = self.accuracy.get_final(genome)
        if any(r is None or r.test_accuracy is None for r in results):
            return None
        return SeedScores(tuple(r.accuracy for r in results),  # type: ignore[union-attr]
                          tuple(r.test_accuracy for r in results))  # type: ignore[union-attr,misc]

    def collect(self, result: SearchResult, seconds: float) -> RunResult:
        """The finished search as a value: front ordered best first (by the first objective),
        the uniform references, the final evaluation of both, every scored candidate, and the
        store's bookkeeping."""
        front = tuple(
            FrontPoint(point_id(i), cand,
                       tuple(layer_precisions(cand.genome, self.config.search.last_outputs_bits)),
                       tuple(self.hardware.layer_results(cand.genome)),
                       self.seed_scores(cand.genome))
            for i, cand in enumerate(self.ordered_front(result)))
        keys = self.accuracy_keys() if self.uses_accuracy else {}
        uniform = tuple(Reference(genome[0][1], self.candidate(genome, keys=keys),
                                  self.seed_scores(genome))
                        for genome in self.uniform())
        final = [self.accuracy.final_settings(i) for i in range(self.config.final.seeds)] \
            if self.uses_accuracy else []
        evaluations = self.run_evaluations()
        scored = tuple((generation, self.candidate(genome, phase, keys))
                       for generation, genome, _, phase in evaluations)
        return RunResult(
            out=self.out, config=self.config, run_id=self.run_id, layers=tuple(self.layers),
            arch_name=next(iter(self.archs.values())).name, objectives=self.objectives,
            search=result, front=front, scored=scored, store_path=self.store.path,
            store_counts=self.store.counts(), failures=self.store.failures(),
            float_checkpoint=(self.accuracy.float_checkpoint() if self.uses_accuracy else None),
            seconds=seconds, uniform=uniform, final_seeds=tuple(s.seed for s in final),
            final_epochs=final[0].epochs if final else None,
            equivalents=self.equivalents(keys, front, uniform))

    def equivalents(self, keys: dict[tuple[Genome, str], tuple[str, str | None]],
                    front: Sequence[FrontPoint], uniform: Sequence[Reference]
                    ) -> dict[str, float]:
        """What this run's accuracies cost in QAT-run equivalents, cached ones included (so
        runs sharing a store are charged alike): the search's full QAT runs, its screens, its
        sensitivity probes, and the final evaluation."""
        if not self.uses_accuracy:
            return {}
        by_level: dict[bool, list[str]] = {False: [], True: []}  # full QAT, screens
        for (_, phase), (key, _) in keys.items():
            by_level[is_screen(phase)].append(key)
        search, screens = self.accuracy.spent(by_level[False]), self.accuracy.spent(by_level[True])
        probes = (self.accuracy.spent([k for k, _ in self.accuracy.probes(len(self.layers),
                                                                            self.shared)])
                  if self._uses_probes() else 0.0)
        final = 0.0
        if self.config.final.evaluate:
            evaluated = [*(p.candidate.genome for p in front if p.final is not None),
                         *(r.candidate.genome for r in uniform)]
            final = self.accuracy.spent([k for g in evaluated for k in self.accuracy.final_keys(g)])
        return {"search": search, "screens": screens, "probes": probes, "final": final}


class _Scorer:
    """Adapts an Experiment to the search's Evaluator protocol."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment

    def __call__(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        return self.experiment.score(genomes, generation)

    def phase(self, generation: int) -> str:
        return self.experiment.phase(generation)

    def screen(self, genomes: Sequence[Genome], generation: int) -> list[bool]:
        return self.experiment.screen(genomes, generation)

    def costs(self, genomes: Sequence[Genome], generation: int) -> list[tuple[float, ...]]:
        return self.experiment.costs(genomes, generation)


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


def run_experiment(config: ExperimentConfig, out: Path, resume: bool = False) -> RunResult:
    """Validate, search (selecting on validation accuracy), evaluate the chosen points and the
    uniform references (fresh seeds, validation and test), report; returns what the run
    produced."""
    started = time.perf_counter()
    with Experiment(config, out) as experiment:
        save_config(config, out / CONFIG_NAME)
        search = experiment.search(resume=resume)
        experiment.evaluate_final(search)
        result = experiment.collect(search, seconds=time.perf_counter() - started)
        write_report(result)
    return result
