"""Seconds per QAT epoch on scikit-learn's digits, one CPU core (run by hand, never in CI).

    python benchmarks/bench_qat.py [--model mobilenet_v1] [--width-mult 0.25] [--epochs 3]

Prints the float-training and QAT epoch times (median over epochs) for uniform 8-bit and for a
mixed 2/3/4/8-bit configuration, so the QAT overhead of Brevitas over float is visible.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wrapper.qat.data import DataSpec, load_data  # noqa: E402
from wrapper.qat.models import layer_count  # noqa: E402
from wrapper.qat.train import ModelSpec, TrainSettings, finetune, train_float  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v1")
    parser.add_argument("--width-mult", type=float, default=0.25)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load_data(DataSpec(resolution=args.resolution))
    spec = ModelSpec(args.model, args.width_mult, data.num_classes)
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "progress": False}
    start = time.perf_counter()
    base = train_float(spec, data, TrainSettings(lr=0.1, weight_decay=5e-4, **common))
    print(f"{args.model} x{args.width_mult} @{args.resolution}px, digits "
          f"({len(data.train)} train / {len(data.val)} val images), batch {args.batch_size}, "
          f"1 thread")
    print(f"float training : {statistics.median(base.epoch_seconds):6.2f} s/epoch "
          f"(top-1 {base.top1:.3f} after {args.epochs} epochs)")
    n_layers = layer_count(args.model, **spec.network_args())
    widths = (2, 3, 4, 8)
    configs = {"8-bit uniform": [(8, 8)] * n_layers,
               "mixed 2/3/4/8": [(widths[(i + 1) % 4], widths[i % 4]) for i in range(n_layers)]}
    for label, bits in configs.items():
        result = finetune(base.checkpoint, bits, data, TrainSettings(lr=0.01, **common))
        print(f"QAT {label:13s}: {statistics.median(result.epoch_seconds):6.2f} s/epoch "
              f"(top-1 {result.top1:.3f})")
    print(f"total wall time: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
