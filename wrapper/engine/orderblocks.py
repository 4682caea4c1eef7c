"""Every loop-order combination of many factor choices, produced in blocks of bounded size.

A factor choice's loop orders are the product, over its temporal levels, of the level's
`MapSpace.order_classes`; with many levels and loops this product runs into millions for one
choice, so listing it whole (let alone for thousands of choices) does not fit in memory. The
combinations are numbered instead (choice by choice, the last level varying fastest, as
`itertools.product` lists them) and each block decodes only its own numbers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .mapspace import MapSpace


def order_blocks(space: MapSpace, nonunit: np.ndarray, low: int, size: int
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks (row index ``[m]``, orders ``[m, levels, dims]``) of at most ``size`` entries:
    for each row of ``nonunit`` ``[n, levels - low, dims]`` (which loops of the temporal levels
    ``low`` and above are longer than 1), in row order, every combination of those levels'
    order classes; levels below ``low`` keep the default order."""
    n, assigned, _ = nonunit.shape
    if n == 0:
        return
    bits = 1 << np.arange(len(space.dims), dtype=np.int64)
    tables, offsets, sizes = [], [], []
    for i in range(assigned):
        codes, inverse = np.unique(nonunit[:, i, :].astype(np.int64) @ bits, return_inverse=True)
        classes = [space.order_classes(low + i, frozenset(
            d for j, d in enumerate(space.dims) if code >> j & 1)) for code in codes.tolist()]
        counts = np.array([len(c) for c in classes], dtype=np.int64)
        tables.append(np.concatenate(classes))
        offsets.append((np.cumsum(counts) - counts)[inverse.reshape(-1)])
        sizes.append(counts[inverse.reshape(-1)])
    per_row = np.prod(sizes, axis=0) if sizes else np.ones(n, dtype=np.int64)
    ends = np.cumsum(per_row)
    base = space.default_orders()
    total = int(ends[-1])
    for start in range(0, total, size):
        position = np.arange(start, min(start + size, total), dtype=np.int64)
        rows = np.searchsorted(ends, position, side="right")
        rest = position - (ends[rows] - per_row[rows])
        orders = np.repeat(base[None], len(position), axis=0)
        for i in reversed(range(assigned)):
            k = sizes[i][rows]
            orders[:, low + i] = tables[i][offsets[i][rows] + rest % k]
            rest = rest // k
        yield rows, orders
