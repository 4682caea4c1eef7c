"""Workload extraction: traced MobileNet layers against published figures, the authors' layer
tables and the golden Timeloop problems; problem files, the layers table and the CLI."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import GOLDEN_DW_RECORDS, GOLDEN_RECORDS
from torch import nn

from wrapper.errors import ConfigError, PrecisionError, SpecError
from wrapper.network.layers import (
    Layer,
    UnsupportedLayerWarning,
    extract_layers,
    layer_to_problem,
    write_workload,
)
from wrapper.network.mobilenets import mobilenet_v1, mobilenet_v2
from wrapper.spec.precision import Precision
from wrapper.spec.problem import (
    CNN_LAYER_SHAPE,
    DEPTHWISE_SHAPE,
    GROUPED_SHAPE,
    load_problem,
    problem_from_dict,
)

# Golden layer tables: V1 with 100 classes (FC row 1024->100), V2 with 1000.
NETS = {"mobilenetv1.yaml": (mobilenet_v1, 100), "mobilenetv2.yaml": (mobilenet_v2, 1000)}


@pytest.fixture(scope="module")
def traced():
    """Layers of both nets at 224, per golden table file (built and traced once)."""
    return {file: extract_layers(builder(num_classes=classes), 224)
            for file, (builder, classes) in NETS.items()}


@pytest.fixture(scope="module")
def imagenet_layers():
    return {"v1": extract_layers(mobilenet_v1(), 224), "v2": extract_layers(mobilenet_v2(), 224)}


def within(value: float, reference: float, rel: float = 0.01) -> bool:
    return abs(value - reference) <= rel * reference


def test_mobilenet_v1_matches_published_size(imagenet_layers):
    layers = imagenet_layers["v1"]
    assert len(layers) == 28
    macs = sum(layer.macs for layer in layers)
    weights = sum(layer.weight_count for layer in layers)
    params = sum(p.numel() for p in mobilenet_v1().parameters())
    assert within(macs, 569e6), macs
    assert within(weights, 4.2e6) and within(params, 4.2e6), (weights, params)


def test_mobilenet_v2_matches_published_size(imagenet_layers):
    """300M MACs, 3.47M weights (reference checkpoint table; the paper rounds down to 3.4M)."""
    layers = imagenet_layers["v2"]
    assert len(layers) == 53
    macs = sum(layer.macs for layer in layers)
    weights = sum(layer.weight_count for layer in layers)
    assert within(macs, 300e6), macs
    assert within(weights, 3.47e6) and f"{weights / 1e6:.2f}".startswith("3.4"), weights


@pytest.mark.parametrize("net, depthwise", [("v1", 13), ("v2", 17)])
def test_depthwise_layers_count_one_input_channel_per_output(imagenet_layers, net, depthwise):
    dw = [layer for layer in imagenet_layers[net] if layer.is_depthwise]
    assert len(dw) == depthwise
    for layer in dw:
        assert layer.groups == layer.C == layer.M
        assert layer.macs == layer.C * layer.P * layer.Q * layer.R * layer.S
        assert layer.weight_count == layer.C * layer.R * layer.S
        assert layer_to_problem(layer).macs == layer.macs


@pytest.mark.parametrize("table", sorted(NETS))
def test_shapes_equal_the_authors_layer_tables(shared_dir, traced, table):
    rows = yaml.safe_load((shared_dir / "golden" / "layers" / table).read_text())["layers"]
    layers = traced[table]
    assert len(layers) == len(rows)
    for number, (row, layer) in enumerate(zip(rows, layers), start=1):
        ours = [layer.W, layer.H, layer.C, layer.N, layer.M, layer.S, layer.R, layer.Wpad,
                layer.Hpad, layer.Wstride, layer.Hstride]
        # the authors wrote depthwise layers as dense convs with C = M: same numbers, our kind
        assert ours == row, f"{table} row {number}: {ours} != {row}"
        assert layer.is_depthwise == (layer.R == 3 and row[2] == row[4])


def _golden_case(record: dict, traced: dict) -> tuple[Layer, Precision]:
    layer = traced[record["model_file"]][record["layer_index_1based"] - 1]
    return layer, Precision.from_bitwidths(record["bitwidths"])


def _distinct(records: list[dict]) -> list[dict]:
    """One record per (layer, bit setting): the problem is the same for every arch and mapping."""
    seen: dict[tuple[str, str], dict] = {}
    for record in records:
        seen.setdefault((record["layer"], record["bitwidths_name"]), record)
    return list(seen.values())


@pytest.mark.parametrize("record", _distinct(GOLDEN_RECORDS + GOLDEN_DW_RECORDS),
                         ids=lambda r: f"{r['layer']}-{r['bitwidths_name']}")
def test_emitted_problem_equals_golden_problem(shared_dir, traced, record):
    layer, precision = _golden_case(record, traced)
    ours = layer_to_problem(layer, precision)
    golden = problem_from_dict(yaml.safe_load(record["problem_yaml"]), record["case_id"])
    if layer.is_depthwise and golden.shape != DEPTHWISE_SHAPE:
        # the paper's dense C = M record: ours is the depthwise shape with the same C, P, Q, R, S
        assert ours.shape == DEPTHWISE_SHAPE and golden.shape == CNN_LAYER_SHAPE
        assert {d: golden.bounds[d] for d in DEPTHWISE_SHAPE.dimensions} == dict(ours.bounds)
        assert golden.macs == ours.macs * layer.C
        assert (golden.coefficients, golden.precision) == (ours.coefficients, ours.precision)
    else:
        assert ours == golden


def test_written_problems_round_trip_and_table_lists_layers(tmp_path, imagenet_layers):
    layers = imagenet_layers["v1"]
    bits = [Precision(8, 4, 8)] * (len(layers) - 1) + [Precision()]
    written = write_workload(layers, tmp_path, bits)
    assert [p.name for p in written.problems] == [f"L{i:02d}.yaml" for i in range(1, 29)]
    for path, layer, precision in zip(written.problems, layers, bits):
        assert load_problem(path) == layer_to_problem(layer, precision)
    assert "bitwidths" not in written.problems[-1].read_text()
    with written.table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == [layer.name for layer in layers]
    assert sum(int(r["macs"]) for r in rows) == sum(layer.macs for layer in layers)
    assert rows[1]["kind"] == "depthwise" and rows[1]["params"] == "288"
    assert rows[0]["bits"] == "i8w4o8" and rows[-1]["bits"] == "native"


def test_wrong_number_of_bit_settings_is_rejected(tmp_path, imagenet_layers):
    with pytest.raises(PrecisionError, match="3 bit-width settings for 28 layers"):
        write_workload(imagenet_layers["v1"], tmp_path, [Precision(8, 8, 8)] * 3)


@pytest.mark.parametrize("label, expected", [("i8w4o8", Precision(8, 4, 8)),
                                             ("I2W8O16", Precision(2, 8, 16)),
                                             ("i-w4o-", Precision(None, 4, None)),
                                             ("native", Precision())])
def test_parse_precision_labels(label, expected):
    assert Precision.from_label(label) == expected


@pytest.mark.parametrize("label", ["8bit", "i8w4", "i0w4o8"])
def test_bad_precision_labels_are_rejected(label):
    with pytest.raises(PrecisionError):
        Precision.from_label(label)


class TinyNet(nn.Module):
    """A non-square input, a dilated 'same'-padded depthwise conv and a Linear on a 3-D tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2))
        self.dilated = nn.Conv2d(8, 8, 3, padding="same", dilation=2, groups=8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dilated(self.conv(x))          # (1, 8, H, W/2)
        return self.head(y.flatten(2).transpose(1, 2))   # tokens: (1, H*W/2, 8)


def test_traced_dims_follow_timeloop_axes():
    model = TinyNet().train()
    conv, dilated, head = extract_layers(model, (6, 16))
    assert model.training  # the caller's mode is restored after tracing
    assert (conv.W, conv.H, conv.P, conv.Q) == (16, 6, 8, 6)      # P, R, Wstride: width axis
    assert (conv.R, conv.S, conv.Wstride, conv.Hstride) == (5, 3, 2, 1)
    assert (conv.Wpad, conv.Hpad) == (2, 1)
    assert dilated.is_depthwise and (dilated.Wdilation, dilated.Hdilation) == (2, 2)
    assert (dilated.Wpad, dilated.Hpad, dilated.P, dilated.Q) == (2, 2, 8, 6)
    assert dilated.macs == 8 * 8 * 6 * 9
    assert (head.kind, head.N, head.C, head.M, head.P, head.Q) == ("linear", 48, 8, 4, 1, 1)


def test_grouped_convolution_gets_the_grouped_shape():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, groups=4, dilation=2, stride=2))
    (layer,) = extract_layers(model, 12, in_channels=8)
    assert layer.kind == "grouped" and layer.groups == 4
    problem = layer_to_problem(layer)
    assert problem.shape is GROUPED_SHAPE
    assert dict(problem.bounds) == {"G": 4, "C": 2, "M": 4, "R": 3, "S": 3, "N": 1, "P": 4,
                                    "Q": 4}
    assert problem.coefficients["Wstride"] == 2 and problem.coefficients["Hdilation"] == 2
    assert problem.macs == layer.macs == 16 * 2 * 9 * 16


