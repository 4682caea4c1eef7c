"""Factor arithmetic of tiling: prime factorizations and every ordered way to split a loop bound
into a product of per-level factors (the building blocks of the mapspace)."""

from __future__ import annotations

import itertools

import numpy as np


def prime_factors(n: int) -> dict[int, int]:
    """Prime -> exponent."""
    out: dict[int, int] = {}
    p = 2
    while p * p <= n:
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
        p += 1
    if n > 1:
        out[n] = out.get(n, 0) + 1
    return out


def ordered_factorizations(n: int, k: int) -> np.ndarray:
    """(m, k): all k-tuples of positive integers whose product is n. Each prime's exponent is
    spread over the k places (weak compositions) and the primes combine by outer product."""
    out = np.ones((1, k), dtype=np.int64)
    for p, e in prime_factors(n).items():
        powers = p ** compositions(e, k)
        out = (out[:, None, :] * powers[None, :, :]).reshape(-1, k)
    return out


def compositions(total: int, parts: int) -> np.ndarray:
    """(c, parts): weak compositions of ``total`` into ``parts`` non-negative integers (stars
    and bars: the gaps between ``parts - 1`` bars among ``total + parts - 1`` places)."""
    if parts == 0:
        return np.zeros((1 if total == 0 else 0, 0), dtype=np.int64)
    choices = list(itertools.combinations(range(total + parts - 1), parts - 1))
    bars = np.array(choices, dtype=np.int64).reshape(len(choices), parts - 1)
    edges = np.concatenate([np.full((len(bars), 1), -1), bars,
                            np.full((len(bars), 1), total + parts - 1)], axis=1)
    return np.diff(edges, axis=1) - 1


# ---- spatial X/Y ---------------------------------------------------------------------------
