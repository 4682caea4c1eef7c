"""The one interface every hardware cost model implements, and the mapper settings it takes.

Everything above this seam (search, store, reports) is engine-agnostic: the built-in analytical
engine and the real Timeloop binaries return the same `Mapping` and `Stats` types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping as MappingType
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from .arch import Arch
from .mapping import Mapping
from .precision import packing_factor, packing_problem
from .problem import Problem
from .settings import Rule, read_settings, setting
from .stats import Stats

METRICS = ("energy", "delay", "edp", "last_level_accesses")
# Whose accounting the numbers follow, in both engines: the authors' fork and its base 4a74d71,
# or stock Timeloop v3.0.3 (docs/fidelity.md, "Stock v3 accounting").
FORK, V3 = "fork", "v3"
TIMELOOP_VERSIONS = (FORK, V3)


def check_timeloop_version(version: str) -> str:
    """``version`` when it is one of ``TIMELOOP_VERSIONS``, else a ConfigError (one line)."""
    if version not in TIMELOOP_VERSIONS:
        raise ConfigError(f"unknown Timeloop version '{version}'",
                          field="engine.timeloop_version (--timeloop-version)",
                          fix=f"use one of {', '.join(TIMELOOP_VERSIONS)}")
    return version


@dataclass(frozen=True)
class EngineSettings:
    """Settings that mean the same in both engines: whose accounting the counts follow
    (``timeloop_version``) and whether the MAC energy scales with the operand widths
    (``mac_width_scaling``; without an ERT only: the built-in model scales its MAC, the real tools
    get the MAC's width rendered for Accelergy)."""

    timeloop_version: str = FORK
    mac_width_scaling: bool = False

    def options(self) -> dict[str, Any]:
        """The keyword arguments both cost models take for these settings."""
        return {"timeloop_version": check_timeloop_version(self.timeloop_version),
                "mac_width_scaling": self.mac_width_scaling}

    def stamp(self, stats: Stats) -> Stats:
        """``stats`` naming these settings (what the stats JSON reports)."""
        return replace(stats, timeloop_version=self.timeloop_version,
                       mac_width_scaling=self.mac_width_scaling)


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
# Timeloop's own mapper keys (timeloop-mapper's spelling; v0.4 files write them with
# underscores) that QuantMap's mapper has no use for, with why: accepted with a one-line note.
_TIMELOOP_NOTED = {
    "algorithm": "QuantMap's mapper proves the optimum of the constrained mapspace first, then "
                 "samples",
    "num-threads": "the built-in mapper runs in one process per layer",
    "timeout": "Timeloop's give-up count of consecutive invalid mappings; QuantMap stops on "
               "budget, max-seconds or a proof",
    "heartbeat": "an old spelling of timeout",
    "victory-condition": "Timeloop's stop after that many consecutive suboptimal mappings; "
                         "QuantMap stops on budget, max-seconds or a proof",
    "max-permutations-per-if-visit": "QuantMap enumerates loop orders by their count classes",
    "filter-revisits": "QuantMap never scores a mapping twice",
    "penalize-consecutive-bypass-fails": "QuantMap enumerates keep choices exhaustively",
    "sync-interval": "no threads to synchronize",
    "live-status": "no live display", "diagnostics": "no diagnostics output",
    "log-stats": "no search log", "log-suboptimal": "no search log", "log-all": "no search log",
    "log-interval": "no search log", "log-oaves": "no search log",
    "log-oaves-mappings": "no search log", "emit-whoop-nest": "no whoop output",
    "version": "the mapper section reads the same in every version",
}
# Timeloop's metric names that differ from QuantMap's.
_TIMELOOP_METRICS = {"last-level-accesses": "last_level_accesses"}


def _timeloop_key(key: str) -> str:
    """A mapper key in timeloop-mapper's dashed spelling (v0.4 files use underscores)."""
    return key.replace("_", "-")


def _metrics(values: dict[str, Any], source: str | None, notes: list[str]) -> None:
    """Timeloop's ``optimization-metric(s)`` (one name or a list, in lexicographic order) as
    ``metric`` and ``secondary_metric``; a third and later metric cannot be honoured (noted)."""
    keys = [k for k in values if _timeloop_key(k) in ("optimization-metric",
                                                       "optimization-metrics")]
    if not keys:
        return
    if len(keys) > 1:
        raise ConfigError(f"both {keys[0]} and {keys[1]} are given", file=source,
                          field=f"mapper.{keys[1]}", fix="give the metrics once, as a list")
    field = f"mapper.{keys[0]}"
    raw = values.pop(keys[0])
    raw = [raw] if isinstance(raw, str) else raw
    metrics = Rule(tuple, item=Rule(str)).check(raw, field, source)
    metrics = tuple(_TIMELOOP_METRICS.get(m, m) for m in metrics)
    if not metrics:
        raise ConfigError(f"{keys[0]} is empty", file=source, field=field, fix="e.g. [edp, energy]")
    metrics = Rule(tuple, item=Rule(str, choices=METRICS)).check(metrics, field, source)
    values.setdefault("metric", metrics[0])
    if len(metrics) > 1:
        values.setdefault("secondary_metric", metrics[1])
    if len(metrics) > 2:
        notes.append(f"{source or 'mapper'}: {field}: QuantMap's mapper orders by two metrics; "
                     f"{', '.join(metrics[2:])} ignored")


# The mapping file's name: a plain file name, so it is written inside the output folder.
OUT_PREFIX = Rule(str, pattern=r"(?!\.\.?$)[\w.+-]+", help="a file name without folders",
                  example="conv1")


def mapper_settings(section: Any, source: str | None = None,
                    base: MapperSettings = MapperSettings(),
                    notes: list[str] | None = None) -> MapperSettings:
    """MapperSettings from a ``mapper:`` section, over ``base`` (the defaults of the caller):
    QuantMap's keys, their dashed spellings, and timeloop-mapper's own keys in either spelling:
    ``optimization-metric(s)`` (lexicographic: first = metric, second = tie-breaker) and
    ``search-size`` (the mappings to score, when no budget is given) are honoured; the others are
    accepted with one line each in ``notes`` saying why they do not apply."""
    if section is None:
        return base
    if not isinstance(section, MappingType):
        raise ConfigError("the mapper section must be a map", file=source, field="mapper",
                          fix="write e.g. 'mapper: {metric: edp, budget: 20000, seed: 0}'")
    notes = notes if notes is not None else []
    values = dict(section)
    _metrics(values, source, notes)
    for key in [k for k in values if _timeloop_key(k) == "search-size"]:
        size = Rule(int, minimum=0).check(values.pop(key), f"mapper.{key}", source)
        if size > 0:
            values.setdefault("max_evaluations", size)
        else:
            notes.append(f"{source or 'mapper'}: mapper.{key}: 0 (unlimited) keeps the budget "
                         f"of {base.max_evaluations} evaluations")
    for key in [k for k in values if _timeloop_key(k) in _TIMELOOP_NOTED]:
        values.pop(key)
        notes.append(f"{source or 'mapper'}: mapper.{key} ignored: "
                     f"{_TIMELOOP_NOTED[_timeloop_key(key)]}")
    return read_settings(MapperSettings, values, "mapper", source, aliases=_ALIASES,
                         ignored=("out_prefix",), base=base)


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
