"""The paper's headline, computed from a run instead of claimed: for each searched hardware
objective, the largest saving a mixed-precision front point achieves at no accuracy drop

1. against uniform 8-bit (the widest searched width), and
2. against the cheapest uniform configuration that is as accurate as the point (counted only when
   the point is also as accurate as that configuration: a point far below every uniform
   configuration has no uniform counterpart at its accuracy, and no claim is made for it).

"No accuracy drop" is judged on validation accuracy from the final evaluation (fresh seeds, not
the search's selection-biased scores), within the measured seed spread: a is at least as accurate
as b when mean(a) >= mean(b) - max(std(a), std(b)). Which claim is made is thus decided without
the test split; the claim is then reported with its test means, which no decision saw. Points
without a final evaluation take no part; a uniform reference without one is an error, never
replaced by another width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError
from .results import Candidate, Reference, RunResult, SeedScores
from .selection import claimants


@dataclass(frozen=True)
class Saving:
    """One saving: ``point`` costs ``1 - saving`` of ``reference`` in the objective."""

    point: str
    reference: str
    saving: float
    point_scores: SeedScores
    reference_scores: SeedScores


@dataclass(frozen=True)
class HeadlineRow:
    """The two savings of one hardware objective (None: no point qualifies)."""

    objective: str
    vs_widest: Saving | None
    vs_same_accuracy: Saving | None


def as_accurate(a: SeedScores, b: SeedScores) -> bool:
    """a loses no validation accuracy against b, within the larger of their seed spreads."""
    return a.val_mean >= b.val_mean - max(a.val_std, b.val_std)


def _cost(candidate: Candidate, objective: str) -> float:
    value = candidate.objective(objective)
    return value if candidate.hardware.valid and math.isfinite(value) else math.inf


def _saving(point: tuple[str, Candidate, SeedScores], reference: Reference, objective: str
            ) -> Saving | None:
    name, candidate, scores = point
    base = _cost(reference.candidate, objective)
    cost = _cost(candidate, objective)
    if not (math.isfinite(base) and math.isfinite(cost)) or base <= 0:
        return None
    assert reference.final is not None
    return Saving(name, reference.id, 1.0 - cost / base, scores, reference.final)


def _best(savings: Sequence[Saving | None]) -> Saving | None:
    found = [s for s in savings if s is not None]
    return max(found, key=lambda s: (s.saving, s.point_scores.val_mean), default=None)


def headline_row(objective: str, points: Sequence[tuple[str, Candidate, SeedScores]],
                 uniform: Sequence[Reference]) -> HeadlineRow:
    """Both savings of one objective, from evaluated points (id, candidate, scores) and the
    uniform references (every one with its final evaluation)."""
    for reference in uniform:
        if reference.final is None:
            raise ConfigError(f"uniform reference {reference.id} has no final evaluation, so no "
                              "claim against it can be made", field="search.bits",
                              fix=f"rerun with --resume to retry its retraining, or drop "
                                  f"{reference.bits} from search.bits")
    references = list(uniform)
    widest = max(references, key=lambda r: r.bits, default=None)
    vs_widest = None if widest is None else _best(
        [_saving(p, widest, objective) for p in points
         if as_accurate(p[2], widest.final)])  # type: ignore[arg-type]
    same: list[Saving | None] = []
    for point in points:
        matching = [r for r in references if as_accurate(r.final, point[2])]  # type: ignore[arg-type]
        cheapest = min(matching, key=lambda r: _cost(r.candidate, objective), default=None)
        if cheapest is not None and as_accurate(point[2], cheapest.final):  # type: ignore[arg-type]
            same.append(_saving(point, cheapest, objective))
    return HeadlineRow(objective, vs_widest, _best(same))


def headline(result: RunResult) -> list[HeadlineRow]:
    """The headline of a run: one row per searched hardware objective (empty without a final
    evaluation, i.e. when accuracy is not an objective). Front points that are themselves
    uniform configurations make no claim: they are the references; nor do points that are not
    claimants on the search's validation scores (`selection.claimants`), so retraining more
    points later adds rows to the report but never changes a claim."""
    allowed = set(claimants([p.candidate for p in result.front],
                            [r.candidate for r in result.uniform], result.objectives))
    points = [(p.id, p.candidate, p.final) for i, p in enumerate(result.front)
              if p.final is not None and i in allowed]
    if not any(p.final is not None for p in result.front):
        return []
    return [headline_row(name, points, result.uniform)  # type: ignore[arg-type]
            for name in result.config.search.objectives if name != "accuracy"]
