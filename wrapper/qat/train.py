"""Float pre-training, quantization-aware fine-tuning and top-1 evaluation.

The search scores every candidate bit configuration with ``evaluate_bit_config``: start from the
float checkpoint, calibrate the activation quantizers on a few training batches, fine-tune a few
epochs with SGD (momentum, cosine learning rate by bit width, weight decay), re-estimate the
BatchNorm statistics, return validation top-1. All randomness (shuffling, augmentation, dropout)
comes from ``TrainSettings.seed``, so the same candidate on the same machine always scores the
same.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..errors import ConfigError, DataError
from ..network.registry import build_network, check_class_count
from .calibration import calibrate_activations, recalibrate_batchnorm
from .data import DataBundle, load_data
from .models import BitConfig, load_float_weights, quant_layers, quantized_model, validate_bits
from .recipe import lr_factor
from .settings import DEFAULT_QUANTIZER, DataSpec, ModelSpec, TrainSettings, portion

CHECKPOINT_FORMAT = "quantmap-qat-checkpoint-1"
# Global gradient-norm limit. Low-bit layers can make a BatchNorm's batch variance nearly zero,
# which multiplies gradients by up to 1/sqrt(eps) per layer; unclipped, one such step sent the
# learned activation scales of a MobileNetV2 at 2..8 bits to NaN within three steps.
GRAD_CLIP_NORM = 5.0


@dataclass(frozen=True)
class Checkpoint:
    """A trained net: architecture, bit widths (None = float), weights and its measured top-1."""

    model: ModelSpec
    state_dict: dict[str, torch.Tensor]
    bits: BitConfig | None = None
    per_channel: bool = False
    top1: float | None = None
    quantizer: str = DEFAULT_QUANTIZER


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training run: final top-1 (fraction 0..1) and the per-epoch history."""

    top1: float
    epoch_seconds: tuple[float, ...]
    epoch_top1: tuple[float, ...]
    checkpoint: Checkpoint = field(repr=False)


def check_model(model: ModelSpec) -> None:
    """A model spec the registry can build: the callable imports, takes the keywords and returns
    an nn.Module, and the state_dict (if any) fits it; each failure is one ConfigError."""
    build_network(model.name, **model.network_args())


def _check_settings(settings: TrainSettings) -> None:
    for name in ("epochs", "batch_size", "lr"):
        if not getattr(settings, name) > 0:
            raise ConfigError(f"{name} = {getattr(settings, name)} must be > 0",
                              field=f"qat.{name}", fix="use a positive value")
    for name in ("weight_decay", "momentum", "calibration_batches", "bn_recalibration_batches",
                 "num_workers"):
        if getattr(settings, name) < 0:
            raise ConfigError(f"{name} = {getattr(settings, name)} must be >= 0",
                              field=f"qat.{name}", fix="use 0 or a positive value")
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{settings.device}' requested but CUDA is not available",
                          field="qat.device", fix="use device 'cpu'")


def _seed_everything(settings: TrainSettings) -> torch.Generator:
    """Seed torch (augmentation, dropout) and return the generator that orders the batches."""
    torch.manual_seed(settings.seed)
    if settings.device.startswith("cuda"):
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(settings.seed)


def _loader(dataset: Dataset, settings: TrainSettings, *, train: bool,
            generator: torch.Generator | None = None) -> DataLoader:
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise DataError("the data set split is empty", field="data",
                        fix="add images to the train/ and val/ folders")
    return DataLoader(dataset, batch_size=settings.batch_size, shuffle=train,
                      generator=generator, num_workers=settings.num_workers,
                      # a batch of one breaks BatchNorm in training mode
                      drop_last=train and size > settings.batch_size,
                      pin_memory=settings.device.startswith("cuda"))


