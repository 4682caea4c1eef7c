"""How many mapper evaluations per layer the main job needs (run by hand, never in CI).

  python benchmarks/bench_mapper_budget.py [--models mobilenet_v1 mobilenet_v2]
      [--resolutions 224 32] [--archs eyeriss simba] [--bits 8,8,8 4,4,4 8,2,8]
      [--budgets 300 1000 2000 5000] [--reference 20000] [--workers 2]

For every layer of each model (at each resolution, on the explore templates with default
parameters, the layer precisions given as A,W,O) the built-in mapper runs with each budget and
with the reference budget (what ``wrapper.map`` uses); layers with the same problem are mapped
once. Prints, per budget, the worst per-layer ratio to the reference of EDP (the metric the
mapper minimizes) and of energy, the layer where it happens, how many layers are more than 1%
worse, and the mean seconds per layer search; then the smallest budget within 1% of the
reference on every layer of every setting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wrapper.explore.config import ArchConfig
from wrapper.explore.experiment import build_archs
from wrapper.explore.hardware import cost_model
from wrapper.network.layers import extract_layers, layer_to_problem
from wrapper.network.registry import build_network
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.precision import Precision
from wrapper.spec.problem import problem_to_dict

TOLERANCE = 1.01
_ARCHS: dict[str, dict] = {}


def _arch(name: str, shape: str):
    """The explore template ``name`` rendered once per worker process."""
    if name not in _ARCHS:
        _ARCHS[name] = build_archs(ArchConfig(template=name), Path(tempfile.mkdtemp()) / name)
    return _ARCHS[name][shape]


def _search(job: tuple) -> tuple[tuple, float, float, float]:
    """(job, EDP, energy, seconds) of one mapper run."""
    arch_name, problem, budget = job
    settings = replace(MapperSettings(), max_evaluations=budget)
    start = time.perf_counter()
    _, stats = cost_model("builtin", "{}").search(_arch(arch_name, problem.shape.name), problem,
                                                  settings)
    return job, stats.edp, stats.energy_pj, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v1", "mobilenet_v2"])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[224, 32])
    parser.add_argument("--archs", nargs="+", default=["eyeriss", "simba"])
    parser.add_argument("--bits", nargs="+", default=["8,8,8", "4,4,4", "8,2,8"])
    parser.add_argument("--budgets", type=int, nargs="+", default=[300, 1000, 2000, 5000])
    parser.add_argument("--reference", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    # Distinct (arch, problem) pairs, with every (setting, layer) that uses each.
    users: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    problems = {}
    for model in args.models:
        net = build_network(model, num_classes=1000)
        for resolution in args.resolutions:
            for layer in extract_layers(net, resolution):
                for bits in args.bits:
                    a, w, o = (int(b) for b in bits.split(","))
                    problem = layer_to_problem(layer, Precision(a, w, o))
                    key = str(problem_to_dict(problem))
                    problems[key] = problem
                    for arch in args.archs:
                        users[arch, key].append((f"{model} {resolution}px {arch} i{a}w{w}o{o}",
                                                 layer.name))
    budgets = sorted({*args.budgets, args.reference})
    jobs = [(arch, problems[key], budget) for arch, key in users for budget in budgets]
    results = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for job, edp, energy, seconds in tqdm(pool.map(_search, jobs, chunksize=1),
                                              total=len(jobs), desc="mapper runs", unit="run",
                                              file=sys.stderr):
            arch, problem, budget = job
            results[arch, str(problem_to_dict(problem)), budget] = (edp, energy, seconds)

    print(f"{len(users)} distinct (arch, layer problem) pairs; ratios to {args.reference} "
          f"evaluations per layer")
    within = []
    for budget in args.budgets:
        worst = (0.0, "")
        worst_energy = 0.0
        over = 0
        seconds = []
        for (arch, key), used_by in users.items():
            edp, energy, took = results[arch, key, budget]
            ref_edp, ref_energy, _ = results[arch, key, args.reference]
            ratio = edp / ref_edp
            worst_energy = max(worst_energy, abs(energy / ref_energy - 1.0))
            seconds.append(took)
            if ratio > TOLERANCE:
                over += len(used_by)
            if ratio > worst[0]:
                worst = (ratio, f"{used_by[0][0]} {used_by[0][1]}")
        print(f"budget {budget:6d}: worst EDP ratio {worst[0]:.4f} ({worst[1]}), worst energy "
              f"difference {worst_energy:.2%}, {over} layer settings > {TOLERANCE - 1:.0%} "
              f"worse, mean {statistics.mean(seconds):.2f} s per layer search")
        if worst[0] <= TOLERANCE:
            within.append(budget)
    ref_seconds = statistics.mean(results[a, k, args.reference][2] for a, k in users)
    print(f"budget {args.reference:6d}: mean {ref_seconds:.2f} s per layer search (reference)")
    print(f"smallest budget within 1% EDP of the reference on every layer: "
          f"{min(within) if within else 'none of ' + str(args.budgets)}")


if __name__ == "__main__":
    main()
