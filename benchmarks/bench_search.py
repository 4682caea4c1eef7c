"""Front quality per QAT cost: the paper's search against seeded NSGA-II and the default search
(run by hand, never in CI). Writes a CSV and a plot and prints the figures.

  python benchmarks/bench_search.py [-o DIR] [--seeds 0 1 2 3 4] [--generations N]
        [--searches paper nsga2-seeded default] [--set k=v ...]

Each search runs the default experiment (test-sized: 16 px digits, 1 QAT epoch, 10 + 10
individuals) once per seed through ``python -m wrapper.explore``, without the final
evaluation (``final.evaluate=false``: it takes no part in the hypervolume):

- ``paper``: the paper's search exactly, NSGA-II with uniform (plus random) seeding, every
  candidate a full QAT from float (no screens, no warm starts), cut at 30 QAT runs (the initial
  population and two generations); the reference;
- ``nsga2-seeded``: NSGA-II with the sensitivity-probe seeding, full probes, every candidate a
  full QAT from float (the earlier default's search without its surrogate), two generations;
- ``default``: the default search (guided NSGA-II, sensitivity seeding on cheap probes, the
  probe prior in the surrogate, screens), four generations (about 40
  equivalents, past 30 on every seed);
- ablations, each the default with one idea switched off or on (not run unless named):
  ``no-screen`` (search.screen_fraction=0, two generations), ``warm`` (search.warm_start=true:
  QAT warm-started from the nearest fully trained configuration), ``no-prior``
  (search.probe_prior=false), ``full-probes`` (search.probe_fraction=1: every probe a full QAT
  run, two generations).

Cost axis: QAT-run equivalents, what every accuracy cost in samples processed relative to one
full one-epoch QAT run (``qat_equivalents`` of candidates.csv and run.json): the sensitivity
probes charged before the first candidate, then every screen and every full QAT in the order
the run made them. Every run shares one store (the float checkpoint is trained once, the
hardware table is mapped once, a configuration several runs draw is trained once); each run is
still charged for every distinct accuracy it used.

Hypervolume of (validation accuracy, energy, memory) over every candidate a run trained fully
(a screen's accuracy never counts: a screened-out candidate is not on any front), with pymoo's
HV, after normalizing energy and memory by the all-8-bit network (a uniform seed of every
run): minimize (-accuracy, energy / E8, memory / M8) against the fixed reference point
(0, 1.1, 1.1). Also printed: the hypervolume of every configuration any run trained fully (what
all the runs' QAT found together, a ceiling for one run's front) and, with ``warm`` beside
``default``, the accuracy a warm start gives against a start from float, per configuration both
trained after their initial populations. Runs already finished in DIR are read, not rerun.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from pymoo.indicators.hv import HV
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
# Each compared search: its generations and explore overrides. The first one is the reference.
EVERY_RUN_FULL = ["search.screen_fraction=0", "search.warm_start=false"]
SEARCHES = {"paper": (2, ["search.algorithm=nsga2", "search.seeding=uniform",  # 10 + 2 x 10
                          *EVERY_RUN_FULL]),
            "nsga2-seeded": (2, ["search.algorithm=nsga2", "search.seeding=sensitivity",
                                 "search.probe_fraction=1", *EVERY_RUN_FULL]),
            "default": (4, []),  # about 40 equivalents: past 30 on every seed
            "no-screen": (2, ["search.screen_fraction=0"]),
            "warm": (4, ["search.warm_start=true"]),
            "no-prior": (4, ["search.probe_prior=false"]),
            "full-probes": (2, ["search.probe_fraction=1"])}
COMPARED = ["paper", "nsga2-seeded", "default"]
REFERENCE = np.array([0.0, 1.1, 1.1])
BUDGET = ["data.resolution=16", "qat.epochs=1", "search.parents=10", "search.offspring=10",
          "final.evaluate=false", "executor.workers=2"]
CHECKPOINTS = (12.0, 20.0, 30.0)  # equivalents at which the HV of every search is printed

Curve = list[tuple[float, float]]  # (QAT-run equivalents spent, hypervolume)


def run(out: Path, search: str, seed: int, generations: int | None, extra: list[str]) -> Path:
    """One explore run (skipped when its results exist); returns its results folder."""
    folder = out / f"{search}-s{seed}"
    if not (folder / "run.json").is_file():
        own, overrides = SEARCHES[search]
        generations = own if generations is None or search == "paper" else generations
        sets = [*BUDGET, f"search.generations={generations}", *overrides,
                f"seed={seed}", f"store={out / 'store.sqlite'}", *extra]
        args = [sys.executable, "-m", "wrapper.explore", "-o", str(folder)]
        for item in sets:
            args += ["--set", item]
        with open(folder.with_suffix(".log"), "w") as log:
            subprocess.run(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return folder


Point = tuple[tuple[int, ...], tuple[float, ...], float, bool]  # bits, values, cost, full


def _bits(row: dict[str, str]) -> tuple[int, ...]:
    """A candidates.csv row's configuration: its per-layer A and W columns in order."""
    return tuple(int(v) for k, v in row.items() if k.startswith("L") and v)


