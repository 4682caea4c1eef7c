"""The one interface every hardware cost model implements, and the registry that picks one.

Everything above this seam (search, store, reports) is engine-agnostic: the built-in analytical
engine and the real Timeloop binaries return the same `Mapping` and `Stats` types.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from .arch import Arch
from .errors import ConfigError, unknown_name_fix
from .mapping import Mapping
from .problem import Problem
from .stats import Stats

METRICS = ("energy", "delay", "edp", "last_level_accesses")


@dataclass(frozen=True)
class MapperSettings:
    """How hard and by what the mapper searches; part of every cache key (METHOD.md 6.4)."""

    metric: str = "edp"
    secondary_metric: str = "energy"
    max_evaluations: int = 20000
    max_seconds: float | None = None
    seed: int = 0
    exact: bool = True  # prove the optimum (branch and bound) before falling back to sampling
    exact_budget: int = 2_000_000  # mappings the exact search may score

    def __post_init__(self) -> None:
        for name in (self.metric, self.secondary_metric):
            if name not in METRICS:
                raise ConfigError(f"unknown mapper metric '{name}'", field="mapper.metric",
                                  fix=unknown_name_fix(name, METRICS, "metrics"))
        if self.exact_budget < 1:
            raise ConfigError(f"exact_budget = {self.exact_budget} must be >= 1",
                              field="mapper.exact_budget", fix="use a positive budget")
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


_REGISTRY: dict[str, Callable[..., CostModel]] = {}


def register(name: str, factory: Callable[..., CostModel]) -> None:
    """Make a cost model available under ``name`` (called by the engine packages)."""
    _REGISTRY[name] = factory


def get_cost_model(name: str = "builtin", **options: Any) -> CostModel:
    """Instantiate a registered cost model by name ('builtin' or 'timeloop')."""
    _load_builtin_registrations()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown engine '{name}'", field="engine",
                          fix=unknown_name_fix(name, sorted(_REGISTRY), "engines"))
    return _REGISTRY[name](**options)


def _load_builtin_registrations() -> None:
    """Import the packages that register themselves; a missing optional one is skipped."""
    import importlib

    for module in ("wrapper.engine.costmodel", "wrapper.timeloop.costmodel"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def content_hash(*parts: Any) -> str:
    """SHA-256 over JSON-serialized parts: the key of every stored result."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\0")
    return digest.hexdigest()
