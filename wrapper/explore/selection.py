"""Which front points the final evaluation retrains, decided on the validation split only.

Evenly spaced picks along one objective spend slots on the all-low-width end of the front and on
front points that are uniform configurations (the references, retrained anyway), and can miss the
one point that matters: a mixed configuration as accurate as a uniform one but cheaper. So:

- every claimant is always evaluated: a mixed front point at least as accurate as a uniform
  reference on the search's validation scores and cheaper than it in some hardware objective
  (every point dominating a uniform reference is one). Only claimants can make the headline's
  claims, so the claim never depends on how many other points were retrained;
- the remaining slots of ``final.points`` go to the other mixed points, greedily by how much each
  adds to the validation hypervolume of the evaluated set (uniform references included), using
  pymoo's exact hypervolume: rows for the front's shape, not for claims.

The order is fixed by validation scores alone, so a later ``report final`` with more points
evaluates a superset, and no test score ever influences which points are retrained.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from pymoo.indicators.hv import HV

from .nsga2 import Objective
from .results import Candidate, is_uniform


def _minimized(candidate: Candidate, objectives: Sequence[Objective]) -> tuple[float, ...] | None:
    """The candidate's objective vector as values to minimise (None: unknown or invalid)."""
    values = candidate.values(objectives)
    signed = tuple(-v if o.maximize else v for v, o in zip(values, objectives))
    return signed if all(math.isfinite(v) for v in signed) else None


def hypervolume(vectors: np.ndarray, reference: np.ndarray) -> float:
    """Hypervolume (minimisation) of ``vectors`` below ``reference``; 0 for an empty set."""
    return float(HV(ref_point=reference)(vectors)) if len(vectors) else 0.0


def claimants(front: Sequence[Candidate], uniform: Sequence[Candidate],
              objectives: Sequence[Objective]) -> list[int]:
    """Indices into ``front`` of the mixed points that could claim a saving: on validation at
    least as accurate as some uniform reference and cheaper than it in a hardware objective."""
    accuracy = [i for i, o in enumerate(objectives) if o.name == "accuracy"]
    out = []
    for index, candidate in enumerate(front):
        vector = _minimized(candidate, objectives)
        if vector is None or is_uniform(candidate.genome):
            continue
        for ref in filter(None, (_minimized(c, objectives) for c in uniform)):
            if all(vector[i] <= ref[i] for i in accuracy) and any(
                    vector[i] < ref[i] for i in range(len(objectives)) if i not in accuracy):
                out.append(index)
                break
    return out


def choose_final(front: Sequence[Candidate], uniform: Sequence[Candidate],
                 objectives: Sequence[Objective], points: int) -> list[int]:
    """Indices into ``front`` of the points to retrain: every claimant (always, even beyond
    ``points``), then the other mixed points by their hypervolume contribution until
    ``points`` are chosen. Best contribution first."""
    vectors = {i: _minimized(c, objectives) for i, c in enumerate(front)}
    mixed = [i for i, c in enumerate(front)
             if not is_uniform(c.genome) and vectors[i] is not None]
    refs = [v for v in (_minimized(c, objectives) for c in uniform) if v is not None]
    if not mixed:
        return []
    # Normalise so every objective weighs alike, with a reference point just past the worst.
    everything = np.array([vectors[i] for i in mixed] + refs, dtype=float)
    low, high = everything.min(axis=0), everything.max(axis=0)
    scale = np.where(high > low, high - low, 1.0)

    def normal(vector: Sequence[float]) -> np.ndarray:
        return (np.asarray(vector, dtype=float) - low) / scale

    reference = np.full(len(objectives), 1.1)
    must = claimants(front, uniform, objectives)
    order = _greedy(must, [normal(vectors[i]) for i in mixed], mixed,
                    [normal(r) for r in refs], reference)
    return order[:max(points, len(must))]


def _greedy(must: list[int], normals: list[np.ndarray], mixed: list[int],
            refs: list[np.ndarray], reference: np.ndarray) -> list[int]:
    """All of ``mixed`` ordered by greedy hypervolume gain, the ``must`` points first (in the
    same greedy order among themselves); ties go to the earlier front point."""
    vector = dict(zip(mixed, normals))
    order: list[int] = []
    for pool in (must, [i for i in mixed if i not in must]):
        left = list(pool)
        while left:
            base = [vector[i] for i in order] + refs
            current = hypervolume(np.array(base), reference)
            gains = [hypervolume(np.array(base + [vector[i]]), reference) - current
                     for i in left]
            best = left[int(np.argmax(gains))]
            order.append(best)
            left.remove(best)
    return order
