"""``quantmap qat train|finetune|eval``: float pre-training, QAT and evaluation.

Only parses arguments and calls ``wrapper.qat.train``; errors print one line and exit with 2.

    quantmap qat train --model mobilenet_v1 --width-mult 0.25 --epochs 15 --out f.pt
    quantmap qat finetune --float-checkpoint f.pt --bits i4w4o- --out q.pt --json q.json
    quantmap qat eval --checkpoint q.pt --json -
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, Sequence

from .cli import OneLineParser, add_model_arguments, model_kwargs
from ..errors import QuantMapError, report_error
from ..spec.precision import Precision
from ..spec.settings import check_settings
from ..spec.yamlio import write_text_atomic
from ..qat.data import load_data
from ..qat.models import bits_from_precisions, layer_count
from ..qat.settings import (DATA_KINDS, FLOAT_EPOCHS, FLOAT_LR, QUANTIZERS, DataSpec, ModelSpec,
                           TrainSettings)
from ..qat.train import evaluate_checkpoint, finetune, load_checkpoint, train_float

_DEFAULTS = TrainSettings()


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", default="digits", choices=DATA_KINDS,
                       help="data set (default: digits, shipped with scikit-learn)")
    group.add_argument("--data-root", default=None,
                       help="CIFAR-10 python batches folder or ImageNet folder with train/ val/")
    group.add_argument("--resolution", type=int, default=32, help="input size (default 32)")
    group.add_argument("--max-classes", type=int, default=None,
                       help="keep the first N classes (ImageNet-100: 100)")


def _add_run_options(parser: argparse.ArgumentParser, training: bool,
                     from_scratch: bool = False) -> None:
    """Run options; a training command defaults to the QAT recipe of explore, float training
    from scratch to its own (more epochs, a larger rate)."""
    group = parser.add_argument_group("run")
    if training:
        group.add_argument("--epochs", type=int,
                           default=FLOAT_EPOCHS if from_scratch else _DEFAULTS.epochs)
        group.add_argument("--lr", type=float, default=FLOAT_LR if from_scratch else _DEFAULTS.lr,
                           help="initial learning rate of the cosine schedule" + (
                               "" if from_scratch else "; scaled by the lowest bit widths' "
                               "factor unless --no-lr-scaling"))
        group.add_argument("--momentum", type=float, default=_DEFAULTS.momentum)
        group.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay)
        group.add_argument("--calibration-batches", type=int,
                           default=_DEFAULTS.calibration_batches)
    group.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    group.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                       help="seeds the data split, shuffling and augmentation")
    group.add_argument("--device", default=_DEFAULTS.device, help="cpu, cuda or cuda:N")
    group.add_argument("--workers", type=int, default=_DEFAULTS.num_workers,
                       help="data loader processes")
    group.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    group.add_argument("--json", default=None, metavar="OUT",
                       help="write the result as JSON to OUT ('-' for stdout)")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog,
                           description="Brevitas QAT of a network with per-layer bits.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a float model from scratch")
    add_model_arguments(train, positional=False)
    train.add_argument("--width-mult", type=float, default=None,
                       help="MobileNets: width multiplier (default 1.0)")
    train.add_argument("--relu6", action="store_true", help="MobileNetV2 with ReLU6 (default ReLU)")
    train.add_argument("--out", required=True, help="checkpoint file to write")

    tune = commands.add_parser("finetune", help="quantization-aware fine-tuning of a float model")
    tune.add_argument("--float-checkpoint", required=True)
    tune.add_argument("--bits", nargs="+", required=True, metavar="LABEL",
                      help="i<A>w<W>o<O> labels (output width unused, may be '-'): one for all "
                           "layers or one per layer in quantmap workload order")
    tune.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    tune.add_argument("--quantizer", default=_DEFAULTS.quantizer, choices=QUANTIZERS,
                      help="learned: trained scales from MSE-optimal clipping (default); "
                           "maxabs: weight scale max|w|, not trained")
    tune.add_argument("--no-lr-scaling", action="store_true",
                      help="use --lr as given at every bit width")
    tune.add_argument("--out", default=None, help="quantized checkpoint file to write")

    check = commands.add_parser("eval", help="top-1 of a float or quantized checkpoint")
    check.add_argument("--checkpoint", required=True)

    for sub, training in ((train, True), (tune, True), (check, False)):
        _add_data_options(sub)
        _add_run_options(sub, training, from_scratch=sub is train)
    return parser


def _settings(args: argparse.Namespace) -> TrainSettings:
    training = {name: getattr(args, name) for name in
                ("epochs", "lr", "momentum", "weight_decay", "calibration_batches")
                if hasattr(args, name)}
    settings = TrainSettings(batch_size=args.batch_size, seed=args.seed, device=args.device,
                             per_channel=getattr(args, "per_channel", False),
                             quantizer=getattr(args, "quantizer", _DEFAULTS.quantizer),
                             scale_lr_by_bits=not getattr(args, "no_lr_scaling", False),
                             num_workers=args.workers, progress=not args.no_progress, **training)
    check_settings(settings, "qat", "command line")
    return settings


def _data_spec(args: argparse.Namespace) -> DataSpec:
    spec = DataSpec(kind=args.data, root=args.data_root, resolution=args.resolution,
                    seed=args.seed, max_classes=args.max_classes)
    check_settings(spec, "data", "command line")
    return spec


def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings, spec = _settings(args), _data_spec(args)
    labels = [Precision.from_label(b) for b in getattr(args, "bits", None) or ()]
    report: dict[str, Any] = {"command": args.command, "data": asdict(spec),
                              "settings": asdict(settings)}
    if args.command == "eval":
        report["checkpoint"] = args.checkpoint
        report["top1"] = evaluate_checkpoint(args.checkpoint, spec, settings)
        return report
    data = load_data(spec)
    if args.command == "train":
        model = ModelSpec(args.model, args.width_mult, data.num_classes,
                          relu6=True if args.relu6 else None, kwargs=model_kwargs(args),
                          state_dict=args.state_dict)
        result = train_float(model, data, settings, out=args.out)
    else:
        start = load_checkpoint(args.float_checkpoint)
        bits = bits_from_precisions(labels, layer_count(start.model.name,
                                                        resolution=spec.resolution,
                                                        **start.model.network_args()))
        result = finetune(start, bits, data, settings, out=args.out)
        report["bits"] = [list(pair) for pair in bits]
    report.update(model=asdict(result.checkpoint.model), checkpoint=args.out, top1=result.top1,
                  epoch_top1=list(result.epoch_top1), epoch_seconds=list(result.epoch_seconds))
    return report


def _origin(args: argparse.Namespace, exc: QuantMapError) -> str:
    """Where an error's setting came from: a fine-tuned or evaluated net's model is the one its
    checkpoint describes; everything else is a command-line option."""
    checkpoint = getattr(args, "checkpoint", None) or getattr(args, "float_checkpoint", None)
    from_checkpoint = checkpoint and (exc.field or "").startswith("model")
    return str(checkpoint) if from_checkpoint else "command line"


def main(argv: Sequence[str] | None = None, prog: str = "quantmap qat") -> int:
    args = None
    try:
        args = _parser(prog).parse_args(argv)
        report = _run(args)
    except QuantMapError as exc:
        return report_error(exc if args is None else exc.located(_origin(args, exc)))
    text = json.dumps(report, indent=2) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
    elif args.json is not None:
        write_text_atomic(text, args.json)
    print(f"{args.command}: top-1 {report['top1']:.4f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
