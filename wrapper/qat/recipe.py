"""The QAT learning rate per bit width: low-bit candidates need larger steps in a short QAT.

At 8 and 4 bits the float weights are already close to a good quantized solution and the base
rate of the search (0.01) is best; a larger one only disturbs them. At 2 bits, many weights must
move across a rounding threshold within one epoch, which the base rate is too small for; 2-bit
activations gain less and lose at the largest rate, because their scales are few and coarse.
The factors below were measured on digits (MobileNetV1 x0.25, 32 px, one QAT epoch from the float
checkpoint, uniform configurations, three seeds each, base lr 0.01 against 0.03 and 0.1).
"""

from __future__ import annotations

from typing import Sequence

# lr factor by the lowest weight width and by the lowest activation width; widths above the
# table use the base rate
_WEIGHT_FACTORS = {1: 10.0, 2: 10.0, 3: 3.0}
_ACTIVATION_FACTORS = {1: 3.0, 2: 3.0, 3: 3.0}


def lr_factor(bits: Sequence[tuple[int, int]]) -> float:
    """Multiplier of the base QAT learning rate for a per-layer (A_i, W_i) configuration.

    A mixed configuration is as hard to fine-tune as its lowest widths, so those decide.
    """
    lowest_act = min(act for act, _ in bits)
    lowest_weight = min(weight for _, weight in bits)
    return max(_WEIGHT_FACTORS.get(lowest_weight, 1.0),
               _ACTIVATION_FACTORS.get(lowest_act, 1.0))
