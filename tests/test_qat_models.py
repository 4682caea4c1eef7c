"""Brevitas MobileNets: layer i of the quantized net carries (A_i, W_i) and is workload layer i."""

from __future__ import annotations

import pytest
import torch

from wrapper.errors import ConfigError, PrecisionError
from wrapper.network.layers import extract_layers
from wrapper.network.registry import build_network
from wrapper.qat.models import (
    bits_from_precisions,
    input_signedness,
    integer_inputs,
    integer_weights,
    load_float_weights,
    quant_layers,
    quantized_model,
    validate_bits,
)
from wrapper.qat.quantizers import MseClipThreshold
from wrapper.spec.precision import Precision

SMALL = {"width_mult": 0.25, "num_classes": 10}


def _staggered(n_layers: int) -> list[tuple[int, int]]:
    """A config where every layer differs from its neighbours (catches off-by-one shifts)."""
    return [(2 + i % 7, 1 + (i * 3) % 8) for i in range(n_layers)]


@pytest.mark.parametrize("name, n_layers", [("mobilenet_v1", 28), ("mobilenet_v2", 53)])
def test_layer_i_carries_its_own_bits_and_is_workload_layer_i(name: str, n_layers: int) -> None:
    bits = _staggered(n_layers)
    net = quantized_model(name, bits, **SMALL)
    layers = quant_layers(net)
    assert [(int(l.input_quant.bit_width()), int(l.weight_quant.bit_width())) for l in layers] \
        == bits
    float_layers = extract_layers(build_network(name, **SMALL), 32)
    quant_traced = extract_layers(net, 32)
    assert [(l.name, l.M, l.C, l.groups, l.R) for l in quant_traced] \
        == [(l.name, l.M, l.C, l.groups, l.R) for l in float_layers]
    named = dict(net.named_modules())
    assert [named[l.name] for l in quant_traced] == layers


def test_input_quantizers_are_signed_exactly_where_inputs_can_be_negative() -> None:
    v1 = input_signedness(build_network("mobilenet_v1", **SMALL))
    assert v1 == (True,) + (False,) * 27  # image in, then every input follows a ReLU
    v2_float = build_network("mobilenet_v2", **SMALL)
    v2 = input_signedness(v2_float)
    # layer 0 sees the image; block 1 (t=1) has dw(1) + projection(2); every later block starts
    # with an expansion fed by a linear bottleneck (or residual sum): 3, 6, ..., 48; 51 = last 1x1
    assert [i for i, signed in enumerate(v2) if signed] == [0] + list(range(3, 52, 3))
    net = quantized_model("mobilenet_v2", [(4, 4)] * 53, **SMALL)
    assert tuple(bool(l.input_quant.is_signed) for l in quant_layers(net)) == v2


def test_exported_integers_stay_in_range_before_training() -> None:
    bits = [(3, 2)] * 28
    net = quantized_model("mobilenet_v1", bits, **SMALL)
    for codes in integer_weights(net):
        assert codes.unique().numel() <= 4 and int(codes.abs().max()) <= 1
    images = torch.randn(4, 3, 32, 32)
    for index, codes in enumerate(integer_inputs(net, images)):
        assert codes.unique().numel() <= 8, index


def test_one_bit_weights_are_binary_and_per_channel_scales_are_per_channel() -> None:
    net = quantized_model("mobilenet_v1", [(8, 1)] * 28, per_channel=True, **SMALL)
    layer = quant_layers(net)[1]
    assert set(integer_weights(net)[1].unique().tolist()) == {-1, 1}
    assert layer.quant_weight().scale.shape == (layer.out_channels, 1, 1, 1)


def test_float_checkpoint_loads_into_the_quantized_net() -> None:
    float_net = build_network("mobilenet_v2", **SMALL)
    for name, buffer in float_net.named_buffers():  # non-default BN statistics
        if name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
    quant_net = quantized_model("mobilenet_v2", [(16, 16)] * 53, **SMALL)
    load_float_weights(quant_net, float_net.state_dict())
    quant_state = quant_net.state_dict()
    for key, value in float_net.state_dict().items():
        assert torch.equal(quant_state[key], value), key
    other = build_network("mobilenet_v2", width_mult=0.5, num_classes=10)
    with pytest.raises(ConfigError, match="does not fit the net"):
        load_float_weights(quant_net, other.state_dict(), source="x.pt")


