"""`MappingEvaluator`: the embedded timeloop-model replacement (scalar path).

It checks a mapping (names, factors, fan-out), turns it into a batch of one nest and runs the one
evaluation core (`batch.evaluate_nests`: nest analysis, packing per docs/packing.md with bit
widths checked where a level keeps a dataspace, capacities, energy priced from an `EnergyTable`
exactly as Timeloop does, bandwidth-limited cycles), so it agrees with `evaluate_batch` by
construction.
"""

from __future__ import annotations

import numpy as np

from ..errors import MappingError, PrecisionError
from ..spec.arch import Arch
from ..spec.ert import EnergyTable
from ..spec.mapping import Mapping, validate_mapping
from ..spec.problem import Problem
from ..spec.stats import Stats
from ..spec.costmodel import FORK
from .batch import evaluate_nests
from .nest import nest_from_mapping
from .pricing import packing_factors

__all__ = ["MappingEvaluator"]


class MappingEvaluator:
    """Analytical model of timeloop-model for uniform mappings (see `analysis` for semantics),
    counting as the Timeloop version ``accounting`` (`analysis.TIMELOOP_VERSIONS`)."""

    name = "builtin"

    def __init__(self, accounting: str = FORK) -> None:
        self.accounting = accounting

    def evaluate(self, arch: Arch, problem: Problem, mapping: Mapping,
                 energy_table: EnergyTable | None = None) -> Stats:
        """Stats of one mapping; an invalid mapping gives ``Stats(valid=False, reason=...)``."""
        nest = nest_from_mapping(arch, problem, mapping)
        try:
            packing_factors(arch, problem, nest.keeps)
            validate_mapping(mapping, arch, problem)
        except (MappingError, PrecisionError) as exc:
            return Stats.invalid(str(exc))
        return evaluate_nests(arch, problem, nest, np.ones(1, dtype=bool), [None],
                              energy_table, self.accounting).stats(0)
