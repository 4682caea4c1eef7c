"""The results folder of an explore run, written from its `RunResult` (atomically).

Folder layout: config.yaml, run.json, report.md, pareto.csv, pareto.json, candidates.csv,
arch/ (the Timeloop spec used), mappings/<id>/ (per-layer best mapping and problem YAML),
plots/ (pareto.png, bits.png, energy_breakdown.png), finetune.csv and finetune/<id>.pt.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Sequence

from ..network.layers import layer_to_problem
from ..spec.mapping import dump_mapping
from ..spec.problem import dump_problem
from ..spec.yamlio import write_text_atomic
from .nsga2 import Genome
from .plots import write_plots
from .results import Candidate, FrontPoint, RunResult

COLUMNS = {"accuracy": "accuracy", "energy": "energy_pj", "latency": "latency_cycles",
           "edp": "edp_pj_cycles", "dram_accesses": "dram_accesses", "memory": "memory_bits"}


def _number(value: float) -> float | int | None:
    """JSON-safe value (infinite costs of invalid hardware become null)."""
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def objective_values(candidate: Candidate) -> dict[str, float | int | None]:
    """All six objectives of a candidate by column name (accuracy None when not computed)."""
    out = {COLUMNS["accuracy"]: None if candidate.accuracy is None
           else candidate.accuracy.accuracy}
    for name in COLUMNS:
        if name != "accuracy":
            out[COLUMNS[name]] = _number(candidate.hardware.objective(name))
    return out


def _layer_rows(result: RunResult, point: FrontPoint) -> list[dict[str, Any]]:
    return [{"index": i + 1, "name": layer.name, "kind": layer.kind, "A": p.inputs,
             "W": p.weights, "O": p.outputs}
            for i, (layer, p) in enumerate(zip(result.layers, point.precisions))]


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A CSV document (header plus rows) as text, for atomic writing."""
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


def _source(candidate: Candidate) -> str | None:
    return None if candidate.accuracy is None else candidate.accuracy.source


def write_pareto(result: RunResult) -> None:
    """pareto.csv (one row per point, per-layer bits as columns) and pareto.json (per layer
    Inputs/Weights/Outputs widths and all objectives)."""
    header = ["id", *COLUMNS.values(), "accuracy_source", *_bits_columns(len(result.layers))]
    rows, points = [], []
    for point in result.front:
        cand = point.candidate
        values = objective_values(cand)
        rows.append([point.id, *values.values(), _source(cand), *_flat_bits(cand.genome)])
        points.append({"id": point.id, "objectives": values, "accuracy_source": _source(cand),
                       "bits": [list(pair) for pair in cand.genome],
                       "layers": _layer_rows(result, point)})
    write_text_atomic(csv_text(header, rows), result.out / "pareto.csv")
    document = {"run": result.run_id, "objectives": list(result.config.search.objectives),
                "points": points}
    write_text_atomic(json.dumps(document, indent=1) + "\n", result.out / "pareto.json")


def write_candidates(result: RunResult) -> None:
    """candidates.csv: every candidate the run scored, per generation, with all objectives."""
    rows = [[generation, *objective_values(cand).values(), _source(cand),
             *_flat_bits(cand.genome)] for generation, cand in result.scored]
    header = ["generation", *COLUMNS.values(), "accuracy_source",
              *_bits_columns(len(result.layers))]
    write_text_atomic(csv_text(header, rows), result.out / "candidates.csv")


def write_mappings(result: RunResult) -> None:
    """mappings/<id>/Lxx.map.yaml and Lxx.problem.yaml: Timeloop inputs of every layer."""
    for point in result.front:
        folder = result.out / "mappings" / point.id
        for i, (layer, precision, layer_result) in enumerate(zip(
                result.layers, point.precisions, point.layer_results)):
            stem = f"L{i + 1:02d}"
            dump_problem(layer_to_problem(layer, precision), folder / f"{stem}.problem.yaml")
            if layer_result is not None and layer_result.mapping is not None:
                dump_mapping(layer_result.mapping, folder / f"{stem}.map.yaml")


def _search_line(search: Any, result: RunResult) -> str:
    """Which search ran and its budget: population sizes, generations and QAT runs (the
    accuracies the store holds, a cached run's included)."""
    name = {"nsga2": "the paper's NSGA-II", "guided": "guided NSGA-II"}[search.algorithm]
    line = (f"{name} ({search.algorithm}) {search.parents}+{search.offspring}, "
            f"{result.search.generations} generations")
    if search.algorithm == "guided":
        line += f", {search.pool} children priced and predicted per generation"
    return line + f", {result.store_counts['accuracies']} QAT runs in the store"


def write_summary(result: RunResult) -> None:
    """run.json (machine-readable) and report.md (what ran, where the accuracy came from)."""
    config = result.config
    front = [point.candidate for point in result.front]
    sources = sorted({c.accuracy.source for c in front if c.accuracy is not None})
    counts = result.store_counts
    summary = {
        "run": result.run_id, "algorithm": config.search.algorithm,
        "generations": result.search.generations,
        "resumed_from_generation": result.search.resumed_from,
        "seconds": round(result.seconds, 1),
        "layers": len(result.layers), "objectives": list(config.search.objectives),
        "accuracy_sources": sources,
        "accuracy_proxy": (f"generations < {config.qat.proxy_generations} used "
                           f"{config.qat.proxy_epochs}-epoch QAT"
                           if config.qat.proxy_generations else None),
        "engine": config.engine.name, "store": str(result.store_path),
        "float_checkpoint": result.float_checkpoint,
        "store_counts": counts, "failures": result.failures,
    }
    write_text_atomic(json.dumps(summary, indent=1) + "\n", result.out / "run.json")
    lines = [f"# QuantMap explore: {config.name}", "",
             f"- model {config.model.name} x{config.model.width_mult}, data {config.data.kind} "
             f"({config.data.resolution} px), {len(result.layers)} layers",
             f"- arch {config.arch.template if not config.arch.files else 'files'}, engine "
             f"{config.engine.name}, mapper {config.mapper.metric} "
             f"({config.mapper.max_evaluations} evaluations/layer)",
             f"- search {_search_line(config.search, result)}, seed {config.seed}, "
             f"objectives {', '.join(config.search.objectives)}",
             f"- accuracy source: {', '.join(sources) or 'not an objective'}"
             + (f"; proxy: {summary['accuracy_proxy']}" if summary["accuracy_proxy"] else ""),
             f"- wall time {result.seconds:.0f} s; store {counts['layer_results']} layer results, "
             f"{counts['accuracies']} accuracies, {len(result.failures)} failures", "",
             "| id | " + " | ".join(COLUMNS.values()) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for point in result.front:
        values = [("" if v is None else f"{v:.4g}")
                  for v in objective_values(point.candidate).values()]
        lines.append(f"| {point.id} | " + " | ".join(values) + " |")
    write_text_atomic("\n".join(lines) + "\n", result.out / "report.md")


def write_report(result: RunResult) -> None:
    """Every file of the results folder except fine-tuning."""
    write_pareto(result)
    write_candidates(result)
    write_mappings(result)
    write_plots(result)
    write_summary(result)