def _zero_fraction(net: torch.nn.Module) -> float:
    codes = torch.cat([c.flatten() for c in integer_weights(net)])
    return float((codes == 0).float().mean())


@pytest.mark.parametrize("per_channel", [False, True])
def test_learned_scales_start_from_mse_clipping_not_max_abs(per_channel: bool) -> None:
    """At 2 bits a max|w| scale rounds most weights to 0; the MSE-optimal start does not, and
    its scales are parameters the optimizer trains."""
    weights = build_network("mobilenet_v1", **SMALL).state_dict()
    generator = torch.Generator().manual_seed(0)
    for value in weights.values():  # bell-shaped, like trained weights (the init is uniform)
        if value.dim() in (2, 4):
            value.copy_(0.1 * torch.randn(value.shape, generator=generator))
    nets = {}
    for kind in ("maxabs", "learned"):
        nets[kind] = quantized_model("mobilenet_v1", [(8, 2)] * 28, quantizer=kind,
                                     per_channel=per_channel, **SMALL)
        load_float_weights(nets[kind], weights)
    assert _zero_fraction(nets["maxabs"]) > 0.7
    assert _zero_fraction(nets["learned"]) < 0.5
    learned = dict(nets["learned"].named_parameters())
    scales = [name for name in learned
              if name.endswith("weight_quant.tensor_quant.scaling_impl.value")]
    assert len(scales) == 28 and all(learned[name].requires_grad for name in scales)
    assert not any("weight_quant" in name for name, _ in nets["maxabs"].named_parameters())


@pytest.mark.parametrize("signed, narrow", [(True, True), (True, False), (False, False)])
def test_clip_threshold_minimises_the_quantization_error(signed: bool, narrow: bool) -> None:
    rows = torch.randn(3, 4000, generator=torch.Generator().manual_seed(0)) * torch.tensor(
        [[0.1], [1.0], [10.0]])
    if not signed:
        rows = rows.relu()
    for bits in (2, 3, 8):
        clip = MseClipThreshold(bits, signed, narrow, stats_reduce_dim=1)
        best = clip(rows)
        largest = rows.abs().amax(1)
        assert best.shape == (3,) and torch.all(best <= largest)
        levels = -clip.low if signed else clip.high

        def error(threshold: torch.Tensor) -> torch.Tensor:
            scale = (threshold / levels).unsqueeze(1)
            quantized = (rows / scale).round().clamp(clip.low, clip.high) * scale
            return (quantized - rows).square().sum(1)

        assert torch.all(error(best) <= error(largest))
        assert torch.all(error(best) <= error(largest / 2))
        if bits == 2:  # a 2-bit grid clips far below the largest value
            assert torch.all(best < 0.6 * largest)
    whole = MseClipThreshold(2, signed, narrow)(rows[1])  # per tensor: one threshold
    per_row = MseClipThreshold(2, signed, narrow, stats_reduce_dim=1)(rows)
    assert whole.shape == () and torch.isclose(whole, per_row[1])


def test_unknown_quantizer_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown quantizer 'lerned'.*did you mean 'learned'"):
        quantized_model("mobilenet_v1", [(8, 8)] * 28, quantizer="lerned", **SMALL)


@pytest.mark.parametrize("bits, error, text", [
    ([(8, 8)] * 27, ConfigError, "27 .A, W. pairs but the net has 28"),
    ([(8, 8)] * 27 + [(8, 0)], PrecisionError, "layer 27: W = 0 bits is outside 1..16"),
    ([(17, 8)] * 28, PrecisionError, "layer 0: A = 17 bits"),
    ([(8, True)] * 28, PrecisionError, "W = True"),
    ([(8, 8, 8)] * 28, ConfigError, "3 values instead of"),
    (8, ConfigError, "not a list of"),
])
def test_bad_bit_configs_give_one_line_errors(bits: object, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as info:
        validate_bits(bits, 28)  # type: ignore[arg-type]
    assert "\n" not in str(info.value) and "fix:" in str(info.value)


def test_precision_labels_map_inputs_to_a_and_weights_to_w() -> None:
    assert bits_from_precisions([Precision(6, 3, 8)], 3) == ((6, 3),) * 3
    with pytest.raises(PrecisionError, match="native"):
        bits_from_precisions([Precision(inputs=8)], 3)