def evaluate(model: nn.Module, dataset: Dataset, settings: TrainSettings) -> float:
    """Top-1 accuracy (fraction 0..1) of a net on a data set (its first
    ``portion(len, settings.fraction)`` samples), in eval mode."""
    device = torch.device(settings.device)
    size = len(dataset)  # type: ignore[arg-type]
    used = portion(size, settings.fraction)
    if used < size:
        dataset = Subset(dataset, range(used))
    model.to(device).eval()
    correct = total = 0
    batches = _loader(dataset, settings, train=False)
    with torch.no_grad():
        for images, labels in tqdm(batches, desc="eval", leave=False, file=sys.stderr,
                                   disable=not settings.progress):
            logits = model(images.to(device))
            correct += int((logits.argmax(1).cpu() == labels).sum())
            total += int(labels.numel())
    return correct / total


def _first_batches(data: DataBundle, settings: TrainSettings, count: int) -> Iterable[torch.Tensor]:
    """The images of the first ``portion(count, settings.fraction)`` unshuffled training
    batches (a fixed sample)."""
    batches = _loader(data.train, settings, train=False)
    return (images for images, _ in itertools.islice(batches, portion(count, settings.fraction)))


def _fit(model: nn.Module, data: DataBundle, settings: TrainSettings, generator: torch.Generator,
         desc: str, recalibrate: bool = False) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """SGD with momentum and a per-step cosine schedule; returns per-epoch seconds and top-1.

    With ``recalibrate`` (QAT), BatchNorm statistics are re-estimated before each evaluation.
    """
    device = torch.device(settings.device)
    model.to(device)
    batches = _loader(data.train, settings, train=True, generator=generator)
    steps = portion(len(batches), settings.fraction)  # per epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=settings.epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    seconds: list[float] = []
    accuracy: list[float] = []
    with tqdm(total=settings.epochs * steps, desc=desc, file=sys.stderr,
              disable=not settings.progress, unit="step") as bar:
        for epoch in range(settings.epochs):
            start = time.perf_counter()
            model.train()
            for images, labels in itertools.islice(batches, steps):
                loss = loss_fn(model(images.to(device)), labels.to(device))
                value = loss.item()
                if not math.isfinite(value):
                    raise ConfigError(f"training diverged (loss {value}) in epoch {epoch + 1}",
                                      field="qat.lr", fix="lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP_NORM)
                optimizer.step()
                schedule.step()
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.3f}")
            if recalibrate and settings.bn_recalibration_batches:
                recalibrate_batchnorm(model, _first_batches(
                    data, settings, settings.bn_recalibration_batches), device)
            seconds.append(time.perf_counter() - start)
            accuracy.append(evaluate(model, data.val, settings))
            bar.set_postfix(epoch=epoch + 1, val_top1=f"{accuracy[-1]:.3f}")
    return tuple(seconds), tuple(accuracy)


def _resolve_data(data: DataBundle | DataSpec) -> DataBundle:
    return data if isinstance(data, DataBundle) else load_data(data)


def train_float(model: ModelSpec, data: DataBundle | DataSpec, settings: TrainSettings,
                out: str | Path | None = None) -> TrainResult:
    """Train a float net from scratch (the demo's pretrained starting point)."""
    _check_settings(settings)
    check_model(model)
    bundle = _resolve_data(data)
    if model.num_classes is None:
        model = replace(model, num_classes=bundle.num_classes)
    if model.num_classes != bundle.num_classes:
        raise ConfigError(f"model has {model.num_classes} classes, data has {bundle.num_classes}",
                          field="model.num_classes", fix=f"use {bundle.num_classes}")
    generator = _seed_everything(settings)
    net = build_network(model.name, **model.network_args())
    check_class_count(net, model.name, bundle.num_classes, bundle.resolution)
    seconds, accuracy = _fit(net, bundle, settings, generator, desc=f"train {model.name}")
    checkpoint = Checkpoint(model=model, state_dict=_cpu_state(net), top1=accuracy[-1])
    if out is not None:
        save_checkpoint(checkpoint, out)
    return TrainResult(accuracy[-1], seconds, accuracy, checkpoint)


