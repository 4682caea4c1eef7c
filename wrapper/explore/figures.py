"""The paper's hardware-only results with the built-in engine (``make figures``).

1. Energy of MobileNetV1 (224 px, 28 layers) versus uniform weight bits w = 2..8 with 8-bit
   activations, on the Eyeriss-like and Simba-like templates (the paper's figure). With 16-bit words
   k = floor(16 / w) = 8, 5, 4, 3, 2, 2, 2, so energy can only step down at w = 5, 4, 3, 2.
2. What remapping is worth: at each w, the energy of the best mapping found for the packed layer
   versus the energy of keeping the mapping that was best for 16-bit operands (evaluated with the
   packed operands). The difference is the part of the saving that only a joint search finds.
   (How "best mapping found" is formed per width: see ``arch_points``.)

3. For a finished explore run (``--run RUN``): the paper's accuracy-vs-energy figure, test top-1
   (mean ± std over the final evaluation's seeds) of the uniform configurations as a line and of
   the mixed-precision front points, read from RUN/pareto.json.

CLI: ``quantmap figures [-o DIR] [--evaluations N] [--workers N]``; writes
figures.csv, figures.json, energy_vs_weight_bits.png and remap_savings.png, and prints the table.
Mapper results go to DIR/store.sqlite, so a second run is instant. With ``--run RUN`` it writes
DIR/accuracy_vs_energy.png instead.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..errors import BackendError, ConfigError
from ..network.layers import extract_layers
from ..network.registry import build_network
from ..spec.costmodel import MapperSettings
from ..spec.precision import Precision
from ..spec.yamlio import write_text_atomic
from .config import ArchConfig
from .executors import make_executor
from .experiment import build_archs
from .hardware import HardwareCost, LayerJob, cost_model
from .plots import AccuracyPoint, accuracy_energy_figure
from .results import is_uniform
from .store import Store

ARCHS = ("eyeriss", "simba")
WEIGHT_BITS = (2, 3, 4, 5, 6, 7, 8)
ACTIVATION_BITS = 8
NATIVE = Precision(16, 16, 16)


@dataclass(frozen=True)
class FigurePoint:
    """One (arch, weight bits) point, energies in pJ: the joint result, the mapper's own result
    at this width, and the 16-bit mapping kept; cycles of the joint result."""

    arch: str
    weight_bits: int
    remapped_pj: float
    searched_pj: float
    kept_pj: float
    cycles: int

    @property
    def saved_by_remapping(self) -> float:
        """Fraction of the kept-mapping energy that remapping saves."""
        return 1.0 - self.remapped_pj / self.kept_pj


def _compute(hw: HardwareCost, jobs: Sequence[LayerJob], desc: str) -> None:
    groups = hw.missing_jobs(jobs)
    if groups:
        with tqdm(total=len(groups), desc=desc, unit="job", file=sys.stderr) as bar:
            hw.compute(groups, bar.update)


def _check_complete(hw: HardwareCost, jobs: Sequence[LayerJob]) -> None:
    """Every layer must have a valid best mapping; a sum over missing layers would be wrong."""
    bad = [job for job in jobs if (r := hw.store.get_layer(job.key)) is None or not r.stats.valid]
    if bad:
        failures = hw.store.failures()
        detail = failures[-1]["message"] if failures else "no valid mapping"
        raise BackendError(f"{len(bad)} of {len(jobs)} mapper jobs have no valid result, "
                           f"e.g. {bad[0].layer} {bad[0].precision.label()}: {detail}",
                           file=str(hw.store.path), field="mapper",
                           fix="run again to retry the failed jobs; the others are stored")


def arch_points(hw: HardwareCost, arch_name: str) -> list[FigurePoint]:
    """Both curves for one arch: map every layer at 16 bits and at each (8, w, 8).

    Joint result per layer and width: the lower-energy of the mapper's result at w and the best
    mapping of the next wider width re-evaluated at w (narrower operands only shrink packed
    tiles and accesses, so that mapping stays valid and never costs more). Walking from 16 bits
    down makes the curve independent of how lucky one mapper run was at one width; the
    mapper's own results are reported beside it (``searched_pj``).
    """
    n = len(hw.layers)
    native = [hw.job(i, NATIVE) for i in range(n)]
    packed = {w: [hw.job(i, Precision(ACTIVATION_BITS, w, ACTIVATION_BITS)) for i in range(n)]
              for w in WEIGHT_BITS}
    every = native + [job for jobs in packed.values() for job in jobs]
    _compute(hw, every, f"map {arch_name}")
    _check_complete(hw, every)
    model = cost_model(hw.engine, hw.options_json)
    kept_mappings = [hw.store.get_layer(job.key).mapping for job in native]  # type: ignore[union-attr]
    carried = list(kept_mappings)
    points = []
    for w in sorted(WEIGHT_BITS, reverse=True):
        joint = searched = kept = 0.0
        cycles = 0
        for i, job in enumerate(packed[w]):
            found = hw.store.get_layer(job.key)
            assert found is not None and found.mapping is not None  # _check_complete
            inherited = model.evaluate(job.arch, job.problem, carried[i])
            best_mapping, best = ((carried[i], inherited)
                                  if inherited.valid and inherited.energy_pj < found.stats.energy_pj
                                  else (found.mapping, found.stats))
            carried[i] = best_mapping
            joint += best.energy_pj
            cycles += best.cycles
            searched += found.stats.energy_pj
            kept += model.evaluate(job.arch, job.problem, kept_mappings[i]).energy_pj
        points.append(FigurePoint(arch_name, w, joint, searched, kept, cycles))
    return sorted(points, key=lambda p: p.weight_bits)


def make_figures(out: Path, evaluations: int, workers: int,
                 exact: bool = False) -> list[FigurePoint]:
    """Compute both figures on both arches and write tables and plots into ``out``."""


    layers = extract_layers(build_network("mobilenet_v1"), 224)
    # The paper searched with a sampling mapper; ``exact`` proves every layer optimal instead
    # (minutes per Simba layer at 224 px).
    settings = MapperSettings(metric="edp", max_evaluations=evaluations, exact=exact)
    points = []
    with Store(out / "store.sqlite") as store:
        executor = make_executor("local", workers=workers)
        try:
            for name in ARCHS:
                hw = HardwareCost(archs=build_archs(ArchConfig(template=name), out / "arch" / name),
                                  layers=layers, engine="builtin", engine_options={},
                                  settings=settings, store=store, executor=executor,
                                  last_outputs_bits=ACTIVATION_BITS)
                points.extend(arch_points(hw, name))
        finally:
            executor.close()
    _write(out, points)
    _plot(out, points)
    return points


def run_figure(run: Path, out: Path) -> Path:
    """The accuracy-vs-energy figure of a finished explore run, from its pareto.json alone."""
    path = run / "pareto.json"
    if not path.is_file():
        raise ConfigError("no pareto.json in this folder", file=str(run), field="--run",
                          fix="give the results folder of a finished explore run")
    document = json.loads(path.read_text())

    def points(entries: list[dict], label: str) -> list[AccuracyPoint]:
        return [AccuracyPoint(label.format(**e), e["objectives"]["energy_pj"],
                              e["final"]["test_accuracy_mean"], e["final"]["test_accuracy_std"])
                for e in entries if e.get("final", {}).get("test_accuracy_mean") is not None
                and e["objectives"].get("energy_pj") is not None]

    uniform = points(document.get("uniform", []), "{bits}b")
    front = points([p for p in document["points"] if not is_uniform(p["bits"])], "{id}")
    if not uniform and not front:
        raise ConfigError("the run has no test accuracies (no final evaluation)",
                          file=str(path), field="final",
                          fix="use a run with accuracy among its objectives")
    return accuracy_energy_figure(uniform, front, f"run {document['run']}",
                                  out / "accuracy_vs_energy.png")


def _write(out: Path, points: Sequence[FigurePoint]) -> None:
    rows = ["arch,weight_bits,energy_uj,mapper_at_this_width_energy_uj,"
            "kept_16bit_mapping_energy_uj,saved_by_remapping,cycles"]
    rows += [f"{p.arch},{p.weight_bits},{p.remapped_pj * 1e-6:.3f},{p.searched_pj * 1e-6:.3f},"
             f"{p.kept_pj * 1e-6:.3f},{p.saved_by_remapping:.4f},{p.cycles}" for p in points]
    write_text_atomic("\n".join(rows) + "\n", out / "figures.csv")
    data = [{"arch": p.arch, "weight_bits": p.weight_bits, "energy_pj": p.remapped_pj,
             "mapper_at_this_width_energy_pj": p.searched_pj,
             "kept_16bit_mapping_energy_pj": p.kept_pj, "cycles": p.cycles,
             "saved_by_remapping": p.saved_by_remapping} for p in points]
    write_text_atomic(json.dumps(data, indent=1) + "\n", out / "figures.json")


def _plot(out: Path, points: Sequence[FigurePoint]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ARCHS), figsize=(5 * len(ARCHS), 3.6), squeeze=False)
    for ax, name in zip(axes[0], ARCHS):
        mine = [p for p in points if p.arch == name]
        bits = [p.weight_bits for p in mine]
        ax.plot(bits, [p.remapped_pj * 1e-6 for p in mine], "o-", label="remapped (joint)")
        ax.plot(bits, [p.kept_pj * 1e-6 for p in mine], "s--", label="16-bit mapping kept")
        for p in mine:
            ax.annotate(f"k={16 // p.weight_bits}", (p.weight_bits, p.remapped_pj * 1e-6),
                        fontsize=7, textcoords="offset points", xytext=(0, 7), ha="center")
        ax.set_title(f"MobileNetV1 on {name}-like, {ACTIVATION_BITS}-bit activations")
        ax.set_xlabel("weight bits (uniform)")
        ax.set_ylabel("energy [uJ]")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "energy_vs_weight_bits.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    width = 0.8 / len(ARCHS)
    for j, name in enumerate(ARCHS):
        mine = [p for p in points if p.arch == name]
        ax.bar([p.weight_bits + (j - (len(ARCHS) - 1) / 2) * width for p in mine],
               [100 * p.saved_by_remapping for p in mine], width, label=name)
    ax.set_xlabel("weight bits (uniform)")
    ax.set_ylabel("energy saved by remapping [%]")
    ax.set_title("remapping under packing vs keeping the 16-bit mapping")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out / "remap_savings.png", dpi=120)
    plt.close(fig)
