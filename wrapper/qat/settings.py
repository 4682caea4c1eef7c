"""The QAT package's settings types: which net, which data, how to train. Free of torch, so the
main job's experiment file reads its ``model``, ``data`` and ``qat`` sections into these types
(through `wrapper.spec.settings`) without loading PyTorch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from ..spec.settings import setting

DATA_KINDS: tuple[str, ...] = ("digits", "cifar10", "imagenet")
# Quantizer families (wrapper.qat.quantizers): learned scales, or scales fixed from max |x|.
QUANTIZERS: tuple[str, ...] = ("learned", "maxabs")
DEFAULT_QUANTIZER = "learned"
# Float pre-training's own recipe: it starts from random weights, so it needs a larger rate and
# more epochs than fine-tuning from a float checkpoint (`TrainSettings`'s defaults).
FLOAT_EPOCHS = 8
FLOAT_LR = 0.1


@dataclass(frozen=True)
class ModelSpec:
    """Which net to build; stored in every checkpoint so a checkpoint rebuilds its own net.

    ``name`` is a registry name, ``package.module:callable`` or ``path/to/file.py:callable``
    (``wrapper.network.registry``), called with ``kwargs``; ``state_dict`` optionally names a
    float state_dict file loaded into the built net. ``num_classes`` None means "as many as the
    data set has" (the main job fills it in; a net without that keyword keeps its own);
    ``width_mult`` and ``relu6`` None mean the builder's default, and only the MobileNets take
    them. ``skip_unsupported`` leaves compute the hardware model cannot express out of the
    workload with a warning instead of an error.
    """

    name: str = setting("mobilenet_v1", help="registry name, package.module:callable or "
                                             "path/to/file.py:callable")
    width_mult: float | None = setting(None, above=0.0, help="MobileNets: width multiplier")
    num_classes: int | None = setting(None, minimum=2, help="classes (default: from the data)")
    relu6: bool | None = setting(None, help="MobileNetV2 only: ReLU6 instead of ReLU")
    kwargs: Mapping[str, Any] = setting(default_factory=dict,
                                        help="keyword arguments of the model callable")
    state_dict: str | None = setting(None, help="float state_dict file to load")
    skip_unsupported: bool = setting(False, help="leave unsupported compute (Conv1d, attention, "
                                                 "...) out of the workload with a warning")

    def network_args(self) -> dict[str, Any]:
        """Keyword arguments of ``wrapper.network.registry.build_network`` (after the name)."""
        return {"kwargs": dict(self.kwargs), "state_dict": self.state_dict,
                "width_mult": self.width_mult, "num_classes": self.num_classes,
                "relu6": self.relu6}


@dataclass(frozen=True)
class DataSpec:
    """Which data to load and how: the data section of an experiment or the CLI options.

    ``root`` is required for cifar10 (the python batches folder) and imagenet (a folder with
    ``train/`` and ``val/``); digits ignores it. ``max_classes`` keeps the first N classes in sorted
    order (ImageNet-100 = the first 100 synsets).

    Three splits, so that the accuracy a search reports is not the score it selected on:
    train (weights are fitted on it), validation (the search selects on it) and test (used in no
    decision, only reported). Digits: ``test_fraction`` and ``val_fraction`` of all images, drawn
    with ``seed``. CIFAR-10 and ImageNet: validation is ``val_fraction`` of the official training
    set (drawn with ``seed``), test is the official test batch / ``val/`` folder.
    """

    kind: str = setting("digits", choices=DATA_KINDS, help="data set")
    root: str | None = setting(None, help="data folder (not needed for digits)")
    resolution: int = setting(32, minimum=8, maximum=1024, help="input size in pixels")
    seed: int = setting(0, minimum=0, help="seed of the train/validation/test split")
    val_fraction: float = setting(0.2, above=0.0, maximum=0.9,
                                  help="share held out for validation (digits: of all images; "
                                       "others: of the training set)")
    test_fraction: float = setting(0.2, above=0.0, maximum=0.9,
                                   help="digits only: share of all images held out for test")
    max_classes: int | None = setting(None, minimum=2, help="keep the first N classes")


@dataclass(frozen=True)
class TrainSettings:
    """Optimizer and run settings; the defaults are the QAT recipe of the main job (the paper's
    SGD, momentum 0.9, weight decay 1e-5; one epoch at base rate 0.01, scaled per bit width), so
    ``wrapper.qat finetune`` and explore train a configuration alike. Float training uses
    FLOAT_EPOCHS and FLOAT_LR instead.

    QAT only: ``quantizer`` names the quantizer family (``wrapper.qat.quantizers``);
    ``bn_recalibration_batches`` training batches re-estimate BatchNorm statistics before each
    evaluation (0: keep the running averages); ``scale_lr_by_bits`` multiplies ``lr`` by the
    factor measured for the candidate's lowest bit widths (``wrapper.qat.recipe``).

    ``fraction`` below 1 makes a cheaper, noisier run (a search's screen or probe): that share
    (`portion`) of each epoch's training batches, of the calibration and re-estimation batches
    and of the validation split (its first samples, the same for every run), so it costs about
    ``fraction`` of a full run.
    """

    epochs: int = setting(1, minimum=1, maximum=10_000, help="training epochs")
    lr: float = setting(0.01, above=0.0, help="base learning rate (cosine schedule)")
    momentum: float = setting(0.9, minimum=0.0, maximum=1.0, help="SGD momentum")
    weight_decay: float = setting(1e-5, minimum=0.0, help="L2 weight decay")
    batch_size: int = setting(64, minimum=1, maximum=1_000_000, help="batch size")
    seed: int = setting(0, minimum=0, help="seed of initialisation and batch order")
    device: str = setting("cpu", pattern=r"cpu|cuda(:\d+)?", help="cpu, cuda or cuda:N")
    per_channel: bool = setting(False, help="per-channel weight scales")
    quantizer: str = setting(DEFAULT_QUANTIZER, choices=QUANTIZERS,
                             help="quantizer family: learned scales or max-abs scales")
    calibration_batches: int = setting(8, minimum=0, maximum=100_000,
                                      help="batches that set the quant scales")
    bn_recalibration_batches: int = setting(8, minimum=0, maximum=100_000,
                                            help="batches that re-estimate BatchNorm statistics")
    scale_lr_by_bits: bool = setting(True, help="scale lr by the lowest bit widths' factor")
    num_workers: int = setting(0, minimum=0, maximum=256, help="data loader workers")
    progress: bool = setting(True, help="show progress bars")
    fraction: float = setting(1.0, above=0.0, maximum=1.0,
                              help="share of every pass's batches and of the validation split")


def portion(count: int, fraction: float) -> int:
    """How many of ``count`` batches (or samples) a run of ``fraction`` uses: all at 1, else at
    least one of a non-empty pass."""
    if fraction >= 1.0 or count == 0:
        return count
    return max(1, math.ceil(count * fraction))
