"""Quantized nets with one (A_i, W_i) per quantizable layer, built with Brevitas, for any model.

The float net comes from ``wrapper.network.registry``; ``wrapper.network.layers.trace_model``
lists its Conv2d/Linear calls in execution order, the one layer order of the workload, the search
genome and the QAT. Each such module is replaced by its Brevitas counterpart (Brevitas' own
module-to-module rewriter, which keeps every constructor setting and the float weights), and
layer ``i`` carries BOTH of its bit widths itself:

* ``W_i``: a signed symmetric weight quantizer on the layer (narrow range, so 2..16 bits give at
  most 2^W - 1 levels; 1 bit is binary {-s, +s}); per-tensor or per-channel scales, learned or
  set from max|w| (the quantizer families of ``wrapper.qat.quantizers``).
* ``A_i``: a quantizer on the layer's INPUT (Brevitas ``input_quant``), so the activation bits
  the hardware model charges for layer i's Inputs are the ones the network uses there, with no
  off-by-one shift to the previous layer's output. Unsigned when the input comes from a ReLU;
  signed where the input can be negative (the image, a linear bottleneck, a residual sum). The
  trace finds signedness by running the float net on signed random data, never by architecture.

Everything else (BatchNorm, pooling, residual adds, concatenations, gates, other activations)
stays float. BatchNorm is never folded into the weights: folding would change the integer
weights after the bit widths were applied. On hardware BN becomes the per-channel
requantization multiplier on the accumulator, which leaves the W_i-bit weights untouched. Biases
stay float (they are added at accumulator precision). A module called several times is one set
of weights, so its calls must share one (A, W).
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import torch
from brevitas.graph.base import ModuleToModuleByInstance, replace_module
from brevitas.nn import QuantConv2d, QuantLinear
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from torch import Tensor, nn

from ..errors import ConfigError, PrecisionError
from ..network.layers import TracedLayer, UnsupportedLayerWarning, trace_model
from ..network.registry import build_network
from ..spec.precision import Precision
from .quantizers import check_quantizer, input_quantizer, weight_quantizer
from .settings import DEFAULT_QUANTIZER

MIN_BITS, MAX_BITS = 1, 16
BitConfig = tuple[tuple[int, int], ...]  # (A_i, W_i) per quantizable layer
PROBE_RESOLUTION = 32  # input size of the trace when the caller gives none
# The quantized layers' module names in layer order, kept on the quantized net
_ORDER_ATTRIBUTE = "quantmap_layer_order"


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


def traced_layers(model: nn.Module, resolution: int = PROBE_RESOLUTION) -> list[TracedLayer]:
    """The net's layers in workload order. Compute the workload cannot express stays float in
    the QAT; whether the workload may leave it out is the workload's decision and warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsupportedLayerWarning)
        return trace_model(model, resolution, skip_unsupported=True)


def layer_count(name: str, *, resolution: int = PROBE_RESOLUTION, **model_options: object) -> int:
    """Quantizable layers of net ``name`` (the length a bit config must have)."""
    return len(traced_layers(build_network(name, **model_options), resolution))  # type: ignore[arg-type]


def input_signedness(model: nn.Module, resolution: int = PROBE_RESOLUTION) -> tuple[bool, ...]:
    """Whether each layer's input can be negative, per layer in workload order.

    A ReLU/ReLU6 output is never negative; a BatchNorm output, a residual sum or a normalized
    image on random data is negative somewhere with certainty, so the trace's signed random input
    tells, per layer, whether an unsigned quantizer would clip real values.
    """
    return tuple(traced.signed_input for traced in traced_layers(model, resolution))


def _module_bits(traced: Sequence[TracedLayer], config: BitConfig,
                 source: str) -> dict[str, tuple[tuple[int, int], bool]]:
    """(A, W) and input signedness per module; the calls of a reused module must agree."""
    per_module: dict[str, tuple[tuple[int, int], bool]] = {}
    for index, (layer, bits) in enumerate(zip(traced, config)):
        known = per_module.get(layer.module_name)
        if known is not None and known[0] != bits:
            raise ConfigError(f"layer {index} ('{layer.layer.name}') reuses module "
                              f"'{layer.module_name}' at {bits}, but its first call has "
                              f"{known[0]}", file=source, field=f"bits[{index}]",
                              fix="give every call of one module the same (A, W)")
        signed = layer.signed_input or (known is not None and known[1])
        per_module[layer.module_name] = (bits, signed)
    return per_module


def quantized_model(name: str, bits: Iterable[Sequence[int]], *, per_channel: bool = False,
                    quantizer: str = DEFAULT_QUANTIZER, source: str = "<bits>",
                    resolution: int = PROBE_RESOLUTION, **model_options: object) -> nn.Module:
    """Build net ``name`` (``build_network`` with ``model_options``) with Brevitas layers at the
    given per-layer (A_i, W_i) bit widths, in workload order.

    ``quantizer`` names the quantizer family (``wrapper.qat.quantizers``); ``resolution`` is the
    input size of the trace that orders the layers.
    """
    check_quantizer(quantizer)
    model = build_network(name, **model_options)  # type: ignore[arg-type]
    traced = traced_layers(model, resolution)
    config = validate_bits(bits, len(traced), source=source)
    for module_name, ((act_bits, weight_bits), signed) in _module_bits(traced, config,
                                                                       source).items():
        module = model.get_submodule(module_name)
        quant_class = QuantConv2d if isinstance(module, nn.Conv2d) else QuantLinear
        rewriter = ModuleToModuleByInstance(
            module, quant_class,
            weight_quant=weight_quantizer(quantizer, weight_bits, per_channel),
            weight_bit_width=weight_bits, input_quant=input_quantizer(quantizer, signed),
            input_bit_width=act_bits, return_quant_tensor=False)
        # Brevitas' own loading builds on the meta device and then wants the quantizers' state
        # in the float module's state_dict; so build on the CPU and copy only the float weights
        quant = rewriter.init_new_module(module, module_name, load_state_dict=False)
        quant.load_state_dict(module.state_dict(), strict=False)
        replace_module(model, module, quant)
    setattr(model, _ORDER_ATTRIBUTE, tuple(t.module_name for t in traced))
    return model


def quant_layers(model: nn.Module) -> list[QuantWeightBiasInputOutputLayer]:
    """The Brevitas layers of a quantized net in workload order (= genome order)."""
    order = getattr(model, _ORDER_ATTRIBUTE, None)
    if order is None:
        raise ConfigError("the net was not built by quantized_model", field="model",
                          fix="build quantized nets with wrapper.qat.models.quantized_model")
    return [model.get_submodule(name) for name in order]


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
