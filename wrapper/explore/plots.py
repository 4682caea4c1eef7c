"""The plots of an explore run (plots/pareto.png, bits.png, energy_breakdown.png), drawn from its
`RunResult`. matplotlib is imported inside `write_plots` only: it is heavy and only needed here."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

from .results import RunResult

LABELS = {"accuracy": "top-1 accuracy", "energy": "energy [uJ]", "latency": "latency [cycles]",
          "edp": "EDP [uJ x cycles]", "dram_accesses": "DRAM accesses [words]",
          "memory": "memory [KiB]"}
_SCALE = {"energy": 1e-6, "edp": 1e-6, "memory": 1 / 8192}


def _finite(values: Sequence[float]) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _scaled(name: str, value: float) -> float:
    return value * _SCALE.get(name, 1.0)


def write_plots(result: RunResult) -> None:
    """plots/pareto.png (every objective pair), bits.png (per-layer widths of the front) and
    energy_breakdown.png (energy per level of each front member)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = result.out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    front = [point.candidate for point in result.front]
    ids = [point.id for point in result.front]
    names = list(result.config.search.objectives)
    pairs = list(combinations(names, 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, (x_name, y_name) in zip(axes[0], pairs):
        for cands, style in (([c for _, c in result.scored],
                              dict(c="0.75", s=10, label="candidates")),
                             (front, dict(c="tab:red", s=22, label="Pareto front"))):
            points = [(c.objective(x_name), c.objective(y_name)) for c in cands]
            points = [p for p in points if _finite(p)]
            if points:
                ax.scatter([_scaled(x_name, x) for x, _ in points],
                           [_scaled(y_name, y) for _, y in points], **style)
        ax.set_xlabel(LABELS[x_name])
        ax.set_ylabel(LABELS[y_name])
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "pareto.png", dpi=110)
    plt.close(fig)

    n_layers = len(result.layers)
    bits = result.config.search.bits
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.28 * n_layers), 1.6 + 0.9 * len(front)),
                             squeeze=False)
    for ax, which, title in ((axes[0][0], 1, "weight bits W_i"),
                             (axes[1][0], 0, "activation bits A_i")):
        grid = [[pair[which] for pair in c.genome] for c in front] or [[0] * n_layers]
        image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=min(bits), vmax=max(bits))
        ax.set_yticks(range(len(front)), ids)
        ax.set_xticks(range(n_layers), [str(i + 1) for i in range(n_layers)], fontsize=7)
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03)
    axes[1][0].set_xlabel("layer")
    fig.tight_layout()
    fig.savefig(folder / "bits.png", dpi=110)
    plt.close(fig)

    breakdowns = [point.energy_by_level() for point in result.front]
    levels = list(dict.fromkeys(name for b in breakdowns for name in b))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(front) + 2), 3.8))
    bottom = [0.0] * len(front)
    for level in levels:
        heights = [b.get(level, 0.0) * 1e-6 for b in breakdowns]
        ax.bar(ids, heights, bottom=bottom, label=level)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("energy [uJ]")
    ax.set_title(f"energy by level ({result.arch_name})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "energy_breakdown.png", dpi=110)
    plt.close(fig)
