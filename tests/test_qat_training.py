"""Real Brevitas QAT on scikit-learn's digits: bit widths are applied, accuracy trades off.

One float MobileNetV1 (width 0.25, 32x32) is trained once per module and every QAT test starts
from it, which keeps the whole file to a few seconds of training per test on one core.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
import torch
from torch.utils.data import Subset

from wrapper.errors import ConfigError
from wrapper.network.registry import build_network
from wrapper.qat.data import DataBundle, DataSpec, load_data
from wrapper.qat.models import (
    integer_inputs,
    integer_weights,
    load_float_weights,
    quant_layers,
    quantized_model,
)
from wrapper.qat.settings import QUANTIZERS
from wrapper.qat.train import (
    Checkpoint,
    ModelSpec,
    TrainResult,
    TrainSettings,
    evaluate_bit_config,
    evaluate_checkpoint,
    finetune,
    load_checkpoint,
    save_checkpoint,
    train_float,
)

FLOAT = TrainSettings(epochs=10, lr=0.1, weight_decay=5e-4, progress=False)
QAT = TrainSettings(epochs=2, lr=0.01, progress=False)
N_V1 = 28


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tests share two cores with other jobs; one thread also makes timings comparable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_data(DataSpec())


@pytest.fixture(scope="module")
def float_run(digits: DataBundle) -> TrainResult:
    return train_float(ModelSpec("mobilenet_v1", 0.25, 10), digits, FLOAT)


@pytest.fixture(scope="module")
def eight_bit_run(float_run: TrainResult, digits: DataBundle) -> TrainResult:
    return finetune(float_run.checkpoint, [(8, 8)] * N_V1, digits, QAT)


def _mixed(n_layers: int) -> list[tuple[int, int]]:
    """Every weight width of the acceptance test, with activation widths out of phase."""
    widths = (2, 3, 4, 8)
    return [(widths[(i + 1) % 4], widths[i % 4]) for i in range(n_layers)]


def _assert_bits_hold(net: torch.nn.Module, bits: list[tuple[int, int]], images: torch.Tensor,
                      per_channel: bool) -> None:
    """Layer i: <= 2^W_i integer weights, <= 2^A_i integer inputs, and the weights the forward
    pass really multiplies take no more distinct values than that either."""
    codes_in = integer_inputs(net, images)
    for index, (layer, weights, inputs, (a, w)) in enumerate(
            zip(quant_layers(net), integer_weights(net), codes_in, bits)):
        assert weights.unique().numel() <= 2 ** w, f"layer {index}: W={w}"
        assert inputs.unique().numel() <= 2 ** a, f"layer {index}: A={a}"
        used = layer.quant_weight().value.detach()
        per_row = used.flatten(1) if per_channel else used.flatten().unsqueeze(0)
        assert max(row.unique().numel() for row in per_row) <= 2 ** w, f"layer {index}"
        assert weights.unique().numel() >= 2, f"layer {index} collapsed to one value"


def test_float_model_reaches_90_percent_on_digits(float_run: TrainResult) -> None:
    assert float_run.top1 >= 0.90


def test_8bit_qat_stays_within_2_points_of_float(float_run: TrainResult,
                                                 eight_bit_run: TrainResult) -> None:
    assert eight_bit_run.top1 >= float_run.top1 - 0.02


def test_2bit_everywhere_is_measurably_worse(float_run: TrainResult, eight_bit_run: TrainResult,
                                             digits: DataBundle) -> None:
    two_bit = finetune(float_run.checkpoint, [(2, 2)] * N_V1, digits, QAT)
    assert two_bit.top1 < eight_bit_run.top1 - 0.10


def test_learned_scales_recover_2bit_weights_that_maxabs_loses(
        float_run: TrainResult, digits: DataBundle) -> None:
    """2-bit weights, 8-bit activations: with max|w| scales most weights round to 0 and the net
    cannot learn in a short QAT; learned scales from MSE clipping keep most of the accuracy."""
    bits = [(8, 2)] * N_V1
    one_epoch = replace(QAT, epochs=1)
    maxabs = finetune(float_run.checkpoint, bits, digits, replace(one_epoch, quantizer="maxabs"))
    learned = finetune(float_run.checkpoint, bits, digits, one_epoch)
    assert learned.top1 >= 0.75 and learned.top1 >= maxabs.top1 + 0.3
    start = quantized_model("mobilenet_v1", bits, width_mult=0.25, num_classes=10)
    load_float_weights(start, float_run.checkpoint.state_dict)
    integer_weights(start)  # the first use sets the scales from the float weights
    trained = learned.checkpoint.state_dict
    moved = [name for name, value in start.state_dict().items()
             if name.endswith("weight_quant.tensor_quant.scaling_impl.value")
             and not torch.allclose(value, trained[name])]
    assert len(moved) == N_V1


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_qat_applies_every_layers_own_bits_and_is_deterministic(
        float_run: TrainResult, digits: DataBundle, quantizer: str) -> None:
    bits = _mixed(N_V1)
    settings = TrainSettings(epochs=1, lr=0.01, quantizer=quantizer, progress=False)
    tuned = finetune(float_run.checkpoint, bits, digits, settings)
    net = quantized_model("mobilenet_v1", bits, quantizer=quantizer, width_mult=0.25,
                          num_classes=10)
    net.load_state_dict(tuned.checkpoint.state_dict)
    images = torch.stack([digits.val[i][0] for i in range(64)])
    _assert_bits_hold(net, bits, images, per_channel=False)
    again = evaluate_bit_config("mobilenet_v1", bits, digits, settings, float_run.checkpoint)
    assert again == tuned.top1


def test_mobilenet_v2_per_channel_qat_round_trips_through_a_checkpoint(
        digits: DataBundle, tmp_path: Path) -> None:
    small = DataBundle(Subset(digits.train, range(192)), Subset(digits.val, range(64)),
                       digits.num_classes, digits.resolution, digits.classes)
    spec = ModelSpec("mobilenet_v2", 0.25, 10)
    start = Checkpoint(spec, build_network("mobilenet_v2", **spec.network_args()).state_dict())
    bits = _mixed(53)
    settings = TrainSettings(epochs=1, lr=0.01, per_channel=True, batch_size=32,
                             calibration_batches=2, progress=False)
    tuned = finetune(start, bits, small, settings, out=tmp_path / "v2.pt")
    saved = load_checkpoint(tmp_path / "v2.pt")
    assert saved.bits == tuple(bits) and saved.per_channel
    net = quantized_model("mobilenet_v2", bits, per_channel=True, **spec.network_args())
    net.load_state_dict(saved.state_dict)
    _assert_bits_hold(net, bits, torch.stack([small.val[i][0] for i in range(16)]),
                      per_channel=True)
    assert evaluate_checkpoint(tmp_path / "v2.pt", small, settings) == tuned.top1


def test_checkpoints_without_a_quantizer_name_were_maxabs(float_run: TrainResult,
                                                         tmp_path: Path) -> None:
    save_checkpoint(float_run.checkpoint, tmp_path / "f.pt")
    payload = torch.load(tmp_path / "f.pt", weights_only=True)
    assert payload.pop("quantizer") == "learned"
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").quantizer == "maxabs"


def test_evaluate_bit_config_refuses_a_checkpoint_of_another_model(
        float_run: TrainResult, digits: DataBundle, tmp_path: Path) -> None:
    save_checkpoint(float_run.checkpoint, tmp_path / "f.pt")
    with pytest.raises(ConfigError, match="is a 'mobilenet_v1', not a 'mobilenet_v2'"):
        evaluate_bit_config("mobilenet_v2", [(8, 8)] * 53, digits, QAT, tmp_path / "f.pt")
