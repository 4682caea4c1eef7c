"""Hardware cost of a candidate network: the sum over layers of the best mapping for each
(layer, precision), from the chosen CostModel, with every mapper run stored once.

Three levels of reuse keep this cheap (docs/search.md):
1. identical (engine, arch spec, problem with precision, mapper settings) -> one store row
   (layer names are not part of the key: two layers of the same shape share their result);
2. precisions that pack identically on every level (same packing signature, e.g. 6, 7 and 8 bits
   in 16-bit words all give k = 2) -> one mapper run, stored under each precision's key;
3. the store outlives the run, so resumed and later experiments reuse everything.
Missing jobs of a whole generation fan out at once through the executor seam.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence
from typing import Mapping as MappingType

from ..backends import get_cost_model
from ..errors import BackendError, ConfigError
from ..network.layers import Layer, layer_to_problem
from ..spec.arch import Arch
from ..spec.costmodel import CostModel, MapperSettings, packing_signature
from ..spec.hashing import content_hash
from ..spec.mapping import Mapping, mapping_from_dict, mapping_to_dict
from ..spec.precision import Precision, packed_count, packing_factor
from ..spec.problem import Problem, problem_to_dict
from ..spec.stats import Stats
from .executors import Executor, Task
from .nsga2 import Genome
from .store import LayerResult, Store

# Errors that are properties of a (layer, precision) job and recur on every run: cached.
JOB_ERRORS = ("PrecisionError", "MappingError", "SpecError")


@dataclass(frozen=True)
class HardwareTotals:
    """Network totals of one candidate (sums over layers; EDP = sum of per-layer E x cycles)."""

    energy_pj: float
    cycles: float
    edp: float
    dram_accesses: float
    memory_bits: int
    valid: bool

    def objective(self, name: str) -> float:
        """The value of a hardware objective by its experiment-config name."""
        return {"energy": self.energy_pj, "latency": self.cycles, "edp": self.edp,
                "dram_accesses": self.dram_accesses, "memory": float(self.memory_bits)}[name]


@dataclass(frozen=True)
class LayerJob:
    """One (layer, precision) to cost: its store key, its dedup key, and the mapper inputs."""

    key: str
    signature_key: str
    layer: str
    precision: Precision
    arch: Arch
    problem: Problem


def layer_precisions(genome: Genome, last_outputs_bits: int) -> list[Precision]:
    """Per-layer precisions: Inputs A_i, Weights W_i, Outputs A_{i+1} (the last layer's
    Outputs width is configured), as the paper's hardware model and our QAT both assume."""
    outputs = [a for a, _ in genome[1:]] + [last_outputs_bits]
    return [Precision(inputs=a, weights=w, outputs=o) for (a, w), o in zip(genome, outputs)]


def memory_bits(layers: Sequence[Layer], precisions: Sequence[Precision], word_bits: int) -> int:
    """Weights of all layers plus the peak activation footprint (one layer's input + output),
    both packed into ``word_bits``-bit words, in bits."""
    weights = 0
    peak = 0
    for layer, prec in zip(layers, precisions):
        weights += packed_count(layer.weight_count, packing_factor(prec.weights, word_bits))
        inputs = layer.N * layer.C * layer.H * layer.W
        outputs = layer.N * layer.M * layer.P * layer.Q
        words = (packed_count(inputs, packing_factor(prec.inputs, word_bits))
                 + packed_count(outputs, packing_factor(prec.outputs, word_bits)))
        peak = max(peak, words)
    return (weights + peak) * word_bits


@lru_cache(maxsize=8)
def cost_model(name: str, options_json: str) -> CostModel:
    """One cost model instance per process and engine configuration."""
    options = json.loads(options_json)
    try:
        return get_cost_model(name, **options)
    except TypeError as exc:  # an option the engine does not take
        raise ConfigError(f"engine '{name}' does not accept options {sorted(options)}: {exc}",
                          field="engine.options",
                          fix="remove the option or check the engine's documentation") from None


