"""Float ResNets, defined in the project (no torchvision): ResNet-18 and ResNet-50 with the
ImageNet stem (7x7/2 conv and 3x3/2 max pool), ResNet-20 with the CIFAR stem (one 3x3 conv).

Downsampling blocks use a strided 1x1 convolution and BatchNorm as the shortcut (He et al. 2016,
option B); ResNet-50's bottleneck puts the stride on the 3x3 convolution, as most public
checkpoints do. Module names follow the common ``conv1`` / ``layerN.M.convK`` /
``downsample.0`` / ``fc`` layout.
"""

from __future__ import annotations

from torch import Tensor, nn

from .mobilenets import check_common


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)
    return conv, nn.BatchNorm2d(out_ch)


class _Shortcut(nn.Sequential):
    """Identity when shapes match, else a strided 1x1 convolution and BatchNorm."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__(*_conv_bn(in_ch, out_ch, 1, stride))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual sum (ResNet-18/20)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_ch, width, 3, stride)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, 1)
        self.relu = nn.ReLU(inplace=True)
        out_ch = width * self.expansion
        self.downsample = _Shortcut(in_ch, out_ch, stride) \
            if stride != 1 or in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class Bottleneck(nn.Module):
    """1x1 reduction, 3x3 (strided), 1x1 expansion by 4, residual sum (ResNet-50)."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(in_ch, width, 1, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, out_ch, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _Shortcut(in_ch, out_ch, stride) \
            if stride != 1 or in_ch != out_ch else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(out + skip)


class ResNet(nn.Module):
    """Stem, stages of residual blocks (the first block of a stage after the first strides by
    2), global average pooling, fully connected classifier."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], repeats: tuple[int, ...],
                 widths: tuple[int, ...], num_classes: int, imagenet_stem: bool) -> None:
        super().__init__()
        stem = widths[0]
        if imagenet_stem:
            self.conv1 = nn.Conv2d(3, stem, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, stem, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        in_ch = stem
        for stage, (count, width) in enumerate(zip(repeats, widths), start=1):
            blocks = []
            for index in range(count):
                stride = 2 if stage > 1 and index == 0 else 1
                blocks.append(block(in_ch, width, stride))
                in_ch = width * block.expansion
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.stages = len(repeats)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(1, self.stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18: 20 convolutions (3 of them shortcuts) and one Linear, 1.814 GMACs at 224 px."""
    check_common(1.0, num_classes)
    return ResNet(BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), num_classes, imagenet_stem=True)


def resnet50(num_classes: int = 1000) -> ResNet:
    """ResNet-50: 53 convolutions (4 shortcuts) and one Linear, 4.09 GMACs at 224 px."""
    check_common(1.0, num_classes)
    return ResNet(Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), num_classes, imagenet_stem=True)


def resnet20(num_classes: int = 10) -> ResNet:
    """ResNet-20 for 32 px images: 3x3 stem, three stages of 3 basic blocks at 16/32/64
    channels, strided 1x1 shortcuts, one Linear (22 layers)."""
    check_common(1.0, num_classes)
    return ResNet(BasicBlock, (3, 3, 3), (16, 32, 64), num_classes, imagenet_stem=False)
