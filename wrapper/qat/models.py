"""Quantized MobileNets with one (A_i, W_i) per quantizable layer, built with Brevitas.

The nets come from ``wrapper.network.mobilenets`` through a ``LayerFactory``; this module supplies the factory
that returns Brevitas layers. Layer ``i`` of the factory is layer ``i`` of ``wrapper.network.layers``
and of the search genome, and it carries BOTH of its bit widths itself:

* ``W_i``: a signed symmetric weight quantizer on the layer (narrow range, so 2..16 bits give at
  most 2^W - 1 levels; 1 bit is binary {-s, +s}); per-tensor or per-channel scales, learned or
  set from max|w| (the quantizer families of ``wrapper.qat.quantizers``).
* ``A_i``: a quantizer on the layer's INPUT (Brevitas ``input_quant``), so the activation bits
  the hardware model charges for layer i's Inputs are the ones the network uses there, with no
  off-by-one shift to the previous layer's output. Unsigned when the input comes from a ReLU;
  signed where the input can be negative: the first layer (mean-subtracted image), and in
  MobileNetV2 the layers fed by a linear bottleneck or a residual sum. Signedness is found by
  probing the float net (``input_signedness``), not hard-coded per architecture.

BatchNorm stays a separate float module after each conv and is never folded into the weights:
folding would change the integer weights after the bit widths were applied (and the authors'
fusion dropped the per-layer configs). On hardware BN becomes the per-channel requantization
multiplier on the accumulator, which leaves the W_i-bit weights untouched. The classifier bias
stays float (it is added at accumulator precision).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from torch import Tensor, nn

from ..errors import ConfigError, PrecisionError
from ..network.mobilenets import LayerFactory, build_model
from ..spec.precision import Precision
from .quantizers import check_quantizer, input_quantizer, weight_quantizer
from .settings import DEFAULT_QUANTIZER

MIN_BITS, MAX_BITS = 1, 16
BitConfig = tuple[tuple[int, int], ...]  # (A_i, W_i) per quantizable layer
_PROBE_RESOLUTION = 32


class BrevitasFactory(LayerFactory):
    """Creates layer ``i`` as a Brevitas layer with weight bits W_i and input bits A_i."""

    def __init__(self, bits: BitConfig, signed_inputs: Sequence[bool],
                 per_channel: bool = False, quantizer: str = DEFAULT_QUANTIZER) -> None:
        if len(signed_inputs) != len(bits):
            raise ValueError("one signedness flag per layer is required")
        self.bits = bits
        self.signed_inputs = tuple(signed_inputs)
        self.per_channel = per_channel
        self.quantizer = check_quantizer(quantizer)

    def _quant_kwargs(self, index: int) -> dict[str, object]:
        act_bits, weight_bits = self.bits[index]
        return {
            "weight_quant": weight_quantizer(self.quantizer, weight_bits, self.per_channel),
            "weight_bit_width": weight_bits,
            "input_quant": input_quantizer(self.quantizer, self.signed_inputs[index]),
            "input_bit_width": act_bits,
            "return_quant_tensor": False,
        }

    def conv(self, index: int, in_ch: int, out_ch: int, kernel: int, stride: int, padding: int,
             groups: int) -> nn.Module:
        return QuantConv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, groups=groups,
                           bias=False, **self._quant_kwargs(index))

    def linear(self, index: int, in_f: int, out_f: int) -> nn.Module:
        return QuantLinear(in_f, out_f, bias=True, **self._quant_kwargs(index))



def count_layers(model: nn.Module) -> int:
    """Number of quantizable layers (Conv2d and Linear, float or quantized) in a net."""
    return sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def validate_bits(bits: Iterable[Sequence[int]], n_layers: int, *,
                  source: str = "<bits>") -> BitConfig:
    """Check a per-layer (A_i, W_i) list: one pair per layer, every width in 1..16.

    Raises ConfigError for a wrong shape or length and PrecisionError for a bad width, naming the
    layer so a one-line CLI message is enough to fix it.
    """
    try:
        pairs = [tuple(pair) for pair in bits]
    except TypeError:
        raise ConfigError("bit config is not a list of (A, W) pairs", file=source, field="bits",
                          fix="give one [A, W] pair per quantizable layer") from None
    if len(pairs) != n_layers:
        raise ConfigError(f"bit config has {len(pairs)} (A, W) pairs but the net has {n_layers} "
                          "quantizable layers", file=source, field="bits",
                          fix=f"give exactly {n_layers} pairs, in quantmap workload layer order")
    checked = []
    for index, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ConfigError(f"layer {index} has {len(pair)} values instead of (A, W)",
                              file=source, field=f"bits[{index}]", fix="write [A, W], e.g. [8, 4]")
        for what, value in zip(("A", "W"), pair):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not MIN_BITS <= value <= MAX_BITS:
                raise PrecisionError(f"layer {index}: {what} = {value!r} bits is outside "
                                     f"{MIN_BITS}..{MAX_BITS}", file=source,
                                     field=f"bits[{index}].{what}",
                                     fix=f"use an integer from {MIN_BITS} to {MAX_BITS}")
        checked.append((int(pair[0]), int(pair[1])))
    return tuple(checked)


def bits_from_precisions(precisions: Sequence[Precision], n_layers: int, *,
                         source: str = "<command line>") -> BitConfig:
    """(A_i, W_i) from per-layer Precision values (Inputs -> A_i, Weights -> W_i).

    One Precision stands for every layer, as in ``quantmap workload --bits``. Output bits
    are not used: a layer's outputs are quantized as the next layer's inputs.
    """
    if len(precisions) == 1:
        precisions = list(precisions) * n_layers
    for index, precision in enumerate(precisions):
        if precision.inputs is None or precision.weights is None:
            raise PrecisionError(f"layer {index}: '{precision.label()}' leaves the input or weight "
                                 "width native", file=source, field="bits",
                                 fix="give both widths, e.g. i8w4o8")
    return validate_bits([(p.inputs, p.weights) for p in precisions], n_layers, source=source)


def layer_count(name: str, **model_kwargs: object) -> int:
    """Quantizable layers of net ``name`` (the length a bit config must have)."""
    return count_layers(build_model(name, **model_kwargs))


def input_signedness(model: nn.Module) -> tuple[bool, ...]:
    """Whether each quantizable layer's input can be negative, found by running the float net.

    A ReLU/ReLU6 output is never negative; a BatchNorm output, a residual sum or a normalized
    image on random data is negative somewhere with certainty. So one forward pass on random
    signed input tells, per layer, whether an unsigned quantizer would clip real values.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    negative: dict[int, bool] = {}

    def record(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        negative[id(module)] = bool((inputs[0] < 0).any())

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.randn(2, 3, _PROBE_RESOLUTION, _PROBE_RESOLUTION,
                              generator=torch.Generator().manual_seed(0)))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return tuple(negative[id(layer)] for layer in layers)


