"""Top-1 on digits per uniform bit width, before and after learned quantizer scales (by hand).

    python benchmarks/bench_quantizers.py [--epochs 1] [--seeds 0 1 2] [--per-channel]
                                          [--setups before learned-only after]

Trains one float MobileNetV1 x0.25 at 32 px with the search's float recipe, then fine-tunes every
uniform W/A configuration from it with the search's per-candidate QAT budget (one epoch, lr 0.01
before the bit-width recipe) under each setup:

* ``before``: max|w| weight scales, no BatchNorm re-estimation, the same lr at every width
  (the QAT of the search before learned scales; kept so the comparison can be re-run);
* ``learned-only``: learned scales, otherwise ``before`` (what the quantizers alone change);
* ``after``: the defaults (learned scales, BatchNorm re-estimation, lr by bit width).

Prints one row per configuration (top-1 in %, mean over seeds), then the median seconds per QAT
epoch (BatchNorm re-estimation included) and per candidate (build, calibration, QAT, evaluation:
what the search pays per bit configuration), on one thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wrapper.qat.data import DataSpec, load_data  # noqa: E402
from wrapper.qat.models import layer_count  # noqa: E402
from wrapper.qat.train import ModelSpec, TrainSettings, finetune, train_float  # noqa: E402

# (label, W, A); the float row is the starting checkpoint itself
CONFIGS = (("W2/A8", 2, 8), ("W8/A2", 8, 2), ("W2/A2", 2, 2), ("W3/A3", 3, 3),
           ("W4/A4", 4, 4), ("W8/A8", 8, 8))
SETUPS = {
    "before": {"quantizer": "maxabs", "bn_recalibration_batches": 0, "scale_lr_by_bits": False},
    "learned-only": {"bn_recalibration_batches": 0, "scale_lr_by_bits": False},
    "after": {},
}
# The search's defaults: float start of 8 epochs at lr 0.1, QAT at lr 0.01, batch 64
FLOAT = TrainSettings(epochs=8, lr=0.1, weight_decay=1e-5, progress=False)
QAT_LR = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="QAT epochs per candidate")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="QAT seeds (batch order) to average over")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    args = parser.parse_args()
    torch.set_num_threads(1)
    begin = time.perf_counter()

    data = load_data(DataSpec())
    spec = ModelSpec("mobilenet_v1", 0.25, data.num_classes)
    start = train_float(spec, data, FLOAT)
    n_layers = layer_count(spec.name, **spec.network_args())
    seconds: dict[str, list[float]] = {setup: [] for setup in args.setups}
    candidate: dict[str, list[float]] = {setup: [] for setup in args.setups}
    print(f"mobilenet_v1 x0.25 @32px, digits ({len(data.train)} train / {len(data.val)} val), "
          f"QAT {args.epochs} epoch(s) at lr {QAT_LR}, seeds {args.seeds}, "
          f"{'per-channel' if args.per_channel else 'per-tensor'} weight scales, 1 thread")
    print(f"{'config':8s}" + "".join(f"{setup:>14s}" for setup in args.setups))
    print(f"{'float':8s}" + f"{100 * start.top1:14.1f}" * len(args.setups))
    for label, weight_bits, act_bits in CONFIGS:
        row = []
        for setup in args.setups:
            top1 = []
            for seed in args.seeds:
                settings = replace(TrainSettings(epochs=args.epochs, lr=QAT_LR, seed=seed,
                                                 per_channel=args.per_channel, progress=False),
                                   **SETUPS[setup])
                begin_candidate = time.perf_counter()
                result = finetune(start.checkpoint, [(act_bits, weight_bits)] * n_layers, data,
                                  settings)
                candidate[setup].append(time.perf_counter() - begin_candidate)
                top1.append(result.top1)
                seconds[setup].extend(result.epoch_seconds)
            row.append(100 * statistics.mean(top1))
        print(f"{label:8s}" + "".join(f"{value:14.1f}" for value in row), flush=True)
    for label, values in (("s/epoch", seconds), ("s/cand", candidate)):
        print(f"{label:8s}" + "".join(f"{statistics.median(values[s]):14.2f}"
                                      for s in args.setups))
    print(f"float training: {statistics.median(start.epoch_seconds):.2f} s/epoch; "
          f"total wall time {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
