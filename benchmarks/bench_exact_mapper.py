"""Exact (certified) mapper: share proven optimal, time per search, EDP against the sampling
mapper and against the real timeloop-mapper (run by hand, never in CI). Prints the figures.

  python benchmarks/bench_exact_mapper.py mobilenet [--nets mobilenet_v1 mobilenet_v2]
        [--archs eyeriss simba] [--bits i8w8o8 i4w4o8 i8w2o8 i16w16o16] [--layers 0:28]
        [--max-seconds 30]
      every layer of the nets at each bit setting on the Eyeriss-like and Simba-like archs
      rendered from arch_templates (built-in energy model), one search per (layer, bits, arch),
      one core; the sampling mapper runs on the same space for the EDP comparison.
  python benchmarks/bench_exact_mapper.py golden [--cases SUBSTRING] [--max-seconds 30]
      every golden case (golden arch, constraints and ERT): exact EDP against the sampling
      mapper and against the best mapping timeloop-mapper found for that case.

A per-search time limit stops the exact search (its certificate then reports the gap); the
figures say how many searches were proven optimal within it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from wrapper.engine.constraints import build_mapspace
from wrapper.engine.energy_model import builtin_energy_table
from wrapper.engine.exact import certified_search
from wrapper.engine.mapper import sampling_search
from wrapper.network.layers import extract_layers, layer_to_problem
from wrapper.network.registry import build_network
from wrapper.spec.arch import arch_from_dict
from wrapper.spec.constraints import adapt_constraints_for_shape
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.precision import Precision
from wrapper.spec.problem import CNN_LAYER_SHAPE, DEPTHWISE_SHAPE
from wrapper.spec.templates import write_arch
from wrapper.spec.yamlio import load_specs

BITS = {"i8w8o8": Precision(8, 8, 8), "i4w4o8": Precision(4, 4, 8), "i8w2o8": Precision(8, 2, 8),
        "i16w16o16": Precision(16, 16, 16)}


def template_archs(name: str, folder: Path) -> dict[str, object]:
    """The template's arch per problem-shape name (constraints adapted for depthwise layers)."""
    data, origin = load_specs(write_arch(name, {}, folder / name))
    return {shape.name: arch_from_dict(adapt_constraints_for_shape(data, shape),
                                       origin.get("architecture", name))
            for shape in (CNN_LAYER_SHAPE, DEPTHWISE_SHAPE)}


def _summary(label: str, rows: list[tuple[bool, float, float, float | None]]) -> None:
    """rows: (optimal, seconds, sampling EDP / exact EDP, golden EDP / exact EDP or None)."""
    if not rows:
        return
    seconds = [r[1] for r in rows]
    ratios = [r[2] for r in rows]
    line = (f"{label}: {sum(r[0] for r in rows)}/{len(rows)} proven optimal "
            f"({100 * sum(r[0] for r in rows) / len(rows):.1f}%), time per search median "
            f"{statistics.median(seconds):.2f} s, max {max(seconds):.2f} s; sampling/exact EDP "
            f"median {statistics.median(ratios):.4f}, max {max(ratios):.4f}, "
            f"worse on {sum(r > 1 + 1e-9 for r in ratios)}")
    golden = [r[3] for r in rows if r[3] is not None]
    if golden:
        line += (f"; timeloop-mapper/exact EDP median {statistics.median(golden):.4f}, "
                 f"max {max(golden):.4f}, min {min(golden):.4f}")
    print(line, flush=True)


def _run(space, table, settings: MapperSettings) -> tuple[object, float, float]:
    start = time.perf_counter()
    exact = certified_search(space, table, settings)
    seconds = time.perf_counter() - start
    sampled = sampling_search(space, table, MapperSettings(seed=settings.seed))
    return exact, seconds, sampled.stats.edp / exact.stats.edp


def bench_mobilenet(args: argparse.Namespace) -> None:
    settings = MapperSettings(max_seconds=args.max_seconds)
    rows_all = []
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.nets:
            first, last = (int(x) for x in args.layers.split(":"))
            layers = extract_layers(build_network(net, num_classes=1000), 224)[first:last]
            for arch_name in args.archs:
                archs = template_archs(arch_name, Path(tmp))
                rows = []
                for bits in args.bits:
                    for index, layer in enumerate(layers, start=first):
                        problem = layer_to_problem(layer, BITS[bits])
                        arch = archs[problem.shape.name]
                        table = builtin_energy_table(arch)
                        space = build_mapspace(arch, problem)
                        exact, seconds, ratio = _run(space, table, settings)
                        c = exact.certificate
                        rows.append((c.optimal, seconds, ratio, None))
                        print(f"{net} {arch_name} {bits} L{index:<3d} {layer.name:24s} "
                              f"{'optimal' if c.optimal else f'gap {c.gap:.3g}'} "
                              f"({c.stopped_by}) {seconds:6.2f} s, {c.evaluated} evaluated, "
                              f"sampling/exact EDP {ratio:.4f}", flush=True)
                _summary(f"{net} on {arch_name}", rows)
                rows_all.extend(rows)
    _summary("all", rows_all)


def bench_golden(args: argparse.Namespace) -> None:
    from conftest import ALL_GOLDEN_RECORDS, SHARED_DIR
    from test_mapper_golden import golden_cases

    settings = MapperSettings(max_seconds=args.max_seconds)
    rows = []
    for case in golden_cases(ALL_GOLDEN_RECORDS, SHARED_DIR):
        if args.cases and args.cases not in case.case_id:
            continue
        space = build_mapspace(case.arch, case.problem)
        exact, seconds, ratio = _run(space, case.table, settings)
        golden = case.best_golden_edp() / exact.stats.edp
        c = exact.certificate
        rows.append((c.optimal, seconds, ratio, golden))
        print(f"{case.case_id:36s} {'optimal' if c.optimal else f'gap {c.gap:.3g}'} "
              f"({c.stopped_by}) {seconds:6.2f} s  sampling/exact {ratio:.4f}  "
              f"timeloop-mapper/exact {golden:.4f}", flush=True)
    _summary("golden cases", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["mobilenet", "golden"])
    parser.add_argument("--nets", nargs="+", default=["mobilenet_v1", "mobilenet_v2"])
    parser.add_argument("--archs", nargs="+", default=["eyeriss", "simba"])
    parser.add_argument("--bits", nargs="+", default=list(BITS), choices=list(BITS))
    parser.add_argument("--layers", default="0:1000", help="slice of layer indices, e.g. 0:10")
    parser.add_argument("--cases", default="", help="golden case ids containing this text")
    parser.add_argument("--max-seconds", type=float, default=30.0)
    args = parser.parse_args()
    {"mobilenet": bench_mobilenet, "golden": bench_golden}[args.which](args)


if __name__ == "__main__":
    main()
