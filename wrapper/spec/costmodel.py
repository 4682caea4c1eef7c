"""The one interface every hardware cost model implements, and the mapper settings it takes.

Everything above this seam (search, store, reports) is engine-agnostic: the built-in analytical
engine and the real Timeloop binaries return the same `Mapping` and `Stats` types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingType
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from .arch import Arch
from .mapping import Mapping
from .precision import packing_factor, packing_problem
from .problem import Problem
from .settings import Rule, read_settings, setting
from .stats import Stats

METRICS = ("energy", "delay", "edp", "last_level_accesses")


@dataclass(frozen=True)
class MapperSettings:
    """How hard and by what the mapper searches; part of every cache key."""

    metric: str = setting("edp", choices=METRICS, help="what the mapper minimizes")
    secondary_metric: str = setting("energy", choices=METRICS, help="tie-breaker metric")
    max_evaluations: int = setting(20000, minimum=1, maximum=10_000_000,
                                   help="mapper evaluations per layer")
    max_seconds: float | None = setting(None, above=0.0, help="time limit per layer search")
    seed: int = setting(0, minimum=0, help="seed of the mapper's sampling")
    exact: bool = setting(True, help="prove the optimum (branch and bound) before sampling")
    exact_budget: int = setting(2_000_000, minimum=1,
                                help="mappings the exact search may score")
    exact_seconds: float = setting(30.0, above=0.0,
                                   help="time limit of the exact search per layer; then the "
                                        "sampling mapper runs and the gap is reported")

    def key(self) -> str:
        """A stable text of the settings for content-hash cache keys."""
        return json.dumps(asdict(self), sort_keys=True)


@runtime_checkable
class CostModel(Protocol):
    """Evaluate a mapping, or search the best one, for one (arch, layer problem with precision)."""

    name: str
    version: str

    def evaluate(self, arch: Arch, problem: Problem, mapping: Mapping) -> Stats:
        """Statistics of one mapping (``valid`` False with a reason when it does not fit)."""
        ...

    def find_mapping(self, arch: Arch, problem: Problem, settings: MapperSettings) -> tuple[Mapping, Stats]:
        """The best mapping found under ``settings`` and its statistics."""
        ...


# Other spellings of the settings in Timeloop-style mapper sections.
_ALIASES = {"secondary-metric": "secondary_metric", "budget": "max_evaluations",
            "max-evaluations": "max_evaluations", "max-seconds": "max_seconds",
            "exact-budget": "exact_budget", "exact-seconds": "exact_seconds"}
# Timeloop's own mapper knobs: accepted so its mapper files work unchanged, and ignored.
_TIMELOOP_KEYS = ("out_prefix", "optimization-metrics", "optimization_metrics", "algorithm",
                  "num-threads", "num_threads", "timeout", "victory-condition", "victory_condition",
                  "search-size", "search_size", "max-permutations-per-if-visit", "live-status",
                  "log-stats", "log-suboptimal", "log-oaves", "log-oaves-mappings", "diagnostics",
                  "penalize-consecutive-bypass-fails", "sync-interval", "filter-revisits")


# The mapping file's name: a plain file name, so it is written inside the output folder.
OUT_PREFIX = Rule(str, pattern=r"(?!\.\.?$)[\w.+-]+", help="a file name without folders",
                  example="conv1")


def mapper_settings(section: Any, source: str | None = None,
                    base: MapperSettings = MapperSettings()) -> MapperSettings:
    """MapperSettings from a ``mapper:`` section, over ``base`` (the defaults of the caller):
    QuantMap's keys, their dashed spellings, and Timeloop's ``optimization-metrics`` (first =
    metric, second = tie-breaker)."""
    if section is None:
        return base
    if not isinstance(section, MappingType):
        raise ConfigError("the mapper section must be a map", file=source, field="mapper",
                          fix="write e.g. 'mapper: {metric: edp, budget: 20000, seed: 0}'")
    values = dict(section)
    metrics = values.get("optimization-metrics", values.get("optimization_metrics"))
    if metrics is not None:
        metrics = Rule(tuple, item=Rule(str, choices=METRICS)).check(
            metrics, "mapper.optimization-metrics", source)
        if not metrics:
            raise ConfigError("optimization-metrics is empty", file=source,
                              field="mapper.optimization-metrics", fix="e.g. [edp, energy]")
        values.setdefault("metric", metrics[0])
        if len(metrics) > 1:
            values.setdefault("secondary_metric", metrics[1])
    return read_settings(MapperSettings, values, "mapper", source, aliases=_ALIASES,
                         ignored=_TIMELOOP_KEYS, base=base)


def packing_signature(arch: Arch, problem: Problem) -> tuple:
    """What the precision changes in the counts: problem shape/bounds/coefficients and, per
    storage level (innermost first) and dataspace, the operands per word (0 where the bit width
    does not fit the word, so the dataspace must bypass that level)."""
    rows = []
    for level in (*arch.inner_to_outer, arch.arithmetic):
        row = []
        for ds in problem.shape.dataspace_names:
            bits = problem.precision.bits(ds) if ds in ("Inputs", "Weights", "Outputs") else None
            fits = packing_problem(bits, level.word_bits) is None
            row.append(packing_factor(bits, level.word_bits) if fits else 0)
        rows.append((level.name, tuple(row)))
    return (problem.shape, tuple(sorted(problem.bounds.items())),
            tuple(sorted(problem.coefficients.items())), tuple(rows))
