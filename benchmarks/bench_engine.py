"""Mappings per second of the built-in engine's batch API on a golden layer (one core).

Run: python benchmarks/bench_engine.py [N]. Prints mappings/s (and timeloop-model's if on PATH).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import GOLDEN_RECORDS  # noqa: E402
from test_engine_golden import energy_table, record_arch  # noqa: E402
from wrapper.engine import evaluate_batch  # noqa: E402
from wrapper.mapping import mapping_from_dict  # noqa: E402
from wrapper.problem import problem_from_dict  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    record = GOLDEN_RECORDS[0]
    arch = record_arch(record)
    problem = problem_from_dict(yaml.safe_load(record["problem_yaml"]))
    mapping = mapping_from_dict(yaml.safe_load(record["mapping_yaml"]))
    dims, levels = problem.shape.dimensions, arch.inner_to_outer
    temporal = np.array([[mapping.for_level(lv.name).temporal.get(d, 1) for d in dims] for lv in levels])
    spatial = np.array([[mapping.for_level(lv.name).spatial.get(d, 1) for d in dims] for lv in levels])
    perms = [mapping.for_level(lv.name).temporal_permutation for lv in levels]
    keeps = [mapping.for_level(lv.name).keep for lv in levels]
    table = energy_table(record["ert_ref"], record["art_ref"])
    start = time.perf_counter()
    evaluate_batch(arch, problem, np.repeat(temporal[None], n, 0), np.repeat(spatial[None], n, 0),
                   perms, keeps, table)
    elapsed = time.perf_counter() - start
    print(f"builtin batch: {n / elapsed:,.0f} mappings/s ({n} mappings, {record['case_id']})")
    if shutil.which("timeloop-model"):
        print("timeloop-model on PATH: about 18 ms per mapping with ERT/ART given (golden README)")


if __name__ == "__main__":
    main()
