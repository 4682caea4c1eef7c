"""Grouping equal rows of an integer array fast (numpy's ``unique(axis=0)`` sorts rows
lexicographically and dominates the exact mapper's time on large spaces)."""

from __future__ import annotations

import numpy as np

_WEIGHTS = np.random.default_rng(20240405).integers(1, 1 << 62, size=4096, dtype=np.int64)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse) of the distinct rows of a 2-D integer array: ``rows[first]`` are the
    distinct rows and ``rows[first][inverse]`` equals ``rows``.

    Rows are grouped by a 64-bit hash (a fixed random linear form, wrapping), and the grouping is
    then checked row by row; on a collision the exact lexicographic ``np.unique`` is used, so the
    result is always exact. Group order follows the hash, and is fixed for given rows.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.shape[1] > len(_WEIGHTS):
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    with np.errstate(over="ignore"):
        keys = rows @ _WEIGHTS[:rows.shape[1]]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    if not np.array_equal(rows[first][inverse], rows):
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    return first, inverse
