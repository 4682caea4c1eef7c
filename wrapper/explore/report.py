"""The results folder of an explore run, written from its `RunResult` (atomically).

Folder layout: config.yaml, run.json, report.md (opening with the computed headline),
pareto.csv, pareto.json (front points and uniform references), candidates.csv, arch/ (the
Timeloop spec used), mappings/<id>/ (per-layer best mapping and problem YAML), plots/
(pareto.png, bits.png, energy_breakdown.png, accuracy_vs_energy.png).

Two kinds of accuracy appear, always under different names: ``val_accuracy`` is the score the
search selected on (one QAT seed, validation split; the best of many noisy scores, so biased
upward), and ``val_accuracy_mean``/``test_accuracy_mean`` (with ``_std``) come from the final
evaluation: fresh seeds, the validation split and the test split no decision ever saw.
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
from .headline import HeadlineRow, Saving, headline
from .nsga2 import Genome
from .plots import write_plots
from .results import Candidate, FrontPoint, RunResult, SeedScores

COLUMNS = {"accuracy": "val_accuracy", "energy": "energy_pj", "latency": "latency_cycles",
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


FINAL_COLUMNS = ("val_accuracy_mean", "val_accuracy_std", "test_accuracy_mean",
                 "test_accuracy_std", "seeds")


def final_values(final: SeedScores | None) -> dict[str, float | int | None]:
    """The final-evaluation columns (all None when the configuration was not evaluated)."""
    if final is None:
        return dict.fromkeys(FINAL_COLUMNS)
    return dict(zip(FINAL_COLUMNS, (final.val_mean, final.val_std, final.test_mean,
                                    final.test_std, len(final.test))))


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
    """pareto.csv (one row per front point, then one per uniform reference U<b>; per-layer bits
    as columns) and pareto.json (per layer Inputs/Weights/Outputs widths, all objectives, the
    final evaluation; the uniform references under "uniform")."""
    header = ["id", *COLUMNS.values(), *FINAL_COLUMNS, "accuracy_source",
              *_bits_columns(len(result.layers))]
    rows, points = [], []
    for point in result.front:
        cand = point.candidate
        values = objective_values(cand)
        final = final_values(point.final)
        rows.append([point.id, *values.values(), *final.values(), _source(cand),
                     *_flat_bits(cand.genome)])
        points.append({"id": point.id, "objectives": values, "final": final,
                       "accuracy_source": _source(cand),
                       "bits": [list(pair) for pair in cand.genome],
                       "layers": _layer_rows(result, point)})
    uniform = []
    for ref in result.uniform:
        values, final = objective_values(ref.candidate), final_values(ref.final)
        rows.append([ref.id, *values.values(), *final.values(), _source(ref.candidate),
                     *_flat_bits(ref.candidate.genome)])
        uniform.append({"id": ref.id, "bits": ref.bits, "objectives": values, "final": final})
    write_text_atomic(csv_text(header, rows), result.out / "pareto.csv")
    document = {"run": result.run_id, "objectives": list(result.config.search.objectives),
                "final_seeds": list(result.final_seeds), "final_epochs": result.final_epochs,
                "points": points, "uniform": uniform}
    write_text_atomic(json.dumps(document, indent=1) + "\n", result.out / "pareto.json")


def write_candidates(result: RunResult) -> None:
    """candidates.csv: every candidate the run scored, per generation, with all objectives and
    what its accuracy cost in QAT-run equivalents."""
    rows = [[generation, *objective_values(cand).values(), _source(cand),
             None if cand.accuracy is None else cand.accuracy.equivalents,
             *_flat_bits(cand.genome)] for generation, cand in result.scored]
    header = ["generation", *COLUMNS.values(), "accuracy_source", "qat_equivalents",
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


def _scores(scores: SeedScores) -> str:
    return f"{scores.test_mean:.3f} ± {scores.test_std:.3f} (val {scores.val_mean:.3f})"


def _saving_cells(saving: Saving | None) -> list[str]:
    if saving is None:
        return ["none at no drop", "", ""]
    return [f"{100 * saving.saving:.1f}%", saving.point,
            f"{_scores(saving.point_scores)} vs {_scores(saving.reference_scores)}"]


def headline_lines(result: RunResult, rows: list[HeadlineRow]) -> list[str]:
    """The opening table of report.md: savings at no accuracy drop (or why there is none),
    decided on validation and reported with test top-1."""
    if not rows:
        return ["No headline: accuracy is not an objective of this run, so nothing was "
                "evaluated on the test split.", ""]
    widest = max(result.config.search.bits)
    lines = [f"| objective | saving vs uniform {widest}-bit | point | test top-1 (point vs "
             f"U{widest}) | saving vs cheapest uniform as accurate | point | uniform | "
             "test top-1 (point vs uniform) |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        same = _saving_cells(row.vs_same_accuracy)
        lines.append(f"| {row.objective} | " + " | ".join(
            [*_saving_cells(row.vs_widest), same[0], same[1],
             "" if row.vs_same_accuracy is None else row.vs_same_accuracy.reference, same[2]])
            + " |")
    seeds = ", ".join(map(str, result.final_seeds))
    lines += ["", f"Top-1 is mean ± std over {len(result.final_seeds)} fresh QAT seeds "
              f"({seeds}; {result.final_epochs} epoch{'s' if result.final_epochs != 1 else ''} "
              "each, from the float checkpoint). Each claim (point, reference, no drop) is "
              "decided on the validation mean (in brackets), no drop meaning within the larger "
              "of the two validation seed spreads; it is reported with test top-1, a split no "
              "training, selection or claim decision saw. Savings are of the hardware objective "
              "against the uniform configuration U<b> (every layer's A and W at b bits).", ""]
    return lines


def _table(result: RunResult, rows: list[tuple[str, Candidate, SeedScores | None]]) -> list[str]:
    hardware = [c for name, c in COLUMNS.items() if name != "accuracy"]
    lines = ["| id | search val_accuracy | val mean ± std | test mean ± std | "
             + " | ".join(hardware) + " |", "|---|" + "---|" * (3 + len(hardware))]
    for name, cand, final in rows:
        values = objective_values(cand)
        search = values.pop(COLUMNS["accuracy"])
        cells = ["" if search is None else f"{search:.3f}",
                 "" if final is None else f"{final.val_mean:.3f} ± {final.val_std:.3f}",
                 "" if final is None else f"{final.test_mean:.3f} ± {final.test_std:.3f}",
                 *("" if v is None else f"{v:.4g}" for v in values.values())]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _search_line(search: Any, result: RunResult) -> str:
    """Which search ran and its budget: population sizes, generations, seeding and the
    accuracies the store holds (QAT runs and any sensitivity probes, a cached run's included)."""
    name = {"nsga2": "the paper's NSGA-II", "guided": "guided NSGA-II"}[search.algorithm]
    line = (f"{name} ({search.algorithm}) {search.parents}+{search.offspring}, "
            f"{result.search.generations} generations, {search.seeding} seeding")
    if search.algorithm == "guided":
        line += f", {search.pool} children priced and predicted per generation"
    what = "QAT runs and sensitivity probes" if search.seeding == "sensitivity" else "QAT runs"
    line += f", {result.store_counts['accuracies']} accuracies in the store ({what})"
    if "accuracy" in search.objectives:
        line += (f", screens on {search.screen_fraction:g} of an epoch"
                 if search.screen_fraction else ", no screens")
        line += ", warm-started QAT" if search.warm_start else ""
    spent = result.equivalents
    if spent:
        total = spent["search"] + spent["screens"] + spent["probes"]
        line += (f"; cost {total:.1f} QAT-run equivalents for the search ({spent['screens']:.1f}"
                 f" of them screens, {spent['probes']:.1f} probes) and {spent['final']:.1f} for "
                 "the final evaluation (samples processed relative to one full one-epoch QAT run)")
    return line


def _proven_optimal(result: RunResult) -> dict[str, int]:
    """How many of the front's per-layer mappings carry a certificate of optimality, of those
    the mapper certified at all (mappers that prove nothing leave no certificate)."""
    certified = [r.stats.certificate for point in result.front for r in point.layer_results
                 if r is not None and r.stats.certificate is not None]
    return {"optimal": sum(c.optimal for c in certified), "certified": len(certified)}


def _proven_text(proven: dict[str, int]) -> str:
    if not proven["certified"]:
        return "no mapping certificates (the engine's mapper proves nothing)"
    share = proven["optimal"] / proven["certified"]
    return (f"{proven['optimal']} of {proven['certified']} front layer mappings "
            f"({share:.0%}) proven optimal in their constrained mapspace")


def write_summary(result: RunResult) -> None:
    """run.json (machine-readable) and report.md (the headline first, then what ran, the front
    and the uniform references)."""
    config = result.config
    front = [point.candidate for point in result.front]
    sources = sorted({c.accuracy.source for c in front if c.accuracy is not None})
    counts = result.store_counts
    rows = headline(result)
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
        "final_seeds": list(result.final_seeds), "final_epochs": result.final_epochs,
        "headline": [{"objective": row.objective,
                      **{name: None if s is None else {
                          "point": s.point, "reference": s.reference, "saving": s.saving,
                          "point_val_mean": s.point_scores.val_mean,
                          "reference_val_mean": s.reference_scores.val_mean,
                          "point_test_mean": s.point_scores.test_mean,
                          "point_test_std": s.point_scores.test_std,
                          "reference_test_mean": s.reference_scores.test_mean,
                          "reference_test_std": s.reference_scores.test_std}
                         for name, s in (("vs_widest_uniform", row.vs_widest),
                                         ("vs_same_accuracy_uniform", row.vs_same_accuracy))}}
                     for row in rows],
        "engine": config.engine.name, "store": str(result.store_path),
        "float_checkpoint": result.float_checkpoint,
        "store_counts": counts, "qat_equivalents": result.equivalents,
        "failures": result.failures,
        "mappings_proven_optimal": _proven_optimal(result),
    }
    write_text_atomic(json.dumps(summary, indent=1) + "\n", result.out / "run.json")
    lines = [f"# QuantMap explore: {config.name} — savings at no accuracy drop", "",
             *headline_lines(result, rows), "## Run", "",
             f"- model {config.model.name}"
             f"{'' if config.model.width_mult is None else f' x{config.model.width_mult}'}, "
             f"data {config.data.kind} "
             f"({config.data.resolution} px), {len(result.layers)} layers",
             f"- arch {config.arch.template if not config.arch.files else 'files'}, engine "
             f"{config.engine.name}, mapper {config.mapper.metric} "
             f"({config.mapper.max_evaluations} evaluations/layer); "
             f"{_proven_text(summary['mappings_proven_optimal'])}",
             f"- search {_search_line(config.search, result)}, seed {config.seed}, "
             f"objectives {', '.join(config.search.objectives)}; selected on the validation "
             "split only",
             f"- accuracy source of the search: {', '.join(sources) or 'not an objective'}"
             + (f"; proxy: {summary['accuracy_proxy']}" if summary["accuracy_proxy"] else ""),
             f"- wall time {result.seconds:.0f} s; store {counts['layer_results']} layer results, "
             f"{counts['accuracies']} accuracies, {len(result.failures)} failures", "",
             "## Pareto front", "",
             "`search val_accuracy` is the score the search selected on (one seed; the best of "
             "many noisy scores, so biased upward); the mean ± std columns are the final "
             "evaluation (fresh seeds), blank for points that were not evaluated.", "",
             *_table(result, [(p.id, p.candidate, p.final) for p in result.front]), "",
             "## Uniform references", "",
             *_table(result, [(r.id, r.candidate, r.final) for r in result.uniform])]
    write_text_atomic("\n".join(lines) + "\n", result.out / "report.md")


def write_report(result: RunResult) -> None:
    """Every file of the results folder."""
    write_pareto(result)
    write_candidates(result)
    write_mappings(result)
    write_plots(result)
    write_summary(result)