def test_module_used_twice_is_two_layers_and_unused_module_is_no_layer():
    shared = nn.Conv2d(4, 4, 1)
    layers = extract_layers(nn.Sequential(shared, nn.ReLU(), shared), 4, in_channels=4)
    assert [layer.name for layer in layers] == ["0", "0#2"]

    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.spare = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.used(x)

    assert [layer.name for layer in extract_layers(Unused(), 4)] == ["used"]


class WithUnsupported(nn.Module):
    """A Conv2d, a Conv1d over its rows and a functional matmul: two things no problem here
    expresses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.rows = nn.Conv1d(4, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)                                  # (1, 4, 4, 4)
        rows = self.rows(y.flatten(2))                     # (1, 4, 16)
        return rows @ rows.transpose(1, 2)                 # (1, 4, 4), contracted over 16


def test_unsupported_compute_is_an_error_or_a_warning_with_its_mac_share():
    with pytest.raises(SpecError, match="Conv1d in module 'rows'") as info:
        extract_layers(WithUnsupported(), 4)
    assert "skip_unsupported" in info.value.fix and "1 more" in str(info.value)
    with pytest.warns(UnsupportedLayerWarning) as caught:
        (conv,) = extract_layers(WithUnsupported(), 4, skip_unsupported=True)
    left_out = 4 * 16 * 4 * 3 + 4 * 4 * 16           # Conv1d + matmul, per image
    total = left_out + conv.macs
    message = str(caught[0].message)
    assert f"{left_out:,} of {total:,} MACs" in message and "module 'rows' (Conv1d)" in message
    assert "the model's own forward() (matmul)" in message or \
        "the model's own forward() (__matmul__)" in message


def test_tracing_failure_and_bad_resolution_are_config_errors():
    with pytest.raises(ConfigError, match="tracing the model failed"):
        extract_layers(mobilenet_v1(num_classes=10), 32, in_channels=1)
    with pytest.raises(ConfigError, match="resolution"):
        extract_layers(mobilenet_v1(num_classes=10), 0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wrapper.commands", "workload", *args], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)


def test_cli_writes_one_problem_per_layer_and_a_table(tmp_path):
    out = tmp_path / "v2"
    result = run_cli("mobilenet_v2", "--resolution", "224", "--bits", "i8w8o8", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "53 layers" in result.stdout
    problems = sorted(out.glob("L*.yaml"))
    assert len(problems) == 53
    assert load_problem(problems[1]).shape == DEPTHWISE_SHAPE
    assert load_problem(problems[-1]).precision == Precision(8, 8, 8)
    assert len((out / "layers.csv").read_text().splitlines()) == 54


@pytest.mark.parametrize("args, text", [(["mobilenet_v3"], "did you mean 'mobilenet_v"),
                                        (["mobilenet_v1", "--bits", "w8"], "--bits")])
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, args, text):
    result = run_cli(*args, "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert text in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