def _vector(values: tuple[float, ...], scale: tuple[float, float]) -> np.ndarray:
    """(validation accuracy, energy, memory) as the minimized, normalized HV coordinates."""
    accuracy, energy, memory = values
    return np.array([-accuracy, energy / scale[0], memory / scale[1]])


def archive(folder: Path) -> tuple[float, list[Point]]:
    """The probes' cost, then each distinct accuracy (configuration and fidelity) in the order
    the run made it: bits, (validation accuracy, energy, memory), its cost, and whether it is a
    full QAT (not a screen)."""
    probes = json.loads((folder / "run.json").read_text())["qat_equivalents"]["probes"]
    with open(folder / "candidates.csv") as handle:
        rows = list(csv.DictReader(handle))
    seen: dict[tuple[tuple[int, ...], bool], tuple[tuple[float, ...], float]] = {}
    for row in rows:
        bits = _bits(row)
        full = not row["accuracy_source"].startswith("screen")
        if (bits, full) not in seen and row["val_accuracy"]:
            seen[bits, full] = ((float(row["val_accuracy"]),
                                 float(row["energy_pj"] or math.inf),
                                 float(row["memory_bits"] or math.inf)),
                                float(row["qat_equivalents"] or 0.0))
    return float(probes), [(bits, values, cost, full)
                           for (bits, full), (values, cost) in seen.items()]


def eight_bit_scale(points: list[Point]) -> tuple[float, float]:
    """(energy, memory) of the all-8-bit network, the normalization of every run."""
    for bits, (_, energy, memory), _, _ in points:
        if set(bits) == {8}:
            return energy, memory
    raise SystemExit("the all-8-bit seed is missing: keep search.bits up to 8")


def hv_curve(probes: float, points: list[Point], scale: tuple[float, float]) -> Curve:
    """(equivalents spent, hypervolume of the full QAT results so far) after each accuracy."""
    indicator = HV(ref_point=REFERENCE)
    spent, curve, front = probes, [], []
    for _, values, cost, full in points:
        spent += cost
        vector = _vector(values, scale)
        if full and np.all(np.isfinite(vector) & (vector < REFERENCE)):
            front.append(vector)
        curve.append((spent, float(indicator(np.array(front))) if front else 0.0))
    return curve


def hv_at(curve: Curve, budget: float) -> float | None:
    """Hypervolume with at most ``budget`` equivalents spent (None: the run ended before, or
    its probes alone cost more)."""
    if curve[-1][0] < budget - 1e-9:
        return None
    return max((hv for spent, hv in curve if spent <= budget + 1e-9), default=0.0)


def first_reaching(curve: Curve, target: float) -> float | None:
    return next((spent for spent, hv in curve if hv >= target - 1e-12), None)


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f"{statistics.mean(values):.4f} +- {sd:.4f} (min {min(values):.4f}, "
            f"max {max(values):.4f})")


def union_hypervolume(archives: dict[tuple[str, int], tuple[float, list[Point]]],
                      scale: tuple[float, float]) -> tuple[int, float]:
    """Distinct configurations trained fully by any run, and the hypervolume of them all: what
    every run's QAT together found, a ceiling for the front of any one run."""
    found = {bits: values for _, points in archives.values()
             for bits, values, _, full in points if full}
    vectors = np.array([_vector(values, scale) for values in found.values()])
    inside = vectors[np.all(vectors < REFERENCE, axis=1)]
    return len(found), float(HV(ref_point=REFERENCE)(inside)) if len(inside) else 0.0


def later_accuracies(folder: Path) -> dict[tuple[int, ...], float]:
    """Validation accuracy of every full QAT after the initial population (the only ones a
    warm start can change: the first generation has no trained net to start from)."""
    with open(folder / "candidates.csv") as handle:
        return {_bits(row): float(row["val_accuracy"]) for row in csv.DictReader(handle)
                if row["val_accuracy"] and int(row["generation"]) > 0
                and not row["accuracy_source"].startswith("screen")}


def warm_minus_cold(out: Path, seeds: list[int]) -> list[float]:
    """Per configuration trained fully by both the ``warm`` and the ``default`` runs after their
    initial populations: warm-started accuracy minus the accuracy from the float checkpoint."""
    def pooled(search: str) -> dict[tuple[int, ...], list[float]]:
        found: dict[tuple[int, ...], list[float]] = {}
        for seed in seeds:
            for bits, accuracy in later_accuracies(out / f"{search}-s{seed}").items():
                found.setdefault(bits, []).append(accuracy)
        return found
    warm, cold = pooled("warm"), pooled("default")
    return [statistics.mean(warm[b]) - statistics.mean(cold[b]) for b in warm if b in cold]


