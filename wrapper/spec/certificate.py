"""What a search proved about its answer: optimal for its metric, or how far from optimal at most.

A `Certificate` travels with every answer of the built-in mapper, so stores and reports
can keep it next to the mapping (``to_dict`` is its JSON form, ``comment`` its one-line text).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXHAUSTED = "exhausted"  # every group of the mapspace was enumerated
BOUND = "bound"  # every group not enumerated has a lower bound above the answer
BUDGET = "budget"  # the evaluation budget ran out first
TIME = "time"  # the time limit ran out first
SAMPLED = "sampled"  # only the sampling mapper ran
SIZE = "size"  # too many outer assignments to bound one by one; only the sampling mapper ran


@dataclass(frozen=True)
class Certificate:
    """The answer's ``value`` of ``metric`` and a ``lower_bound`` on the optimum of the
    constrained mapspace; ``optimal`` when they meet (space exhausted or bound closed).

    ``gap`` = value / lower_bound - 1 is the most the answer can be above the optimum (0 when
    optimal; inf when no positive bound is known). ``evaluated`` counts mappings the exact search
    scored; ``groups`` and ``groups_pruned`` count outer assignments (keep choice and outermost
    factors) and those closed by their bound without evaluation.
    """

    metric: str
    optimal: bool
    value: float
    lower_bound: float
    gap: float
    stopped_by: str
    evaluated: int = 0
    groups: int = 0
    groups_pruned: int = 0

    @classmethod
    def build(cls, metric: str, value: float, lower_bound: float, stopped_by: str,
              evaluated: int = 0, groups: int = 0, groups_pruned: int = 0) -> Certificate:
        """A certificate whose ``optimal`` and ``gap`` follow from value and bound."""
        optimal = stopped_by in (EXHAUSTED, BOUND)
        bound = value if optimal else min(value, lower_bound)
        gap = 0.0 if optimal else (value / bound - 1 if bound > 0 else float("inf"))
        return cls(metric, optimal, float(value), float(bound), float(gap), stopped_by,
                   evaluated, groups, groups_pruned)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def comment(self) -> str:
        """One line for the header of a mapping file."""
        if self.optimal:
            return (f"optimal for {self.metric} = {self.value:.6g} in the constrained mapspace "
                    f"({self.stopped_by}; {self.evaluated} mappings evaluated, "
                    f"{self.groups_pruned} of {self.groups} groups closed by bound)")
        return (f"{self.metric} = {self.value:.6g}, at most {100 * self.gap:.3g}% above the "
                f"optimum (lower bound {self.lower_bound:.6g}; stopped by {self.stopped_by})")
