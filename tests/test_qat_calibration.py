"""Statistics passes of QAT: BatchNorm recalibration averages exactly over the given batches."""

from __future__ import annotations

import torch
from torch import nn

from wrapper.qat.calibration import recalibrate_batchnorm


def test_batchnorm_recalibration_is_the_plain_average_and_restores_the_net() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.Dropout(0.5))
    net.train()
    batches = [torch.randn(8, 3, 6, 6) + shift for shift in (0.0, 1.0, 2.0)]
    with torch.no_grad():
        features = torch.cat([net[0](images) for images in batches])
    recalibrate_batchnorm(net, batches, torch.device("cpu"))
    norm = net[1]
    per_batch = torch.stack([f.mean((0, 2, 3)) for f in features.split(8)])
    assert torch.allclose(norm.running_mean, per_batch.mean(0), atol=1e-6)
    assert norm.momentum == 0.3 and net.training and norm.training
    net.eval()
    recalibrate_batchnorm(net, batches[:1], torch.device("cpu"))
    assert not net.training and not norm.training
    assert torch.allclose(norm.running_mean, per_batch[0], atol=1e-6)
