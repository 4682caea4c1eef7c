"""The results folder of an explore run, and the ``finetune`` step for chosen Pareto points.

Everything here reads the store through the Experiment (never a second copy of the numbers), so
what the tables and plots say is exactly what the store holds. Files are written atomically.

Folder layout: config.yaml, run.json, report.md, pareto.csv, pareto.json, candidates.csv,
arch/ (the Timeloop spec used), mappings/<id>/ (per-layer best mapping and problem YAML),
plots/ (pareto.png, bits.png, energy_breakdown.png), finetune.csv and finetune/<id>.pt.

CLI: ``python -m wrapper.report finetune DIR [--points N] [--epochs N]`` retrains chosen points of
a finished run longer.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from tqdm import tqdm

from .errors import ConfigError, QuantMapError, report_error
from .executors import Task
from .hwcost import layer_precisions
from .mapping import dump_mapping
from .problem import dump_problem
from .search import Genome, SearchResult
from .workload import layer_to_problem
from .yamlio import write_text_atomic

if TYPE_CHECKING:
    from .explore import Candidate, Experiment

COLUMNS = {"accuracy": "accuracy", "energy": "energy_pj", "latency": "latency_cycles",
           "edp": "edp_pj_cycles", "dram_accesses": "dram_accesses", "memory": "memory_bits"}
LABELS = {"accuracy": "top-1 accuracy", "energy": "energy [uJ]", "latency": "latency [cycles]",
          "edp": "EDP [uJ x cycles]", "dram_accesses": "DRAM accesses [words]",
          "memory": "memory [KiB]"}
_SCALE = {"energy": 1e-6, "edp": 1e-6, "memory": 1 / 8192}


def _number(value: float) -> float | int | None:
    """JSON-safe value (infinite costs of invalid hardware become null)."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def objective_values(candidate: "Candidate") -> dict[str, float | int | None]:
    """All six objectives of a candidate by column name (accuracy None when not computed)."""
    out = {COLUMNS["accuracy"]: None if candidate.accuracy is None
           else candidate.accuracy.accuracy}
    for name in COLUMNS:
        if name != "accuracy":
            out[COLUMNS[name]] = _number(candidate.hardware.objective(name))
    return out


def _ordered_front(experiment: "Experiment", result: SearchResult) -> list["Candidate"]:
    """Front members, best accuracy first (else by the first objective), with stable ids."""
    candidates = [experiment.candidate(genome) for genome, _ in result.front]
    first = experiment.objectives[0]
    sign = -1.0 if first.maximize else 1.0

    def order(cand: "Candidate") -> tuple[float, Genome]:
        value = sign * cand.objective(first.name)
        return (value if math.isfinite(value) else math.inf, cand.genome)

    return sorted(candidates, key=order)


def _point_id(index: int) -> str:
    return f"P{index + 1:02d}"


def _layer_rows(experiment: "Experiment", genome: Genome) -> list[dict[str, Any]]:
    precisions = layer_precisions(genome, experiment.config.search.last_outputs_bits)
    return [{"index": i + 1, "name": layer.name, "kind": layer.kind, "A": p.inputs,
             "W": p.weights, "O": p.outputs}
            for i, (layer, p) in enumerate(zip(experiment.layers, precisions))]


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _bits_columns(n_layers: int) -> list[str]:
    digits = max(2, len(str(n_layers)))
    return [f"L{i:0{digits}d}_{part}" for i in range(1, n_layers + 1) for part in ("A", "W")]


def _flat_bits(genome: Genome) -> list[int]:
    return [bit for pair in genome for bit in pair]


