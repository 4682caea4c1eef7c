"""The paper's NSGA-II against the other searches for the same QAT budget (run by hand, never
in CI). Prints hypervolumes and the QAT runs each search needs.

  python benchmarks/bench_search.py [-o DIR] [--seeds 0 1 2] [--generations 5] [--set k=v ...]
        [--searches nsga2 guided nsga2-sensitivity guided-sensitivity]

Runs the default experiment (test-sized: 16 px digits, 1 QAT epoch, 10 + 10 individuals) once
per (search, seed) through ``python -m wrapper.explore``. Every run shares one store, so the
float checkpoint is trained once and a bit configuration that several runs draw is trained once
(QAT is deterministic for its key); the QAT runs charged to a search are the distinct
configurations it evaluated, counted from its own candidates.csv. Runs already finished in DIR
are read, not rerun.

Hypervolume of (accuracy, energy, memory) over every candidate a run evaluated (its archive),
with pymoo's HV, after normalizing energy and memory by the all-8-bit network (a uniform seed
of every run): minimize (-accuracy, energy / E8, memory / M8) against the fixed reference point
(0, 1.1, 1.1). Test accuracy is read when the results have a ``test_accuracy`` column, else
the validation accuracy the search selected on (``val_accuracy``).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
# Each compared search: its explore overrides. The first one is the reference (the paper's).
SEARCHES = {"nsga2": ["search.algorithm=nsga2"],
            "guided": ["search.algorithm=guided"],
            "nsga2-sensitivity": ["search.algorithm=nsga2", "search.seeding=sensitivity"],
            "guided-sensitivity": ["search.algorithm=guided", "search.seeding=sensitivity"]}
REFERENCE = np.array([0.0, 1.1, 1.1])
BUDGET = ["data.resolution=16", "qat.epochs=1", "search.parents=10", "search.offspring=10",
          "final.points=0", "executor.workers=2"]


def run(out: Path, search: str, seed: int, generations: int, extra: list[str]) -> Path:
    """One explore run (skipped when its results exist); returns its candidates.csv."""
    folder = out / f"{search}-s{seed}"
    if not (folder / "candidates.csv").is_file():
        sets = [*BUDGET, f"search.generations={generations}", *SEARCHES[search],
                f"seed={seed}", f"store={out / 'store.sqlite'}", *extra]
        args = [sys.executable, "-m", "wrapper.explore", "-o", str(folder)]
        for item in sets:
            args += ["--set", item]
        with open(folder.with_suffix(".log"), "w") as log:
            subprocess.run(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    return folder / "candidates.csv"


def archive(path: Path) -> list[tuple[tuple[int, ...], tuple[float, float, float]]]:
    """Distinct configurations in the order the run first evaluated them, with
    (accuracy, energy, memory); test accuracy when the results have it."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    names = rows[0].keys() if rows else ()
    column = next((c for c in ("test_accuracy", "val_accuracy") if c in names), "accuracy")
    seen: dict[tuple[int, ...], tuple[float, float, float]] = {}
    for row in rows:
        bits = tuple(int(v) for k, v in row.items() if k.startswith("L") and v)
        if bits not in seen and row[column]:
            seen[bits] = (float(row[column]), float(row["energy_pj"] or math.inf),
                          float(row["memory_bits"] or math.inf))
    return list(seen.items())


def hv_curve(points: list[tuple[tuple[int, ...], tuple[float, float, float]]],
             scale: tuple[float, float]) -> list[float]:
    """Hypervolume of the first n evaluated configurations, for n = 1 .. len(points)."""
    from pymoo.indicators.hv import HV  # the bench extra: the test install imports this file

    indicator = HV(ref_point=REFERENCE)
    values = np.array([[-acc, energy / scale[0], memory / scale[1]]
                       for _, (acc, energy, memory) in points])
    curve = []
    for n in range(1, len(values) + 1):
        inside = values[:n][np.all(np.isfinite(values[:n]) & (values[:n] < REFERENCE), axis=1)]
        curve.append(float(indicator(inside)) if len(inside) else 0.0)
    return curve


def eight_bit_scale(points: list[tuple[tuple[int, ...], tuple[float, float, float]]]
                    ) -> tuple[float, float]:
    """(energy, memory) of the all-8-bit network, the normalization of every run."""
    for bits, (_, energy, memory) in points:
        if set(bits) == {8}:
            return energy, memory
    raise SystemExit("the all-8-bit seed is missing: keep search.bits up to 8 and parents >= 7")


def first_reaching(curve: list[float], target: float) -> int | None:
    return next((n + 1 for n, value in enumerate(curve) if value >= target), None)


def _spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} +- {sd:.4f} (min {min(values):.4f}, max {max(values):.4f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=ROOT / "results" / "bench_search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--generations", type=int, default=5)
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="more explore overrides, applied to every search")
    parser.add_argument("--searches", nargs="+", default=list(SEARCHES), choices=list(SEARCHES),
                        help="searches to compare; the first is the reference")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    searches = args.searches
    jobs = [(a, s) for s in args.seeds for a in searches]
    archives = {}
    for search, seed in tqdm(jobs, desc="explore runs", unit="run", file=sys.stderr):
        archives[search, seed] = archive(run(args.out, search, seed, args.generations,
                                             args.extra))
    scale = eight_bit_scale(next(iter(archives.values())))
    curves = {key: hv_curve(points, scale) for key, points in archives.items()}
    budget = min(len(c) for c in curves.values())
    print(f"budget: {budget} QAT runs per search ({args.generations} generations of 10 + 10,"
          f" seeds {args.seeds}); reference point {REFERENCE.tolist()} on (-accuracy,"
          f" energy / E8, memory / M8)")
    finals = {a: [curves[a, s][budget - 1] for s in args.seeds] for a in searches}
    width = max(len(a) for a in searches)
    for search in searches:
        per_seed = ", ".join(f"s{s} {curves[search, s][budget - 1]:.4f}" for s in args.seeds)
        print(f"{search:{width}s} HV at {budget} QAT runs: {_spread(finals[search])}  [{per_seed}]")
    reference = searches[0]
    target = statistics.mean(finals[reference])
    for search in searches[1:]:
        gain = statistics.mean(finals[search]) / target - 1.0
        print(f"{search} vs {reference} at the same budget: {gain:+.1%} (mean of "
              f"{len(args.seeds)} seeds)")
    for search in searches:
        reached = [first_reaching(curves[search, s], target) for s in args.seeds]
        text = ", ".join(f"s{s} {r if r is not None else f'>{len(curves[search, s])}'}"
                         for s, r in zip(args.seeds, reached))
        print(f"{search:{width}s} QAT runs to reach {reference}'s mean final HV {target:.4f}: "
              f"{text}")
    for search in searches:
        checkpoints = range(10, budget + 1, 10)
        means = [statistics.mean(curves[search, s][n - 1] for s in args.seeds)
                 for n in checkpoints]
        print(f"{search:{width}s} mean HV after " + ", ".join(
            f"{n}: {m:.4f}" for n, m in zip(checkpoints, means)))


if __name__ == "__main__":
    main()
