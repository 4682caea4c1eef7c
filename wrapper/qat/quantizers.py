"""The two quantizer families a QAT net can use: ``maxabs`` (the original) and ``learned``.

``maxabs``: the weight scale is recomputed every step from max|w| and never learned; activation
scales are learned, starting from the 99.999th percentile. At 2 bits (levels {-s, 0, +s}) every
weight below max|w| / 2 rounds to 0, which on MobileNets is most of them, and a 2-bit activation
range set by the largest value leaves the bulk of the activations on one or two levels.

``learned``: every scale is a parameter trained with the network (learned step size: Brevitas
rounds with a straight-through estimator, so the loss reaches the scale through the clamp and the
rounding residual). Each scale starts at the clipping threshold that minimises the quantization
MSE of the float tensor (a grid search between max/20 and max; for activations, averaged over the
calibration batches), so a 2-bit layer starts with a useful fraction of non-zero weights and an
8-bit layer starts near max|w| as before. Weight scales are per tensor or per output channel.
"""

from __future__ import annotations

import torch
from brevitas.inject.enum import QuantType, RestrictValueType, ScalingImplType, StatsOp
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from torch import Tensor, nn

from ..errors import ConfigError, unknown_name_fix
from .settings import QUANTIZERS

# Candidate clipping thresholds: max|x| * k / 20 for k = 1..20
_CLIP_GRID = 20
# Threshold search looks at a strided sample of at most this many values per row (a 224 px
# activation tensor has millions; the optimum does not need them all)
_CLIP_SAMPLE = 1 << 18


class MseClipThreshold(nn.Module):
    """Clipping threshold with the least quantization MSE of ``x`` (per row when reduced).

    Brevitas' own MSE statistic runs the whole quantizer once per candidate; on MobileNetV1 that
    made activation calibration about eight times slower than with percentile statistics, more
    than a one-epoch QAT itself. This evaluates the same grid with plain tensor arithmetic.
    The threshold maps to the integer grid as Brevitas' scaling does: scale = threshold /
    2^(b-1) signed (2^(b-1) - 1 narrow), threshold / (2^b - 1) unsigned.
    """

    def __init__(self, bit_width: int, signed: bool, narrow_range: bool,
                 stats_reduce_dim: int | None = None) -> None:
        super().__init__()
        bits = int(bit_width)
        if signed:
            self.low = -(2 ** (bits - 1)) + int(narrow_range)
            self.high = 2 ** (bits - 1) - 1
        else:
            self.low, self.high = 0, 2 ** bits - 1
        self.levels_per_threshold = float(-self.low if signed else self.high)
        self.per_row = stats_reduce_dim is not None

    def forward(self, x: Tensor) -> Tensor:
        rows = x.detach().reshape(x.shape[0], -1) if self.per_row else x.detach().reshape(1, -1)
        rows = rows[:, ::max(1, rows.shape[1] // _CLIP_SAMPLE)]
        largest = rows.abs().amax(1).clamp_min(1e-12)
        best = largest.clone()
        best_error = torch.full_like(largest, float("inf"))
        for step in range(1, _CLIP_GRID + 1):
            threshold = largest * (step / _CLIP_GRID)
            scale = (threshold / self.levels_per_threshold).unsqueeze(1)
            error = ((rows / scale).round().clamp(self.low, self.high) * scale - rows).square()
            error = error.sum(1)
            better = error < best_error
            best = torch.where(better, threshold, best)
            best_error = torch.where(better, error, best_error)
        return best if self.per_row else best[0]


_LEARNED = {"scaling_impl_type": ScalingImplType.PARAMETER_FROM_STATS,
            "scaling_stats_impl": MseClipThreshold,
            # learn log2(scale): steps are relative and a scale can never turn negative
            "restrict_scaling_type": RestrictValueType.LOG_FP}
_WEIGHTS = {False: Int8WeightPerTensorFloat, True: Int8WeightPerChannelFloat}
_INPUTS = {False: Uint8ActPerTensorFloat, True: Int8ActPerTensorFloat}


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
    base = _WEIGHTS[per_channel]
    if bits == 1:
        scaling = ScalingImplType.PARAMETER_FROM_STATS if learned else ScalingImplType.STATS
        return base.let(
            quant_type=QuantType.BINARY, scaling_impl_type=scaling, scaling_stats_op=StatsOp.AVE,
            restrict_scaling_type=RestrictValueType.LOG_FP if learned else RestrictValueType.FP)
    return base.let(**_LEARNED) if learned else base


def input_quantizer(kind: str, signed: bool) -> type:
    """Per-tensor activation quantizer, signed or unsigned, with a learned log-domain scale.

    ``maxabs`` starts the scale at the 99.999th percentile, ``learned`` at the MSE-optimal
    clipping threshold; both average the statistic over the calibration batches.
    """
    base = _INPUTS[signed].let(restrict_scaling_type=RestrictValueType.LOG_FP)
    return base.let(**_LEARNED) if check_quantizer(kind) == "learned" else base
