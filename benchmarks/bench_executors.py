"""Wall time of the HW table on the local process pool vs a local Ray instance (run by hand, never
in CI). Prints the figures.

  python benchmarks/bench_executors.py                      # full table: 49 (A, W) x 53 layers x 2
  python benchmarks/bench_executors.py --layers 8 --bits 2,4,8   # a slice
  python benchmarks/bench_executors.py --ray-address HOST:6379   # Ray on an existing cluster

The table is the mapper benchmark's (bench_mapper.py table): MobileNetV2 at 224 px, every
(A, W) in the bit set with 8-bit outputs, on Eyeriss and Simba. Here it runs the way ``explore``
runs it, so the executor is the only difference between the two timings: the project's
templates, the built-in engine, jobs deduplicated by packing signature (``HardwareCost``), one
fan-out batch per arch through the executor seam, results written by the driver into a fresh
store per executor. Executor start-up (pool spawn, Ray start or connect) is timed apart.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wrapper.explore.config import ArchConfig
from wrapper.explore.executors import Executor, Task, make_executor
from wrapper.explore.experiment import build_archs
from wrapper.explore.hardware import HardwareCost
from wrapper.explore.store import Store
from wrapper.network.layers import extract_layers
from wrapper.network.registry import build_network
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.precision import Precision

ARCHS = ("eyeriss", "simba")


def _warm_up(executor: Executor) -> float:
    """Seconds until the executor has run one trivial task (its start-up cost)."""
    start = time.perf_counter()
    list(executor.run([Task("warm-up", abs, (-1,))]))
    return time.perf_counter() - start


def run_table(executor: Executor, layers: list, bits: list[int], folder: Path) -> tuple[int, int,
                                                                                       float]:
    """(table entries, distinct mapper runs, seconds) of the table on one executor."""
    entries = runs = 0
    start = time.perf_counter()
    with Store(folder / "store.sqlite") as store:
        for name in ARCHS:
            hw = HardwareCost(archs=build_archs(ArchConfig(template=name), folder / name),
                              layers=layers, engine="builtin", engine_options={},
                              settings=MapperSettings(), store=store, executor=executor)
            jobs = [hw.job(i, Precision(a, w, 8)) for i in range(len(layers))
                    for a in bits for w in bits]
            groups = hw.missing_jobs(jobs)
            entries += len(jobs)
            runs += len(groups)
            hw.compute(groups)
    return entries, runs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=None, help="first N layers (default all)")
    parser.add_argument("--bits", default="2,3,4,5,6,7,8", help="A and W widths (default 2..8)")
    parser.add_argument("--cpus", type=int, default=2, help="pool processes / Ray CPUs")
    parser.add_argument("--ray-address", default=None, help="existing Ray cluster")
    args = parser.parse_args()
    layers = extract_layers(build_network("mobilenet_v2", num_classes=1000), 224)[:args.layers]
    bits = [int(b) for b in args.bits.split(",")]
    print(f"table: {len(bits) ** 2} (A, W) x {len(layers)} layers x {len(ARCHS)} archs, "
          f"{args.cpus} CPUs")
    for kind in ("local", "ray"):
        executor = make_executor(kind, workers=args.cpus,
                                 address=args.ray_address if kind == "ray" else None)
        try:
            startup = _warm_up(executor)
            with tempfile.TemporaryDirectory() as folder:
                entries, runs, seconds = run_table(executor, layers, bits, Path(folder))
        finally:
            executor.close()
        print(f"{kind:5s}: start-up {startup:5.1f} s, table {seconds:6.1f} s "
              f"({entries} entries, {runs} mapper runs, {runs / seconds:.1f} runs/s)")


if __name__ == "__main__":
    main()
