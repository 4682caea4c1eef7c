"""Quantization-aware training with Brevitas: the accuracy objective of the search.

``models`` builds MobileNets whose layer i carries its own (A_i, W_i) with the quantizers of
``quantizers`` (learned or max|w| scales); ``data`` loads digits, CIFAR-10 or ImageNet folders;
``train`` pre-trains, fine-tunes (learning rate by bit width from ``recipe``, statistics passes
from ``calibration``) and evaluates. The search calls ``evaluate_bit_config``;
``quantmap qat`` exposes the same functions on the command line.
"""

import warnings

# Brevitas announces an optional accelerated kernel on import; QuantMap never uses it, and the
# message would otherwise land on stderr of every CLI call.
warnings.filterwarnings("ignore", message="fast_hadamard_transform package not found")
