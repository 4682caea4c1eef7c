"""The one interface every hardware cost model implements, and the mapper settings it takes.

Everything above this seam (search, store, reports) is engine-agnostic: the built-in analytical
engine and the real Timeloop binaries return the same `Mapping` and `Stats` types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingType
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError, unknown_name_fix
from .arch import Arch
from .mapping import Mapping
from .problem import Problem
from .stats import Stats

METRICS = ("energy", "delay", "edp", "last_level_accesses")


@dataclass(frozen=True)
class MapperSettings:
    """How hard and by what the mapper searches; part of every cache key."""

    metric: str = "edp"
    secondary_metric: str = "energy"
    max_evaluations: int = 20000
    max_seconds: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (self.metric, self.secondary_metric):
            if name not in METRICS:
                raise ConfigError(f"unknown mapper metric '{name}'", field="mapper.metric",
                                  fix=unknown_name_fix(name, METRICS, "metrics"))
        if self.max_evaluations < 1:
            raise ConfigError(f"max_evaluations = {self.max_evaluations} must be >= 1",
                              field="mapper.max_evaluations", fix="use a positive budget")

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

    def search(self, arch: Arch, problem: Problem, settings: MapperSettings) -> tuple[Mapping, Stats]:
        """The best mapping found under ``settings`` and its statistics."""
        ...


_SETTING_KEYS = {"metric": "metric", "secondary-metric": "secondary_metric",
                 "secondary_metric": "secondary_metric", "budget": "max_evaluations",
                 "max-evaluations": "max_evaluations", "max_evaluations": "max_evaluations",
                 "max-seconds": "max_seconds", "max_seconds": "max_seconds", "seed": "seed"}
_TIMELOOP_KEYS = ("out_prefix", "optimization-metrics", "optimization_metrics", "algorithm",
                  "num-threads", "num_threads", "timeout", "victory-condition", "victory_condition",
                  "search-size", "search_size", "max-permutations-per-if-visit", "live-status",
                  "log-stats", "log-suboptimal", "log-oaves", "log-oaves-mappings", "diagnostics",
                  "penalize-consecutive-bypass-fails", "sync-interval", "filter-revisits")


def mapper_settings(section: Any, source: str | None = None) -> MapperSettings:
    """MapperSettings from a ``mapper:`` section (None gives the defaults)."""
    if section is None:
        return MapperSettings()
    if not isinstance(section, MappingType):
        raise ConfigError("the mapper section must be a map", file=source, field="mapper",
                          fix="write e.g. 'mapper: {metric: edp, budget: 20000, seed: 0}'")
    values: dict[str, Any] = {}
    metrics = section.get("optimization-metrics", section.get("optimization_metrics"))
    if metrics is not None:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        values["metric"] = str(metrics[0])
        if len(metrics) > 1:
            values["secondary_metric"] = str(metrics[1])
    for key, value in section.items():
        if key in _SETTING_KEYS:
            values[_SETTING_KEYS[key]] = value
        elif key not in _TIMELOOP_KEYS:
            raise ConfigError(f"unknown mapper key '{key}'", file=source, field=f"mapper.{key}",
                              fix=unknown_name_fix(str(key), list(_SETTING_KEYS), "mapper keys"))
    for name in ("max_evaluations", "seed"):
        if name in values and (isinstance(values[name], bool) or not isinstance(values[name], int)):
            raise ConfigError(f"{name} = {values[name]!r} is not an integer", file=source,
                              field=f"mapper.{name}", fix="use a whole number")
    return MapperSettings(**values)
