"""The project's MobileNets: structure, layer order, options and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from wrapper.errors import ConfigError
from wrapper.network.layers import trace_model
from wrapper.network.mobilenets import mobilenet_v1, mobilenet_v2
from wrapper.network.registry import build_network


def quantizable(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("builder, count", [(mobilenet_v1, 28), (mobilenet_v2, 53)])
def test_layers_run_once_each_in_module_order(builder, count):
    model = builder()
    traced = trace_model(model, 32)
    assert len(traced) == count
    names = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [t.module_name for t in traced] == names
    assert traced[-1].layer.kind == "linear"


def test_convolutions_have_no_bias_and_batchnorm_follows():
    model = mobilenet_v2()
    modules = list(model.modules())
    convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    assert all(modules[i].bias is None for i in convs)
    assert all(isinstance(modules[i + 1], nn.BatchNorm2d) for i in convs)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
@pytest.mark.parametrize("resolution", [32, 96])
def test_forward_gives_one_logit_per_class_at_any_resolution(name, resolution):
    model = build_network(name, num_classes=10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, resolution, resolution)).shape == (2, 10)


def test_mobilenet_v2_uses_relu_by_default_and_relu6_on_request():
    assert not any(isinstance(m, nn.ReLU6) for m in mobilenet_v2().modules())
    assert any(isinstance(m, nn.ReLU6) for m in mobilenet_v2(relu6=True).modules())


def test_width_multiplier_scales_channels_to_multiples_of_eight():
    half = quantizable(mobilenet_v1(width_mult=0.5))
    assert half[0].out_channels == 16
    assert half[-1].in_features == 512
    assert all(m.out_channels % 8 == 0 for m in half if isinstance(m, nn.Conv2d))
    # MobileNetV2 keeps its 1280-channel last conv for multipliers below 1
    assert quantizable(mobilenet_v2(width_mult=0.5))[-1].in_features == 1280


def test_residual_blocks_add_their_input():
    model = mobilenet_v2().eval()
    block = model.features[3]  # 24 -> 24 channels, stride 1: has a skip connection
    assert block.use_residual and not model.features[2].use_residual
    x = torch.randn(1, 24, 8, 8)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.conv(x))


def test_unknown_model_name_suggests_closest():
    with pytest.raises(ConfigError) as info:
        build_network("mobilenetv2")
    assert "mobilenet_v2" in str(info.value) and info.value.field == "model.name"


@pytest.mark.parametrize("kwargs, field", [({"width_mult": 0}, "width_mult"),
                                           ({"num_classes": 0}, "num_classes"),
                                           ({"relu6": True}, "model.relu6")])
def test_bad_options_are_config_errors(kwargs, field):
    with pytest.raises(ConfigError) as info:
        build_network("mobilenet_v1", **kwargs)
    assert info.value.field == field and info.value.fix