def _quantized_start(start: Checkpoint, bits: Iterable[Sequence[int]], bundle: DataBundle,
                     settings: TrainSettings, source: str) -> tuple[nn.Module, BitConfig]:
    """The float weights in a net quantized at ``bits``, activation scales calibrated: where
    QAT starts, and what post-training quantization scores."""
    pairs = list(bits)
    net = quantized_model(start.model.name, pairs, per_channel=settings.per_channel,
                          quantizer=settings.quantizer, resolution=bundle.resolution,
                          **start.model.network_args())
    config = validate_bits(pairs, len(quant_layers(net)))
    load_float_weights(net, start.state_dict, source=source)
    calibrate_activations(net, _first_batches(bundle, settings,
                                              max(1, settings.calibration_batches)),
                          torch.device(settings.device))
    return net, config


def post_training_accuracy(float_checkpoint: Checkpoint | str | Path,
                           bits: Iterable[Sequence[int]], data: DataBundle | DataSpec,
                           settings: TrainSettings) -> float:
    """Validation top-1 of the float net quantized at ``bits`` without training (calibrated
    scales, BatchNorm statistics re-estimated): a cheap probe of how much each layer's
    quantization hurts, a few forward passes instead of a QAT run."""
    _check_settings(settings)
    source = _checkpoint_source(float_checkpoint)
    start = _resolve_checkpoint(float_checkpoint)
    bundle = _resolve_data(data)
    _seed_everything(settings)
    net, _ = _quantized_start(start, bits, bundle, settings, source)
    if settings.bn_recalibration_batches:
        recalibrate_batchnorm(net, _first_batches(bundle, settings,
                                                  settings.bn_recalibration_batches),
                              torch.device(settings.device))
    return evaluate(net, bundle.val, settings)


def finetune(float_checkpoint: Checkpoint | str | Path, bits: Iterable[Sequence[int]],
             data: DataBundle | DataSpec, settings: TrainSettings,
             out: str | Path | None = None,
             warm: Checkpoint | str | Path | None = None) -> TrainResult:
    """QAT: quantize a float checkpoint at per-layer (A_i, W_i), calibrate, fine-tune, evaluate.

    ``warm``, a QAT checkpoint of the same net at other bit widths, replaces the float weights
    (convolutions, BatchNorm) by its fine-tuned ones; the quantizer scales are still calibrated
    for ``bits``, since scales learned at other widths do not fit these."""
    _check_settings(settings)
    source = _checkpoint_source(float_checkpoint)
    start = _resolve_checkpoint(float_checkpoint)
    if start.bits is not None:
        raise ConfigError("checkpoint is already quantized", file=source, field="bits",
                          fix="fine-tune from the float checkpoint written by 'train'")
    if warm is not None:
        start = _warm_start(start, warm)
    bundle = _resolve_data(data)
    if start.model.num_classes != bundle.num_classes:
        raise ConfigError(f"checkpoint has {start.model.num_classes} classes, data has "
                          f"{bundle.num_classes}", file=source, field="model.num_classes",
                          fix="use the data set the float model was trained on")
    generator = _seed_everything(settings)
    net, config = _quantized_start(start, bits, bundle, settings, source)
    if settings.scale_lr_by_bits:
        settings = replace(settings, lr=settings.lr * lr_factor(config))
    seconds, accuracy = _fit(net, bundle, settings, generator, desc=f"qat {start.model.name}",
                             recalibrate=True)
    checkpoint = Checkpoint(model=start.model, state_dict=_cpu_state(net), bits=config,
                            per_channel=settings.per_channel, top1=accuracy[-1],
                            quantizer=settings.quantizer)
    if out is not None:
        save_checkpoint(checkpoint, out)
    return TrainResult(accuracy[-1], seconds, accuracy, checkpoint)


def evaluate_bit_config(model_name: str, bits: Iterable[Sequence[int]],
                        data: DataBundle | DataSpec, settings: TrainSettings,
                        float_checkpoint: Checkpoint | str | Path,
                        warm: Checkpoint | str | Path | None = None,
                        out: str | Path | None = None) -> float:
    """Accuracy objective of the search: top-1 (0..1) after QAT of one bit configuration
    (warm-started from ``warm``, the trained net written to ``out`` when given).

    ``bits`` lists (A_i, W_i) per quantizable layer in quantmap workload order. Deterministic for
    a given ``settings.seed`` on one machine and thread count.
    """
    start = _resolve_checkpoint(float_checkpoint)
    if start.model.name != model_name:
        raise ConfigError(f"float checkpoint is a '{start.model.name}', not a '{model_name}'",
                          file=_checkpoint_source(float_checkpoint), field="model",
                          fix="use the checkpoint trained for this model")
    return finetune(start, bits, data, settings, out=out, warm=warm).top1


