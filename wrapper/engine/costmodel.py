"""`BuiltinCostModel`: the built-in engine and mapper behind the `CostModel` protocol ('builtin').

Memoization. Two (layer, precision) pairs whose problems have the same shape,
bounds and coefficients and the same `packing_signature` (operands per word at every storage
level and for every dataspace, plus the arithmetic word) see identical counts for every mapping,
so with the same energy table and mapper settings the search returns the same best mapping. The
in-process `MapperCache` is keyed by exactly that: (arch, shape, bounds, coefficients, packing
signature, energy-table fingerprint, settings). On a hit the cached mapping is re-evaluated for
the caller's own problem (one engine call), so the returned `Stats` always belong to the exact
precision asked for. Callers (search layer, benchmarks) should keep one `BuiltinCostModel` per
process to share the cache; i8w8 and i5w6 on 16-bit words, for example, both pack 2 per word.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..spec.arch import Arch
from ..spec.certificate import Certificate
from ..spec.ert import EnergyTable, load_energy_table
from ..spec.hashing import content_hash
from ..spec.mapping import Mapping
from ..spec.problem import Problem
from ..spec.stats import Stats
from ..spec.costmodel import FORK, MapperSettings, check_timeloop_version, packing_signature
from .constraints import build_mapspace
from .energy_model import builtin_energy_table
from .evaluator import MappingEvaluator
from .exact import certified_search


def table_fingerprint(table: EnergyTable) -> str:
    """Content hash of an energy table's action energies (areas do not affect the search)."""
    return content_hash({k: dict(v) for k, v in table.actions.items()})


@dataclass
class MapperCache:
    """In-process memo of best mappings by (arch, packing signature, energy table, settings)."""

    entries: dict[tuple, tuple[Mapping, Certificate | None]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    @staticmethod
    def key(arch: Arch, problem: Problem, table: EnergyTable, settings: MapperSettings,
            accounting: str = FORK) -> tuple:
        return (arch, packing_signature(arch, problem), table_fingerprint(table), settings.key(),
                accounting)


class BuiltinCostModel:
    """The analytical engine (``evaluate``) and the built-in mapper (``search``).

    The energy table is the ERT given (``energy_table`` or ``ert``/``art`` paths), else the
    built-in energy model for the arch (with operand-width MAC scaling when
    ``mac_width_scaling``).
    ``timeloop_version`` picks whose counts it reproduces: the fork's (``fork``) or stock
    v3.0.3's (``v3``), see `analysis.TIMELOOP_VERSIONS`.
    """

    name = "builtin"
    version = "builtin-1"

    def __init__(self, energy_table: EnergyTable | None = None, *, ert: str | Path | None = None,
                 art: str | Path | None = None, mac_width_scaling: bool = False,
                 cache: MapperCache | None = None, timeloop_version: str = FORK) -> None:
        check_timeloop_version(timeloop_version)
        if energy_table is None and ert is not None:
            energy_table = load_energy_table(ert, art)
        self.energy_table = energy_table
        self.mac_width_scaling = mac_width_scaling
        self.cache = cache if cache is not None else MapperCache()
        self.timeloop_version = timeloop_version
        self.engine = MappingEvaluator(timeloop_version)

    def table_for(self, arch: Arch, problem: Problem) -> EnergyTable:
        """The ERT given, else the built-in energy model of ``arch``."""
        if self.energy_table is not None:
            return self.energy_table
        return builtin_energy_table(arch, problem.precision if self.mac_width_scaling else None)

    def evaluate(self, arch: Arch, problem: Problem, mapping: Mapping) -> Stats:
        """Stats of one mapping (``valid`` False with the reason when it does not fit)."""
        return self.engine.evaluate(arch, problem, mapping, self.table_for(arch, problem))

    def find_mapping(self, arch: Arch, problem: Problem, settings: MapperSettings) -> tuple[Mapping, Stats]:
        """Best mapping for ``settings``, its stats carrying the certificate of the answer
        (optimal, or its gap bound); memoized by packing signature (module docstring)."""
        table = self.table_for(arch, problem)
        key = MapperCache.key(arch, problem, table, settings, self.timeloop_version)
        cached = self.cache.entries.get(key)
        if cached is not None:
            self.cache.hits += 1
            mapping, certificate = cached
            stats = self.engine.evaluate(arch, problem, mapping, table)
        else:
            self.cache.misses += 1
            space = build_mapspace(arch, problem, self.timeloop_version)
            result = certified_search(space, table, settings, self.engine)
            self.cache.entries[key] = (result.mapping, result.certificate)
            mapping, stats, certificate = result.mapping, result.stats, result.certificate
        return mapping, replace(stats, certificate=certificate)