def write_csv(path: Path, curves: dict[tuple[str, int], Curve]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["search", "seed", "evaluation", "qat_equivalents", "hypervolume"])
        for (search, seed), curve in curves.items():
            for n, (spent, hv) in enumerate(curve, start=1):
                writer.writerow([search, seed, n, f"{spent:.3f}", f"{hv:.6f}"])


def write_plot(path: Path, curves: dict[tuple[str, int], Curve], searches: list[str],
               target: float) -> None:
    """Mean hypervolume against equivalents per search, the band from min to max over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for search in searches:
        runs = [c for (a, _), c in curves.items() if a == search]
        end = min(c[-1][0] for c in runs)
        grid = np.linspace(min(c[0][0] for c in runs), end, 200)
        values = np.array([[hv_at(c, x) or 0.0 for x in grid] for c in runs])
        axes.plot(grid, values.mean(axis=0), label=f"{search} ({len(runs)} seeds)")
        axes.fill_between(grid, values.min(axis=0), values.max(axis=0), alpha=0.2)
    axes.axhline(target, color="grey", linestyle="--", linewidth=1,
                 label="paper search, final HV (mean)")
    axes.set_xlabel("QAT-run equivalents (probes included)")
    axes.set_ylabel("hypervolume (val accuracy, energy/E8, memory/M8)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "results" / "bench_search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--generations", type=int, default=None,
                        help="generations of the searches other than the paper's (default: "
                             "each search's own)")
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="more explore overrides, applied to every search")
    parser.add_argument("--searches", nargs="+", default=COMPARED, choices=list(SEARCHES),
                        help="searches to compare; the first is the reference")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    searches = args.searches
    archives = {}
    for seed, search in tqdm([(s, a) for s in args.seeds for a in searches],
                             desc="explore runs", unit="run", file=sys.stderr):
        archives[search, seed] = archive(run(args.out, search, seed, args.generations,
                                             args.extra))
    scale = eight_bit_scale(next(iter(archives.values()))[1])
    curves = {key: hv_curve(probes, points, scale) for key, (probes, points) in archives.items()}
    reference = searches[0]
    finals = {a: [curves[a, s][-1][1] for s in args.seeds] for a in searches}
    target = statistics.mean(finals[reference])
    print(f"seeds {args.seeds}; reference point {REFERENCE.tolist()} on (-val accuracy, "
          f"energy / E8, memory / M8); cost in QAT-run equivalents, probes included")
    width = max(len(a) for a in searches)
    for search in searches:
        spent = [curves[search, s][-1][0] for s in args.seeds]
        probes = [archives[search, s][0] for s in args.seeds]
        print(f"{search:{width}s} final HV {_spread(finals[search])} after "
              f"{statistics.mean(spent):.1f} equivalents ({statistics.mean(probes):.1f} probes)")
    for budget in CHECKPOINTS:
        for search in searches:
            values = [v for v in (hv_at(curves[search, s], budget) for s in args.seeds)
                      if v is not None]
            gain = (f", {statistics.mean(values) / target - 1.0:+.1%} vs {reference} final"
                    if values else "")
            print(f"{search:{width}s} HV at {budget:g} equivalents: {_spread(values)} "
                  f"[{len(values)} of {len(args.seeds)} runs got that far]{gain}")
    for search in searches:
        reached = [first_reaching(curves[search, s], target) for s in args.seeds]
        text = ", ".join(f"s{s} {r:.1f}" if r is not None else f"s{s} not within "
                         f"{curves[search, s][-1][0]:.1f}" for s, r in zip(args.seeds, reached))
        got = sorted(r if r is not None else math.inf for r in reached)
        print(f"{search:{width}s} equivalents to reach {reference}'s mean final HV "
              f"{target:.4f}: median {statistics.median(got):.1f} [{text}]")
    count, ceiling = union_hypervolume(archives, scale)
    print(f"all runs together: {count} configurations trained fully, HV {ceiling:.4f} "
          f"({ceiling / target - 1.0:+.1%} vs {reference} final)")
    if {"warm", "default"} <= set(searches):
        gaps = warm_minus_cold(args.out, args.seeds)
        if gaps:
            print(f"warm start minus float start, same configuration: mean "
                  f"{statistics.mean(gaps):+.4f}, median {statistics.median(gaps):+.4f} over "
                  f"{len(gaps)} configurations (warm higher in {sum(g > 0 for g in gaps)})")
    write_csv(args.out / "bench_search.csv", curves)
    write_plot(args.out / "bench_search.png", curves, searches, target)
    print(f"wrote {args.out / 'bench_search.csv'} and {args.out / 'bench_search.png'}")


if __name__ == "__main__":
    main()