def _warm_start(start: Checkpoint, warm: Checkpoint | str | Path) -> Checkpoint:
    """The float checkpoint with every weight the QAT checkpoint ``warm`` also holds taken
    from ``warm`` (the quantizers' own parameters, absent from ``start``, are left out)."""
    trained = _resolve_checkpoint(warm)
    if trained.model != start.model:
        raise ConfigError(f"warm start is a '{trained.model.name}' checkpoint of another "
                          "model", file=_checkpoint_source(warm), field="warm",
                          fix="warm-start from a QAT checkpoint of the same net")
    weights = {key: trained.state_dict.get(key, value) for key, value in start.state_dict.items()}
    return replace(start, state_dict=weights)


def evaluate_checkpoint(checkpoint: Checkpoint | str | Path, data: DataBundle | DataSpec,
                        settings: TrainSettings, split: str = "val") -> float:
    """Top-1 (0..1) of a saved float or quantized checkpoint on the validation set, or on the
    test set (``split="test"``), which no training or selection decision ever sees."""
    _check_settings(settings)
    saved = _resolve_checkpoint(checkpoint)
    source = _checkpoint_source(checkpoint)
    bundle = _resolve_data(data)
    if saved.bits is None:
        net = build_network(saved.model.name, **saved.model.network_args())
    else:
        net = quantized_model(saved.model.name, saved.bits, per_channel=saved.per_channel,
                              quantizer=saved.quantizer, source=source,
                              resolution=bundle.resolution, **saved.model.network_args())
    try:
        net.load_state_dict(saved.state_dict)
    except RuntimeError:
        raise ConfigError("checkpoint weights do not fit its own model description",
                          file=source, field="state_dict", fix="re-create the checkpoint") from None
    dataset = {"val": bundle.val, "test": bundle.test}[split]
    if dataset is None:
        raise DataError("this data has no test split", field="data",
                        fix="load the data with load_data, which always holds one")
    return evaluate(net, dataset, settings)


def _cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in net.state_dict().items()}


def save_checkpoint(checkpoint: Checkpoint, path: str | Path) -> None:
    """Write a checkpoint atomically (temp file + rename), as plain tensors and builtins."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": asdict(checkpoint.model),
        "bits": None if checkpoint.bits is None else [list(p) for p in checkpoint.bits],
        "per_channel": checkpoint.per_channel,
        "quantizer": checkpoint.quantizer,
        "top1": checkpoint.top1,
        "state_dict": checkpoint.state_dict,
    }
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(payload, temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``; ConfigError when it is not one."""
    source = str(path)
    if not Path(path).is_file():
        raise ConfigError("checkpoint file does not exist", file=source, field="checkpoint",
                          fix="run 'quantmap qat train' first or fix the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise KeyError("format")
        bits = payload["bits"]
        return Checkpoint(model=ModelSpec(**payload["model"]), state_dict=payload["state_dict"],
                          bits=None if bits is None else tuple((a, w) for a, w in bits),
                          per_channel=bool(payload["per_channel"]), top1=payload["top1"],
                          # checkpoints written before quantizers were selectable used maxabs
                          quantizer=payload.get("quantizer", "maxabs"))
    except Exception as exc:  # any unpickling/shape failure means "not our checkpoint"
        raise ConfigError(f"not a QuantMap QAT checkpoint ({type(exc).__name__})", file=source,
                          field="checkpoint", fix="use a file written by 'quantmap qat "
                          "train' or 'finetune'") from None


def _resolve_checkpoint(checkpoint: Checkpoint | str | Path) -> Checkpoint:
    return checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)


def _checkpoint_source(checkpoint: Checkpoint | str | Path) -> str:
    return "<checkpoint>" if isinstance(checkpoint, Checkpoint) else str(checkpoint)
