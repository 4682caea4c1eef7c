"""Built-in mapper timings and quality (run by hand, never in CI). Prints the figures.

  python benchmarks/bench_mapper.py golden        # per golden case: EDP ratio to the best golden
                                                  # mapping, seconds; medians (one core)
  python benchmarks/bench_mapper.py mobilenet     # MobileNetV2 on Eyeriss at i8w8o8, all layers
  python benchmarks/bench_mapper.py table         # 49 (A, W) x 53 layers x 2 archs on 2 cores,
                                                  # deduplicated by packing signature
Archs and ERTs are the golden Eyeriss/Simba specs with their constraint files (the depthwise
adaptations from ../shared/golden_dw for depthwise layers).
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from conftest import ALL_GOLDEN_RECORDS, SHARED_DIR
from test_mapper_golden import golden_cases, record_arch

from wrapper.engine.constraints import build_mapspace
from wrapper.engine.costmodel import BuiltinCostModel, MapperCache
from wrapper.engine.mapper import sampling_search
from wrapper.network.layers import extract_layers, layer_to_problem
from wrapper.network.registry import build_network
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.precision import Precision

SETTINGS = MapperSettings()


def bench_golden() -> None:
    ratios, seconds = [], []
    for case in golden_cases(ALL_GOLDEN_RECORDS, SHARED_DIR):
        start = time.perf_counter()
        result = sampling_search(build_mapspace(case.arch, case.problem), case.table, SETTINGS)
        seconds.append(time.perf_counter() - start)
        ratios.append(result.stats.edp / case.best_golden_edp())
        print(f"{case.case_id:36s} EDP ratio {ratios[-1]:.4f}  {seconds[-1]:.2f} s")
    print(f"{len(ratios)} cases: median EDP ratio {statistics.median(ratios):.4f} "
          f"(max {max(ratios):.4f}), median {statistics.median(seconds):.2f} s per case "
          f"(max {max(seconds):.2f} s, total {sum(seconds):.1f} s)")


def _archs():
    """(dense arch, depthwise arch, table) per golden arch name."""
    out = {}
    for name in ("eyeriss", "simba"):
        record = next(r for r in ALL_GOLDEN_RECORDS if r["arch"] == name and "problem_shape" not in r)
        dw = next(r for r in ALL_GOLDEN_RECORDS if r["arch"] == name and "problem_shape" in r)
        case = next(c for c in golden_cases([record], SHARED_DIR))
        out[name] = (record_arch(record), record_arch(dw), case.table)
    return out


def _layers():
    return extract_layers(build_network("mobilenet_v2", num_classes=1000), 224)


def bench_mobilenet() -> None:
    dense, depthwise, table = _archs()["eyeriss"]
    model = BuiltinCostModel(table)
    start = time.perf_counter()
    energy = cycles = 0.0
    seconds = []
    for layer in _layers():
        arch = depthwise if layer.is_depthwise else dense
        begin, misses = time.perf_counter(), model.cache.misses
        _, stats = model.find_mapping(arch, layer_to_problem(layer, Precision(8, 8, 8)), SETTINGS)
        if model.cache.misses > misses:
            seconds.append(time.perf_counter() - begin)
        energy += stats.energy_pj
        cycles += stats.cycles
    print(f"MobileNetV2 i8w8o8 on Eyeriss: {time.perf_counter() - start:.1f} s, "
          f"{energy / 1e6:.1f} uJ, {cycles:.0f} cycles, searches {model.cache.misses}, "
          f"cache hits {model.cache.hits}; per search median {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s (one core)")


def _job(args):
    arch_name, index, precision = args
    dense, depthwise, table = _ARCHS[arch_name]
    layer = _LAYERS[index]
    model = BuiltinCostModel(table)
    start = time.perf_counter()
    model.find_mapping(depthwise if layer.is_depthwise else dense, layer_to_problem(layer, precision),
                 SETTINGS)
    return time.perf_counter() - start


_ARCHS = _archs()
_LAYERS = _layers()


def bench_table() -> None:
    bits = range(2, 9)
    jobs, seen = [], set()
    total = 0
    for arch_name, (dense, depthwise, table) in _ARCHS.items():
        for index, layer in enumerate(_LAYERS):
            arch = depthwise if layer.is_depthwise else dense
            for a in bits:
                for w in bits:
                    precision = Precision(a, w, 8)
                    total += 1
                    key = MapperCache.key(arch, layer_to_problem(layer, precision), table, SETTINGS)
                    if key not in seen:
                        seen.add(key)
                        jobs.append((arch_name, index, precision))
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        seconds = list(pool.map(_job, jobs, chunksize=4))
    print(f"table: {total} (arch, layer, A, W) entries, {len(jobs)} distinct searches after "
          f"packing-signature dedup, {time.perf_counter() - start:.1f} s on 2 processes; per "
          f"search median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s")


if __name__ == "__main__":
    which = sys.argv[1:] or ["golden", "mobilenet", "table"]
    for name in which:
        {"golden": bench_golden, "mobilenet": bench_mobilenet, "table": bench_table}[name]()
