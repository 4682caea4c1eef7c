"""Mappings per second of the built-in engine's batch API on golden layers (one core).

Run: python benchmarks/bench_engine.py [N] [BATCH]. For a few golden cases it evaluates N random
mappings (random factorizations, loop orders and spatial splits within fan-out, as the batch
tests generate them) in calls of BATCH rows and prints mappings/s, the share of valid mappings,
and the scalar path's rate; timeloop-model's rate is printed when it is on PATH (one real run).
Pin to one core with e.g. ``taskset -c 0`` for a one-core figure (numpy here is single-threaded
for these element-wise operations anyway).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import SHARED_DIR, golden_case, golden_energy_table
from test_engine_batch import random_mappings, to_mapping

from wrapper.engine import MappingEvaluator, evaluate_batch

CASES = ("eyeriss__mbv1_L1__i16w16o16", "eyeriss__mbv1_L3__i4w4o8", "simba__mbv1_L2__i8w8o8")


def bench_case(case_id: str, n: int, batch: int) -> None:
    record, arch, problem, golden = golden_case(case_id)
    table = golden_energy_table(record["ert_ref"], record["art_ref"])
    keeps = [tuple(sorted(golden.for_level(lv.name).kept(problem.shape.dataspace_names)))
             for lv in arch.inner_to_outer]
    temporal, spatial, orders = random_mappings(arch, problem, n, seed=1)
    start = time.perf_counter()
    valid = 0
    for lo in range(0, n, batch):
        result = evaluate_batch(arch, problem, temporal[lo:lo + batch], spatial[lo:lo + batch],
                                orders[lo:lo + batch], keeps, table)
        valid += int(result.valid.sum())
    elapsed = time.perf_counter() - start
    engine, rows = MappingEvaluator(), range(min(200, n))
    mappings = [to_mapping(arch, problem, temporal[i], spatial[i], orders[i], keeps) for i in rows]
    start = time.perf_counter()
    for mapping in mappings:
        engine.evaluate(arch, problem, mapping, table)
    scalar = len(mappings) / (time.perf_counter() - start)
    print(f"{case_id:32s} batch API: {n / elapsed:>10,.0f} mappings/s ({n} mappings, batches of "
          f"{batch}, {valid / n:.0%} valid); scalar path: {scalar:,.0f} mappings/s")
    if shutil.which("timeloop-model"):
        print(f"{'':32s} timeloop-model: {timeloop_rate(record):,.1f} mappings/s")


def timeloop_rate(record: dict) -> float:
    """One real timeloop-model run on the record's own inputs (with its ERT/ART)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = {"arch.yaml": record["arch_yaml"], "problem.yaml": record["problem_yaml"],
                 "mapping.yaml": record["mapping_yaml"], **record["components_yaml"]}
        for name, text in files.items():
            (folder / name).write_text(text)
        extra = [SHARED_DIR / "golden" / record["ert_ref"], SHARED_DIR / "golden" / record["art_ref"]]
        start = time.perf_counter()
        subprocess.run(["timeloop-model", *map(str, [folder / n for n in files] + extra)], cwd=folder,
                       capture_output=True, check=False)
        return 1.0 / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    for case_id in CASES:
        bench_case(case_id, n, batch)


if __name__ == "__main__":
    main()
