"""Hardware-table time of explore for ResNet-18 next to MobileNetV2 (run by hand, never in CI).
Prints the figures.

  python benchmarks/bench_hardware_table.py                        # the explore mapper budget
  python benchmarks/bench_hardware_table.py --max-evaluations 2000 # a cheaper mapper

The table is what ``explore`` maps before its search: every layer at the 7 uniform bit pairs
(A = W = b for b in 2..8, outputs at the next layer's width, the last at 8 bits) on the Eyeriss
and Simba templates, with the built-in engine, jobs deduplicated by packing signature
(``HardwareCost``) and fanned out through the local process pool, into a fresh store per net.
ResNet-18 and MobileNetV2 at 224 px, 1000 classes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wrapper.explore.config import ArchConfig  # noqa: E402
from wrapper.explore.executors import make_executor  # noqa: E402
from wrapper.explore.experiment import build_archs  # noqa: E402
from wrapper.explore.hardware import HardwareCost  # noqa: E402
from wrapper.explore.store import Store  # noqa: E402
from wrapper.network.layers import extract_layers  # noqa: E402
from wrapper.network.registry import build_network  # noqa: E402
from wrapper.spec.costmodel import MapperSettings  # noqa: E402

ARCHS = ("eyeriss", "simba")
MODELS = ("resnet18", "mobilenet_v2")
UNIFORM_BITS = tuple(range(2, 9))


def table_seconds(model: str, settings: MapperSettings, workers: int,
                  folder: Path) -> tuple[int, int, int, float]:
    """(layers, table entries, distinct mapper runs, seconds) of one net's table."""
    layers = extract_layers(build_network(model, num_classes=1000), 224)
    entries = runs = 0
    executor = make_executor("local", workers=workers)
    try:
        start = time.perf_counter()
        with Store(folder / "store.sqlite") as store:
            for arch in ARCHS:
                hw = HardwareCost(archs=build_archs(ArchConfig(template=arch), folder / arch),
                                  layers=layers, engine="builtin", engine_options={},
                                  settings=settings, store=store, executor=executor)
                jobs = [job for b in UNIFORM_BITS
                        for job in hw.jobs(tuple((b, b) for _ in layers))]
                groups = hw.missing_jobs(jobs)
                entries += len(jobs)
                runs += len(groups)
                hw.compute(groups)
        seconds = time.perf_counter() - start
    finally:
        executor.close()
    return len(layers), entries, runs, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-evaluations", type=int, default=MapperSettings().max_evaluations,
                        help="mapper evaluations per layer (default: explore's)")
    parser.add_argument("--workers", type=int, default=2, help="pool processes (default 2)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated nets")
    args = parser.parse_args()
    settings = replace(MapperSettings(), max_evaluations=args.max_evaluations)
    print(f"hardware table: 7 uniform bit pairs x every layer x {len(ARCHS)} archs, "
          f"{args.max_evaluations} mapper evaluations, {args.workers} workers", flush=True)
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as folder:
            layers, entries, runs, seconds = table_seconds(model, settings, args.workers,
                                                           Path(folder))
        print(f"{model:13s}: {layers:3d} layers, {entries:4d} entries, {runs:4d} mapper runs, "
              f"{seconds:7.1f} s ({seconds / runs:.2f} s per run)", flush=True)


if __name__ == "__main__":
    main()
