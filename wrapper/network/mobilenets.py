"""Float MobileNetV1 and MobileNetV2, defined in the project (no torchvision).

Plain float modules like any user's net: the QAT code quantizes them by replacing their
Conv2d / Linear modules (``wrapper.qat.models``). MobileNetV1 has 28 such layers, MobileNetV2 53,
each run once, in module order.

MobileNetV2's module names follow the widespread ``features.N.conv.*`` / ``classifier.1`` layout
of public float checkpoints, so such a state dict can be loaded with ``load_state_dict``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError

# (output channels, stride) of MobileNetV1's depthwise-separable blocks (Howard et al. 2017).
_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2 (Sandler et al. 2018).
_V2_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
_V1_STEM = 32
_V2_STEM, _V2_LAST = 32, 1280
_V2_DROPOUT = 0.2  # before the classifier, as in the reference training recipe


class _Builder:
    """Small helpers shared by both nets: conv + BatchNorm (+ activation)."""

    def __init__(self, relu6: bool) -> None:
        self.relu6 = relu6

    def conv_bn(self, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1,
                act: bool = True) -> nn.Sequential:
        """Conv -> BatchNorm (-> activation); padding keeps 'same' spatial size at stride 1."""
        conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2,
                         groups=groups, bias=False)  # BatchNorm follows: no bias
        parts: list[nn.Module] = [conv, nn.BatchNorm2d(out_ch)]
        if act:
            parts.append(nn.ReLU6(inplace=True) if self.relu6 else nn.ReLU(inplace=True))
        return nn.Sequential(*parts)


def _scaled(channels: int, width_mult: float, divisor: int) -> int:
    """Channels after the width multiplier, rounded to a multiple of ``divisor``.

    Rounding never drops more than 10% below the exact value (the rule of the MobileNetV2 paper's
    reference code), so small multipliers do not collapse layers.
    """
    exact = channels * width_mult
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * exact:
        rounded += divisor
    return rounded


def check_common(width_mult: float, num_classes: int) -> None:
    if not width_mult > 0:
        raise ConfigError(f"width multiplier {width_mult} must be > 0",
                          field="width_mult", fix="use e.g. 1.0, 0.75, 0.5 or 0.25")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"number of classes {num_classes!r} must be a positive integer",
                          field="num_classes", fix="use e.g. 1000, 100 or 10")


class MobileNet(nn.Module):
    """Feature extractor, global average pooling, classifier (shared tail of both nets).

    Adaptive pooling makes the nets resolution-agnostic: resolution only changes the traced
    layer shapes, never the parameters.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expansion, 3x3 depthwise, linear 1x1 projection, skip if shapes match.

    ``conv`` holds the layers in execution order (expansion omitted when t == 1).
    """

    def __init__(self, build: _Builder, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        parts: list[nn.Module] = []
        if expand != 1:
            parts.append(build.conv_bn(in_ch, hidden, 1, 1))
        parts.append(build.conv_bn(hidden, hidden, 3, stride, groups=hidden))
        projection = build.conv_bn(hidden, out_ch, 1, 1, act=False)
        parts.extend(projection)  # conv and BN as direct children, as in the usual layout
        self.conv = nn.Sequential(*parts)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


def mobilenet_v1(width_mult: float = 1.0, num_classes: int = 1000) -> MobileNet:
    """MobileNetV1: 3x3 stem, 13 depthwise-separable blocks, FC (27 convs + 1 linear = 28)."""
    check_common(width_mult, num_classes)
    build = _Builder(relu6=False)
    in_ch = _scaled(_V1_STEM, width_mult, 8)
    layers: list[nn.Module] = [build.conv_bn(3, in_ch, 3, 2)]
    for channels, stride in _V1_BLOCKS:
        out_ch = _scaled(channels, width_mult, 8)
        layers.append(nn.Sequential(build.conv_bn(in_ch, in_ch, 3, stride, groups=in_ch),
                                    build.conv_bn(in_ch, out_ch, 1, 1)))
        in_ch = out_ch
    return MobileNet(nn.Sequential(*layers), nn.Linear(in_ch, num_classes))


def mobilenet_v2(width_mult: float = 1.0, num_classes: int = 1000, relu6: bool = False) -> MobileNet:
    """MobileNetV2: stem, 17 inverted residual blocks, 1x1 to 1280, FC (52 convs + 1 = 53).

    ReLU by default because the paper replaced ReLU6 by ReLU for quantization; ``relu6=True``
    gives the original activation.
    """
    check_common(width_mult, num_classes)
    build = _Builder(relu6=relu6)
    in_ch = _scaled(_V2_STEM, width_mult, 8)
    layers: list[nn.Module] = [build.conv_bn(3, in_ch, 3, 2)]
    for expand, channels, repeats, first_stride in _V2_BLOCKS:
        out_ch = _scaled(channels, width_mult, 8)
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            layers.append(InvertedResidual(build, in_ch, out_ch, stride, expand))
            in_ch = out_ch
    last = _scaled(_V2_LAST, max(1.0, width_mult), 8)
    layers.append(build.conv_bn(in_ch, last, 1, 1))
    classifier = nn.Sequential(nn.Dropout(_V2_DROPOUT), nn.Linear(last, num_classes))
    return MobileNet(nn.Sequential(*layers), classifier)