def quantized_model(name: str, bits: Iterable[Sequence[int]], *, per_channel: bool = False,
                    quantizer: str = DEFAULT_QUANTIZER, source: str = "<bits>",
                    **model_kwargs: object) -> nn.Module:
    """Build net ``name`` with Brevitas layers at the given per-layer (A_i, W_i) bit widths.

    ``quantizer`` names the quantizer family (``wrapper.qat.quantizers``).
    """
    float_model = build_model(name, **model_kwargs)
    config = validate_bits(bits, count_layers(float_model), source=source)
    factory = BrevitasFactory(config, input_signedness(float_model), per_channel, quantizer)
    model = build_model(name, factory=factory, **model_kwargs)
    if len(quant_layers(model)) != len(config):
        raise ConfigError(f"net '{name}' created {len(quant_layers(model))} quantized layers for "
                          f"{len(config)} bit pairs", field="model",
                          fix="every Conv2d/Linear of the net must come from the layer factory")
    return model


def quant_layers(model: nn.Module) -> list[QuantWeightBiasInputOutputLayer]:
    """The Brevitas layers of a net in module order (= quantmap workload / genome order)."""
    return [m for m in model.modules() if isinstance(m, QuantWeightBiasInputOutputLayer)]


def load_float_weights(model: nn.Module, state_dict: dict[str, Tensor], *,
                       source: str = "<checkpoint>") -> None:
    """Copy a float checkpoint of the same architecture into a quantized net.

    The Brevitas layers keep the float parameter names (``features.0.0.weight``, BN buffers,
    ``classifier.bias``), so the keys map one to one; only the quantizers' own state (activation
    scales, calibrated later) is absent from a float checkpoint. Anything else missing or extra
    means a different architecture and is an error rather than a silent partial load.
    """
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(f"checkpoint does not fit the net ({first})", file=source,
                          field="state_dict", fix="use a checkpoint of the same model, "
                          "width multiplier and number of classes") from None
    missing = [k for k in result.missing_keys if "_quant." not in k]
    if missing or result.unexpected_keys:
        key = (missing or result.unexpected_keys)[0]
        kind = "lacks" if missing else "has an unknown"
        raise ConfigError(f"checkpoint {kind} parameter '{key}'", file=source, field="state_dict",
                          fix="use a checkpoint of the same model, width multiplier and number "
                              "of classes")


def integer_weights(model: nn.Module) -> list[Tensor]:
    """Each quantized layer's weights as the integers the accelerator stores (int8/int16 codes)."""
    with torch.no_grad():
        return [layer.quant_weight().int() for layer in quant_layers(model)]


def integer_inputs(model: nn.Module, images: Tensor) -> list[Tensor]:
    """Each quantized layer's input activations as integer codes, for one batch of images."""
    layers = quant_layers(model)
    codes: dict[int, Tensor] = {}

    def record(layer_id: int):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            codes[layer_id] = output.int()  # type: ignore[attr-defined]
        return hook

    handles = [layer.input_quant.register_forward_hook(record(id(layer))) for layer in layers]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [codes[id(layer)] for layer in layers]