def write_pareto(experiment: "Experiment", front: Sequence["Candidate"]) -> None:
    """pareto.csv (one row per point, per-layer bits as columns) and pareto.json (per layer
    Inputs/Weights/Outputs widths and all objectives)."""
    header = ["id", *COLUMNS.values(), "accuracy_source", *_bits_columns(len(experiment.layers))]
    rows, points = [], []
    for index, cand in enumerate(front):
        values = objective_values(cand)
        source = None if cand.accuracy is None else cand.accuracy.source
        rows.append([_point_id(index), *values.values(), source, *_flat_bits(cand.genome)])
        points.append({"id": _point_id(index), "objectives": values, "accuracy_source": source,
                       "bits": [list(pair) for pair in cand.genome],
                       "layers": _layer_rows(experiment, cand.genome)})
    write_text_atomic(_csv_text(header, rows), experiment.out / "pareto.csv")
    document = {"run": experiment.run_id, "objectives": list(experiment.config.search.objectives),
                "points": points}
    write_text_atomic(json.dumps(document, indent=1) + "\n", experiment.out / "pareto.json")


def write_candidates(experiment: "Experiment") -> list[tuple[int, "Candidate"]]:
    """candidates.csv: every candidate the run scored, per generation, with all objectives."""
    rows, scored = [], []
    for generation, genome, _, phase in experiment.store.evaluations(experiment.run_id):
        cand = experiment.candidate(genome, phase)
        scored.append((generation, cand))
        source = None if cand.accuracy is None else cand.accuracy.source
        rows.append([generation, *objective_values(cand).values(), source, *_flat_bits(genome)])
    header = ["generation", *COLUMNS.values(), "accuracy_source",
              *_bits_columns(len(experiment.layers))]
    write_text_atomic(_csv_text(header, rows), experiment.out / "candidates.csv")
    return scored


def write_mappings(experiment: "Experiment", front: Sequence["Candidate"]) -> None:
    """mappings/<id>/Lxx.map.yaml and Lxx.problem.yaml: Timeloop inputs of every layer."""
    for index, cand in enumerate(front):
        folder = experiment.out / "mappings" / _point_id(index)
        precisions = layer_precisions(cand.genome, experiment.config.search.last_outputs_bits)
        results = experiment.hardware.layer_results(cand.genome)
        for i, (layer, precision, result) in enumerate(zip(experiment.layers, precisions,
                                                           results)):
            stem = f"L{i + 1:02d}"
            dump_problem(layer_to_problem(layer, precision), folder / f"{stem}.problem.yaml")
            if result is not None and result.mapping is not None:
                dump_mapping(result.mapping, folder / f"{stem}.map.yaml")


def energy_by_level(experiment: "Experiment", genome: Genome) -> dict[str, float]:
    """Network energy (pJ) per storage level plus the MACs, summed over layers."""
    totals: dict[str, float] = {}
    for result in experiment.hardware.layer_results(genome):
        if result is None or not result.stats.valid:
            continue
        for level in reversed(result.stats.levels):  # outermost (DRAM) first
            totals[level.name] = totals.get(level.name, 0.0) + level.energy_pj
        totals["MAC"] = totals.get("MAC", 0.0) + result.stats.mac_energy_pj
    return totals


def _finite(values: Sequence[float]) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _scaled(name: str, value: float) -> float:
    return value * _SCALE.get(name, 1.0)


