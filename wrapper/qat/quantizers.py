"""The two quantizer families a QAT net can use: ``maxabs`` (the original) and ``learned``.

``maxabs``: the weight scale is recomputed every step from max|w| and never learned; activation
scales are learned, starting from the 99.999th percentile. At 2 bits (levels {-s, 0, +s}) every
weight below max|w| / 2 rounds to 0, which on MobileNets is most of them, and a 2-bit activation
range set by the largest value leaves the bulk of the activations on one or two levels.

``learned``: every scale is a parameter trained with the network (learned step size: Brevitas
rounds with a straight-through estimator, so the loss reaches the scale through the clamp and the
rounding residual). Each scale starts at the clipping threshold that minimises the quantization
MSE of the float tensor (a grid search between max/20 and max), so a 2-bit layer starts with a
useful fraction of non-zero weights and an 8-bit layer starts at max|w| as before. Scales are
learned in the log domain: steps are relative and a scale can never turn negative.
"""

from __future__ import annotations

from brevitas.inject.enum import QuantType, RestrictValueType, ScalingImplType, StatsOp
from brevitas.quant import (Int8ActPerTensorFloat, Int8ActPerTensorFloatMSE,
                            Int8WeightPerChannelFloat, Int8WeightPerChannelFloatMSE,
                            Int8WeightPerTensorFloat, Int8WeightPerTensorFloatMSE,
                            Uint8ActPerTensorFloat, Uint8ActPerTensorFloatMSE)

from ..errors import ConfigError, unknown_name_fix

QUANTIZERS: tuple[str, ...] = ("learned", "maxabs")
DEFAULT_QUANTIZER = "learned"

_WEIGHTS = {("maxabs", False): Int8WeightPerTensorFloat,
            ("maxabs", True): Int8WeightPerChannelFloat,
            ("learned", False): Int8WeightPerTensorFloatMSE,
            ("learned", True): Int8WeightPerChannelFloatMSE}
_INPUTS = {("maxabs", False): Uint8ActPerTensorFloat,
           ("maxabs", True): Int8ActPerTensorFloat,
           ("learned", False): Uint8ActPerTensorFloatMSE,
           ("learned", True): Int8ActPerTensorFloatMSE}


def check_quantizer(kind: str) -> str:
    """Return ``kind`` if it names a quantizer family, else raise a one-line ConfigError."""
    if kind not in QUANTIZERS:
        raise ConfigError(f"unknown quantizer '{kind}'", field="qat.quantizer",
                          fix=unknown_name_fix(kind, QUANTIZERS, "quantizers"))
    return kind


def weight_quantizer(kind: str, bits: int, per_channel: bool) -> type:
    """Narrow signed symmetric integer weight quantizer; binary (sign * scale) at 1 bit.

    Narrow range keeps 2..16 bits at no more than 2^W - 1 levels. A narrow 1-bit integer would
    only hold 0, so 1 bit is Brevitas' binary quantizer, its scale starting at mean |w| (the
    L2-optimal binary scale) and, for ``learned``, trained from there.
    """
    learned = check_quantizer(kind) == "learned"
    if bits == 1:
        scaling = ScalingImplType.PARAMETER_FROM_STATS if learned else ScalingImplType.STATS
        return _WEIGHTS["maxabs", per_channel].let(
            quant_type=QuantType.BINARY, scaling_impl_type=scaling, scaling_stats_op=StatsOp.AVE,
            restrict_scaling_type=RestrictValueType.LOG_FP if learned else RestrictValueType.FP)
    return _log_domain(_WEIGHTS[kind, per_channel]) if learned else _WEIGHTS[kind, per_channel]


def input_quantizer(kind: str, signed: bool) -> type:
    """Per-tensor activation quantizer with a learned log-domain scale; signed or unsigned."""
    return _log_domain(_INPUTS[check_quantizer(kind), signed])


def _log_domain(quantizer: type) -> type:
    """Learn log2(scale) instead of the scale.

    In the log domain Brevitas would also try negative MSE candidates (a log can be negative);
    the quantizer rejects them with NaN losses, and a NaN loss wins the comparison, so the search
    is kept to positive scales.
    """
    return quantizer.let(restrict_scaling_type=RestrictValueType.LOG_FP, bipolar_search=False)
