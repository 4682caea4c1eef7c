"""Statistics passes without gradients: activation scales before QAT, BatchNorm after it.

Both take the image batches to run (the trainer picks how many) and leave the weights alone.
"""

from __future__ import annotations

from typing import Iterable

import torch
from brevitas.graph.calibrate import calibration_mode
from torch import Tensor, nn


def _batchnorms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def calibrate_activations(net: nn.Module, batches: Iterable[Tensor], device: torch.device) -> None:
    """Set the activation quantizers' scales from float statistics before QAT.

    Without this, Brevitas collects statistics during the first 300 training steps, longer than
    a short QAT run, and the learned scales would never take over. BatchNorm runs in training
    mode, as in the QAT steps that follow, so the scales fit the activations training will see
    even when the checkpoint's running statistics are poor (an under-trained float model gave
    scales 10^6 too small and exploding gradients); its running statistics are restored after.
    """
    net.to(device).train()
    norms = _batchnorms(net)
    saved = [{k: v.clone() for k, v in norm.state_dict().items()} for norm in norms]
    with torch.no_grad(), calibration_mode(net):
        for images in batches:
            net(images.to(device))
    for norm, state in zip(norms, saved):
        norm.load_state_dict(state)


def recalibrate_batchnorm(net: nn.Module, batches: Iterable[Tensor], device: torch.device) -> None:
    """Replace BatchNorm running statistics by their plain average over ``batches``.

    QAT moves the weights and scales every step, so the exponential running averages lag behind
    the network being evaluated; at 2 bits, where one step flips many weights between levels,
    that lag alone cost 15 points of top-1 after one epoch. The rest of the net stays in eval
    mode (quantizers frozen, dropout off) and the momentum is restored afterwards.
    """
    was_training = net.training
    net.to(device).eval()
    norms = _batchnorms(net)
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
        norm.train()
    try:
        with torch.no_grad():
            for images in batches:
                net(images.to(device))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        net.train(was_training)