def write_plots(experiment: "Experiment", front: Sequence["Candidate"],
                scored: Sequence[tuple[int, "Candidate"]]) -> None:
    """plots/pareto.png, plots/bits.png, plots/energy_breakdown.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = experiment.out / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    names = list(experiment.config.search.objectives)
    pairs = list(combinations(names, 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, (x_name, y_name) in zip(axes[0], pairs):
        for cands, style in (([c for _, c in scored], dict(c="0.75", s=10, label="candidates")),
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

    n_layers = len(experiment.layers)
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.28 * n_layers), 1.6 + 0.9 * len(front)),
                             squeeze=False)
    for ax, which, title in ((axes[0][0], 1, "weight bits W_i"),
                             (axes[1][0], 0, "activation bits A_i")):
        grid = [[pair[which] for pair in c.genome] for c in front] or [[0] * n_layers]
        image = ax.imshow(grid, aspect="auto", cmap="viridis",
                          vmin=min(experiment.config.search.bits),
                          vmax=max(experiment.config.search.bits))
        ax.set_yticks(range(len(front)), [_point_id(i) for i in range(len(front))])
        ax.set_xticks(range(n_layers), [str(i + 1) for i in range(n_layers)], fontsize=7)
        ax.set_title(title, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.03)
    axes[1][0].set_xlabel("layer")
    fig.tight_layout()
    fig.savefig(folder / "bits.png", dpi=110)
    plt.close(fig)

    breakdowns = [energy_by_level(experiment, c.genome) for c in front]
    levels = list(dict.fromkeys(name for b in breakdowns for name in b))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(front) + 2), 3.8))
    bottom = [0.0] * len(front)
    for level in levels:
        heights = [b.get(level, 0.0) * 1e-6 for b in breakdowns]
        ax.bar([_point_id(i) for i in range(len(front))], heights, bottom=bottom, label=level)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("energy [uJ]")
    ax.set_title(f"energy by level ({experiment.archs[next(iter(experiment.archs))].name})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "energy_breakdown.png", dpi=110)
    plt.close(fig)


def write_summary(experiment: "Experiment", result: SearchResult,
                  front: Sequence["Candidate"], seconds: float) -> None:
    """run.json (machine-readable) and report.md (what ran, where the accuracy came from)."""
    config = experiment.config
    sources = sorted({c.accuracy.source for c in front if c.accuracy is not None})
    counts = experiment.store.counts()
    summary = {
        "run": experiment.run_id, "generations": result.generations,
        "resumed_from_generation": result.resumed_from, "seconds": round(seconds, 1),
        "layers": len(experiment.layers), "objectives": list(config.search.objectives),
        "accuracy_sources": sources,
        "accuracy_proxy": (f"generations < {config.qat.proxy_generations} used "
                           f"{config.qat.proxy_epochs}-epoch QAT"
                           if config.qat.proxy_generations else None),
        "engine": config.engine.name, "store": str(experiment.store.path),
        "float_checkpoint": (experiment.accuracy.float_checkpoint()
                             if experiment.uses_accuracy else None),
        "store_counts": counts, "failures": experiment.store.failures(),
    }
    write_text_atomic(json.dumps(summary, indent=1) + "\n", experiment.out / "run.json")
    lines = [f"# QuantMap explore: {config.name}", "",
             f"- model {config.model.name} x{config.model.width_mult}, data {config.data.kind} "
             f"({config.data.resolution} px), {len(experiment.layers)} layers",
             f"- arch {config.arch.template if not config.arch.files else 'files'}, engine "
             f"{config.engine.name}, mapper {config.mapper.metric} "
             f"({config.mapper.max_evaluations} evaluations/layer)",
             f"- NSGA-II {config.search.parents}+{config.search.offspring}, "
             f"{result.generations} generations, seed {config.seed}, objectives "
             f"{', '.join(config.search.objectives)}",
             f"- accuracy source: {', '.join(sources) or 'not an objective'}"
             + (f"; proxy: {summary['accuracy_proxy']}" if summary["accuracy_proxy"] else ""),
             f"- wall time {seconds:.0f} s; store {counts['layer_results']} layer results, "
             f"{counts['accuracies']} accuracies, {len(summary['failures'])} failures", "",
             "| id | " + " | ".join(COLUMNS.values()) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for index, cand in enumerate(front):
        values = [("" if v is None else f"{v:.4g}") for v in objective_values(cand).values()]
        lines.append(f"| {_point_id(index)} | " + " | ".join(values) + " |")
    write_text_atomic("\n".join(lines) + "\n", experiment.out / "report.md")


def write_report(experiment: "Experiment", result: SearchResult,
                 seconds: float = 0.0) -> list[Genome]:
    """Every file of the results folder (except fine-tuning); returns the front in file order."""
    front = _ordered_front(experiment, result)
    write_pareto(experiment, front)
    scored = write_candidates(experiment)
    write_mappings(experiment, front)
    write_plots(experiment, front, scored)
    write_summary(experiment, result, front, seconds)
    return [c.genome for c in front]


def choose_points(genomes: Sequence[Genome], points: int) -> list[int]:
    """Indices of ``points`` evenly spread members of an ordered front (ends included)."""
    if points >= len(genomes):
        return list(range(len(genomes)))
    if points == 1:
        return [0]
    return sorted({round(i * (len(genomes) - 1) / (points - 1)) for i in range(points)})


def finetune_job(checkpoint: str, bits: Genome, data_spec: object, settings: object, out: str,
                 threads: int) -> float:
    """One fine-tuning job (runs in an executor worker); returns the final top-1."""
    import torch

    from .explore import _bundle
    from .qat.train import finetune as qat_finetune
    torch.set_num_threads(threads)
    return qat_finetune(checkpoint, bits, _bundle(data_spec), settings,  # type: ignore[arg-type]
                        out=out).top1


def finetune(experiment: "Experiment", genomes: Sequence[Genome], points: int,
             epochs: int) -> Path:
    """Retrain chosen points of the front (ordered as in pareto.csv) for ``epochs`` epochs, in
    parallel through the executor; writes finetune/<id>.pt and finetune.csv."""
    accuracy = experiment.accuracy
    phase = accuracy.phase(experiment.config.search.generations)
    settings = accuracy.settings(phase, epochs=epochs)
    checkpoint = accuracy.float_checkpoint(experiment.executor)
    chosen = {_point_id(i): genomes[i] for i in choose_points(genomes, points)}
    tasks = [Task(pid, finetune_job, (checkpoint, genome, experiment.data_spec, settings,
                                      str(experiment.out / "finetune" / f"{pid}.pt"),
                                      experiment.config.qat.threads), kind="qat")
             for pid, genome in chosen.items()]
    finished = {}
    with tqdm(total=len(tasks), desc="finetune", unit="point", file=sys.stderr) as bar:
        for outcome in experiment.executor.run(tasks):
            bar.update(1)
            finished[outcome.key] = outcome
    rows = []
    for pid, genome in chosen.items():
        stored = accuracy.get(genome, phase)
        outcome = finished[pid]
        rows.append([pid, None if stored is None else stored.accuracy,
                     None if stored is None else stored.source,
                     outcome.value if outcome.ok else None, epochs, outcome.error])
    header = ["id", "search_accuracy", "search_accuracy_source", "finetuned_accuracy", "epochs",
              "error"]
    return write_text_atomic(_csv_text(header, rows), experiment.out / "finetune.csv")


def front_genomes(out: Path) -> list[Genome]:
    """The Pareto points of a finished run, in pareto.json order."""
    path = out / "pareto.json"
    if not path.is_file():
        raise ConfigError("no pareto.json in this folder", file=str(out), field="DIR",
                          fix="give the results folder of a finished explore run")
    points = json.loads(path.read_text())["points"]
    return [tuple((int(a), int(w)) for a, w in p["bits"]) for p in points]


def main(argv: Sequence[str] | None = None) -> int:
    from .config import load_config
    from .explore import CONFIG_NAME, Experiment, OneLineParser

    parser = OneLineParser(prog="python -m wrapper.report",
                     description="Steps on a finished explore results folder.")
    sub = parser.add_subparsers(dest="command", required=True)
    tune = sub.add_parser("finetune", help="retrain chosen Pareto points longer")
    tune.add_argument("folder", help="results folder of an explore run")
    tune.add_argument("--points", type=int, default=3, help="how many points (default 3)")
    tune.add_argument("--epochs", type=int, default=10, help="QAT epochs (default 10)")
    try:
        args = parser.parse_args(argv)
        out = Path(args.folder)
        genomes = front_genomes(out)
        config = load_config(out / CONFIG_NAME)
        experiment = Experiment(config, out)
        try:
            path = finetune(experiment, genomes, args.points, args.epochs)
        finally:
            experiment.close()
    except QuantMapError as exc:
        return report_error(exc)
    print(f"fine-tuned: {path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