def map_layer(engine: str, options_json: str, arch: Arch, problem: Problem,
              settings: MapperSettings) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The worker job: best mapping and its stats as plain data (cheap to send back)."""
    mapping, stats = cost_model(engine, options_json).find_mapping(arch, problem, settings)
    return (None if mapping is None else mapping_to_dict(mapping)), stats.to_dict()


class HardwareCost:
    """Store-backed hardware cost of candidate networks on one arch with one cost model."""

    def __init__(self, *, archs: MappingType[str, Arch], layers: Sequence[Layer], engine: str,
                 engine_options: MappingType[str, Any], settings: MapperSettings, store: Store,
                 executor: Executor, last_outputs_bits: int = 8) -> None:
        self.archs = archs  # by problem-shape name: depthwise layers get adapted constraints
        self.layers = list(layers)
        self.engine = engine
        self.options_json = json.dumps(dict(engine_options), sort_keys=True)
        model = cost_model(engine, self.options_json)
        self._engine_id = (model.name, model.version, json.loads(self.options_json))
        self.settings = settings
        self.store = store
        self.executor = executor
        self.last_outputs_bits = last_outputs_bits
        self.word_bits = next(iter(archs.values())).levels[0].word_bits
        # The full arch spec is part of every key; hash it once per shape.
        self._spec_hash = {name: content_hash(dict(arch.spec)) for name, arch in archs.items()}
        self._jobs: dict[tuple[int, Precision], LayerJob] = {}

    def job(self, index: int, precision: Precision) -> LayerJob:
        """The job of layer ``index`` at ``precision``, with both of its keys (memoized: the
        same pair recurs in most candidates of a run)."""
        memo = self._jobs.get((index, precision))
        if memo is not None:
            return memo
        layer = self.layers[index]
        problem = layer_to_problem(layer, precision)
        arch = self.archs[problem.shape.name]
        spec = self._spec_hash[problem.shape.name]
        key = content_hash("layer-result", self._engine_id, spec, problem_to_dict(problem),
                           self.settings.key())
        native = problem_to_dict(problem.with_precision(Precision()))
        signature_key = content_hash("packing-signature", self._engine_id, spec, native,
                                     packing_signature(arch, problem), self.settings.key())
        memo = LayerJob(key, signature_key, layer.name, precision, arch, problem)
        self._jobs[(index, precision)] = memo
        return memo

    def jobs(self, genome: Genome) -> list[LayerJob]:
        return [self.job(i, p) for i, p in
                enumerate(layer_precisions(genome, self.last_outputs_bits))]

    def missing(self, genomes: Sequence[Genome]) -> dict[str, list[LayerJob]]:
        """Jobs of ``genomes`` not yet stored, grouped by packing signature (one run each)."""
        return self.missing_jobs(job for genome in genomes for job in self.jobs(genome))

    def missing_jobs(self, jobs: Iterable[LayerJob]) -> dict[str, list[LayerJob]]:
        """The jobs not yet stored, grouped by packing signature. Keys whose packing signature
        is already stored reuse that row's mapping right here, without a mapper run."""
        groups: dict[str, list[LayerJob]] = {}
        seen: set[str] = set()
        for job in jobs:
            if job.key in seen or self.store.get_layer(job.key) is not None:
                continue
            seen.add(job.key)
            twin = self.store.get_layer_by_signature(job.signature_key)
            if twin is not None:
                self.store.put_layers([self._reuse(job, twin.mapping, twin.stats)])
            else:
                groups.setdefault(job.signature_key, []).append(job)
        return groups

    def compute(self, groups: MappingType[str, Sequence[LayerJob]],
                progress: Callable[[int], object] | None = None) -> None:
        """Run one mapper job per signature group through the executor and store the results.

        Every failure is recorded. One that is a property of the job (JOB_ERRORS, e.g. a bit
        width wider than a word) is also stored as an invalid result; anything else (a crash,
        a missing binary) is left unstored, so the next run tries again. A batch in which every
        job failed means a broken engine: BackendError, instead of a search over nothing.
        """
        tasks = [Task(sig, map_layer, (self.engine, self.options_json, group[0].arch,
                                       group[0].problem, self.settings))
                 for sig, group in groups.items()]
        failed: list[str] = []
        for outcome in self.executor.run(tasks):
            if progress is not None:
                progress(1)
            group = groups[outcome.key]
            if outcome.ok:
                mapping_data, stats_data = outcome.value
                mapping = None if mapping_data is None else mapping_from_dict(mapping_data)
                stats = Stats.from_dict(stats_data)
            else:
                failed.append(f"{group[0].layer} {group[0].precision.label()}: {outcome.error}")
                self.store.put_failure(outcome.key, "mapper", failed[-1], outcome.attempts)
                if outcome.error_type not in JOB_ERRORS:
                    continue
                mapping, stats = None, Stats.invalid(str(outcome.error))
            self.store.put_layers([_result(group[0], mapping, stats)]
                                  + [self._reuse(job, mapping, stats) for job in group[1:]])
        if tasks and len(failed) == len(tasks):
            raise BackendError(f"all {len(tasks)} mapper jobs failed, e.g. {failed[0]}",
                               field="engine", fix="check the engine and its options (the "
                               "failures are in the store; a rerun retries them)")

    def _reuse(self, job: LayerJob, mapping: Mapping | None, stats: Stats) -> LayerResult:
        """The result of ``job`` from the best mapping of a same-signature twin: the mapping is
        the same, but the stats are re-evaluated for this exact precision (one engine call),
        because a bit-width-aware MAC model can price equal packings differently."""
        if mapping is not None:
            stats = cost_model(self.engine, self.options_json).evaluate(job.arch, job.problem,
                                                                        mapping)
        return _result(job, mapping, stats)

    def layer_results(self, genome: Genome) -> list[LayerResult | None]:
        """Stored results of every layer of a candidate (None where a job failed)."""
        return [self.store.get_layer(job.key) for job in self.jobs(genome)]

    def totals(self, genome: Genome) -> HardwareTotals:
        """Network totals from stored layer results; infinite costs if any layer is invalid."""
        results = self.layer_results(genome)
        memory = memory_bits(self.layers, layer_precisions(genome, self.last_outputs_bits),
                             self.word_bits)
        if any(r is None or not r.stats.valid for r in results):
            return HardwareTotals(math.inf, math.inf, math.inf, math.inf, memory, False)
        stats = [r.stats for r in results if r is not None]
        return HardwareTotals(
            energy_pj=sum(s.energy_pj for s in stats), cycles=float(sum(s.cycles for s in stats)),
            edp=sum(s.edp for s in stats),
            dram_accesses=float(sum(s.last_level_accesses for s in stats)),
            memory_bits=memory, valid=True)


def _result(job: LayerJob, mapping: Mapping | None, stats: Stats) -> LayerResult:
    return LayerResult(job.key, job.signature_key, job.layer, job.precision.label(), mapping,
                       stats)
