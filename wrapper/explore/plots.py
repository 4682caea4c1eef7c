"""The plots of an explore run (plots/pareto.png, bits.png, energy_breakdown.png,
accuracy_vs_energy.png), drawn from its `RunResult`. matplotlib is imported inside the drawing
functions only: it is heavy and only needed here.

Every Pareto plot draws the uniform configurations (every layer at b bits) as a reference line,
as the paper's figures do, so a mixed-precision point's gain over uniform quantization is
visible at a glance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Sequence

from .results import RunResult, is_uniform

LABELS = {"accuracy": "validation top-1 (search score)", "energy": "energy [uJ]", "latency": "latency [cycles]",
          "edp": "EDP [uJ x cycles]", "dram_accesses": "DRAM accesses [words]",
          "memory": "memory [KiB]"}
_SCALE = {"energy": 1e-6, "edp": 1e-6, "memory": 1 / 8192}


def _finite(values: Sequence[float]) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _scaled(name: str, value: float) -> float:
    return value * _SCALE.get(name, 1.0)


@dataclass(frozen=True)
class AccuracyPoint:
    """One configuration of the accuracy-vs-energy figure: final test top-1 over seeds."""

    label: str
    energy_pj: float
    test_mean: float
    test_std: float


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def accuracy_energy_figure(uniform: Sequence[AccuracyPoint], front: Sequence[AccuracyPoint],
                           title: str, path: Path) -> Path:
    """The paper's accuracy-vs-energy figure: the uniform configurations as a line, the
    mixed-precision front points as markers, each with its seed spread as an error bar (front
    points that are uniform configurations belong to the line)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for points, style in ((sorted(uniform, key=lambda p: p.energy_pj),
                           dict(fmt="o--", color="0.3", label="uniform (every layer at b bits)")),
                          (sorted(front, key=lambda p: p.energy_pj),
                           dict(fmt="s", color="tab:red", label="mixed precision (front)"))):
        if not points:
            continue
        ax.errorbar([p.energy_pj * 1e-6 for p in points], [p.test_mean for p in points],
                    yerr=[p.test_std for p in points], capsize=3, ms=5, **style)
        for p in points:
            ax.annotate(p.label, (p.energy_pj * 1e-6, p.test_mean), fontsize=7,
                        textcoords="offset points", xytext=(4, -10))
    ax.set_xlabel("energy [uJ]")
    ax.set_ylabel("test top-1 (mean ± std over seeds)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _accuracy_points(result: RunResult) -> tuple[list[AccuracyPoint], list[AccuracyPoint]]:
    uniform = [AccuracyPoint(f"{r.bits}b", r.candidate.hardware.energy_pj, r.final.test_mean,
                             r.final.test_std) for r in result.uniform if r.final is not None]
    front = [AccuracyPoint(p.id, p.candidate.hardware.energy_pj, p.final.test_mean,
                           p.final.test_std) for p in result.front
             if p.final is not None and not is_uniform(p.candidate.genome)]
    return uniform, front


def write_plots(result: RunResult) -> None:
    """plots/pareto.png (every objective pair, with the uniform reference line), bits.png
    (per-layer widths of the front), energy_breakdown.png (energy per level of each front
    member) and, when the front was evaluated on test, accuracy_vs_energy.png."""
    plt = _pyplot()

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
                             (front, dict(c="tab:red", s=22, label="Pareto front", zorder=3))):
            points = [(c.objective(x_name), c.objective(y_name)) for c in cands]
            points = [p for p in points if _finite(p)]
            if points:
                ax.scatter([_scaled(x_name, x) for x, _ in points],
                           [_scaled(y_name, y) for _, y in points], **style)
        line = [(c.objective(x_name), c.objective(y_name))
                for c in (ref.candidate for ref in result.uniform)]
        line = [p for p in line if _finite(p)]
        if line:
            ax.plot([_scaled(x_name, x) for x, _ in line], [_scaled(y_name, y) for _, y in line],
                    "o--", color="0.3", ms=4, lw=1,
                    label=f"uniform {result.uniform[0].bits}..{result.uniform[-1].bits} bit")
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

    uniform, front_points = _accuracy_points(result)
    if uniform or front_points:
        accuracy_energy_figure(uniform, front_points, f"{result.config.name}: "
                               f"{result.config.model.name} on {result.arch_name}",
                               folder / "accuracy_vs_energy.png")
