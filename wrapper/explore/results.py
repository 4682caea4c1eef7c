"""What an explore run produced, as plain values: the scored candidates, the ordered front with
its per-layer results, the uniform reference configurations, the final evaluation (fresh seeds,
validation and test) of both, and the run's bookkeeping. The report and the plots are written from a
`RunResult` alone, so they never reach into the live experiment (store, executor, models)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..network.layers import Layer
from ..spec.precision import Precision
from .config import ExperimentConfig
from .hardware import HardwareTotals
from .nsga2 import Genome, Objective, SearchResult
from .store import AccuracyResult, LayerResult


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


@dataclass(frozen=True)
class SeedScores:
    """The final evaluation of one configuration: validation and test top-1 of each fresh QAT
    seed. Unlike the search's score (the luckiest of many), these are unbiased estimates."""

    val: tuple[float, ...]
    test: tuple[float, ...]

    @staticmethod
    def _spread(values: tuple[float, ...]) -> float:
        return statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def val_mean(self) -> float:
        return statistics.fmean(self.val)

    @property
    def val_std(self) -> float:
        """Sample standard deviation over seeds (0 with one seed)."""
        return self._spread(self.val)

    @property
    def test_mean(self) -> float:
        return statistics.fmean(self.test)

    @property
    def test_std(self) -> float:
        return self._spread(self.test)


def is_uniform(genome: Sequence[Sequence[int]]) -> bool:
    """Every layer's A and W at one width: a uniform configuration, not mixed precision."""
    return len({bit for pair in genome for bit in pair}) == 1


def point_id(index: int) -> str:
    """The id of the index-th front member in every results file (P01, P02, ...)."""
    return f"P{index + 1:02d}"


@dataclass(frozen=True)
class FrontPoint:
    """One member of the final front with the per-layer results behind its totals."""

    id: str
    candidate: Candidate
    precisions: tuple[Precision, ...]
    layer_results: tuple[LayerResult | None, ...]
    final: SeedScores | None = None  # None: not among the points chosen for final evaluation

    def energy_by_level(self) -> dict[str, float]:
        """Network energy (pJ) per storage level, outermost first, plus the MACs."""
        totals: dict[str, float] = {}
        for result in self.layer_results:
            if result is None or not result.stats.valid:
                continue
            for level in reversed(result.stats.levels):
                totals[level.name] = totals.get(level.name, 0.0) + level.energy_pj
            totals["MAC"] = totals.get("MAC", 0.0) + result.stats.mac_energy_pj
        return totals


@dataclass(frozen=True)
class Reference:
    """A uniform configuration (every layer's A and W at ``bits``), the baseline the paper
    compares against; always costed, and retrained like the chosen front points."""

    bits: int
    candidate: Candidate
    final: SeedScores | None = None

    @property
    def id(self) -> str:
        return f"U{self.bits}"


@dataclass(frozen=True)
class RunResult:
    """A finished (or resumed and finished) search, ready to be written out."""

    out: Path
    config: ExperimentConfig
    run_id: str
    layers: tuple[Layer, ...]
    arch_name: str
    objectives: tuple[Objective, ...]
    search: SearchResult
    front: tuple[FrontPoint, ...]
    scored: tuple[tuple[int, Candidate], ...]
    store_path: Path
    store_counts: dict[str, int]
    failures: list[dict[str, Any]] = field(default_factory=list)
    float_checkpoint: str | None = None
    seconds: float = 0.0
    uniform: tuple[Reference, ...] = ()
    final_seeds: tuple[int, ...] = ()  # the QAT seeds of the final evaluation
    final_epochs: int | None = None
    # QAT-run equivalents (samples processed / one full one-epoch QAT run) by purpose:
    # "search", "probes" (sensitivity seeding) and "final"; empty without accuracy
    equivalents: dict[str, float] = field(default_factory=dict)
