"""Bring your own network: a model defined only here goes through the workload, the QAT and a
small explore run, named as ``tests/test_own_model.py:accept_net`` like a user's file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from wrapper.errors import ConfigError
from wrapper.network.layers import extract_layers
from wrapper.network.registry import build_network
from wrapper.qat.models import integer_inputs, integer_weights, quant_layers, quantized_model

MODEL = "tests/test_own_model.py:accept_net"


class AcceptNet(nn.Module):
    """A grouped 3x3 (groups=4) in a residual block with a strided 1x1 shortcut, a dilation-2
    3x3, a 1x7 and a 7x1 kernel, a channel concatenation and a squeeze-and-excitation gate of
    two Linear layers."""

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.grouped = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, groups=4, bias=False)
        self.grouped_bn = nn.BatchNorm2d(2 * width)
        self.shortcut = nn.Conv2d(width, 2 * width, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(2 * width)
        self.dilated = nn.Conv2d(2 * width, width, 3, padding=2, dilation=2)
        self.wide = nn.Conv2d(2 * width, width, (1, 7), padding=(0, 3))
        self.tall = nn.Conv2d(width, width, (7, 1), padding=(3, 0))
        self.squeeze = nn.Linear(2 * width, width // 2)
        self.excite = nn.Linear(width // 2, 2 * width)
        self.fc = nn.Linear(2 * width, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.stem_bn(self.stem(x)))
        x = self.relu(self.grouped_bn(self.grouped(x)) + self.shortcut_bn(self.shortcut(x)))
        y = torch.cat([self.relu(self.dilated(x)),
                       self.relu(self.tall(self.relu(self.wide(x))))], dim=1)
        gate = torch.sigmoid(self.excite(self.relu(self.squeeze(y.mean((2, 3))))))
        y = y * gate[:, :, None, None]
        return self.fc(y.mean((2, 3)))


def accept_net(num_classes: int = 10, width: int = 16) -> AcceptNet:
    return AcceptNet(num_classes, width)


def _hook_count(model: nn.Module, resolution: int) -> list[tuple[str, int]]:
    """(module name, MACs) of every Conv2d/Linear call, counted with this test's own hooks."""
    names = {module: name for name, module in model.named_modules()}
    calls: list[tuple[str, int]] = []

    def hook(module, args, out):
        if isinstance(module, nn.Conv2d):
            macs = out[0].numel() * module.weight[0].numel()
        else:
            macs = out[0].numel() * module.in_features
        calls.append((names[module], macs))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, resolution, resolution))
    for handle in handles:
        handle.remove()
    return calls


def test_workload_of_a_users_file_matches_its_own_hook_count(tmp_path, repo_root):
    out = tmp_path / "wl"
    run = subprocess.run([sys.executable, "-m", "wrapper.commands", "workload", MODEL, "--resolution", "32",
                          "--classes", "10", "--model-arg", "width=16", "-o", str(out)],
                         cwd=repo_root, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader((out / "layers.csv").open()))
    expected = _hook_count(accept_net(), 32)
    assert [(r["name"], int(r["macs"])) for r in rows] == expected
    assert len(rows) == 9 and len(list(out.glob("L*.yaml"))) == 9
    kinds = {r["name"]: (r["kind"], r["shape"], r["groups"]) for r in rows}
    assert kinds["grouped"] == ("grouped", "Grouped-CNN-Layer", "4")
    assert kinds["squeeze"][0] == kinds["excite"][0] == "linear"
    dilated = next(r for r in rows if r["name"] == "dilated")
    assert (dilated["Wdilation"], dilated["Hdilation"]) == ("2", "2")
    wide = next(r for r in rows if r["name"] == "wide")
    assert (wide["R"], wide["S"]) == ("7", "1")   # R is the kernel width


def test_qat_quantizes_every_layer_in_workload_order_at_its_own_bits(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    layers = extract_layers(build_network(MODEL), 32)
    bits = [(2 + i % 3, 1 + i % 4) for i in range(len(layers))]
    net = quantized_model(MODEL, bits, resolution=32, quantizer="maxabs")
    quant = quant_layers(net)
    names = {module: name for name, module in net.named_modules()}
    # one list: workload order, genome order and the QAT's layers are the same
    assert [names[layer] for layer in quant] == [layer.name for layer in layers]
    assert [(int(l.input_quant.bit_width()), int(l.weight_quant.bit_width())) for l in quant] \
        == bits
    images = torch.randn(4, 3, 32, 32)
    for (act, weight), codes, inputs in zip(bits, integer_weights(net),
                                            integer_inputs(net, images)):
        assert codes.unique().numel() <= 2 ** weight
        assert inputs.unique().numel() <= 2 ** act
    # BatchNorm, the gate and the concatenation stay float modules
    assert isinstance(net.grouped_bn, nn.BatchNorm2d) and type(net.relu) is nn.ReLU


@pytest.mark.parametrize("name, field, text", [
    ("tests/nowhere.py:net", "model.name", "does not exist"),
    ("tests/test_own_model.py:missing", "model.name", "no attribute"),
    ("tests/test_own_model.py:MODEL", "model.name", "not a callable"),
    ("tests.test_own_model:_hook_count", "model.kwargs", "does not accept"),
    ("no_such_package.models:net", "model.name", "not found"),
])
def test_bad_model_names_are_one_config_error(repo_root, monkeypatch, name, field, text):
    monkeypatch.chdir(repo_root)
    with pytest.raises(ConfigError, match=text) as info:
        build_network(name)
    assert info.value.field == field and info.value.fix


def test_a_callable_that_returns_no_module_and_a_state_dict_that_does_not_fit(
        repo_root, monkeypatch, tmp_path):
    monkeypatch.chdir(repo_root)
    with pytest.raises(ConfigError, match="not a torch.nn.Module"):
        build_network("builtins:dict")
    good = tmp_path / "good.pt"
    torch.save(accept_net().state_dict(), good)
    loaded = build_network(MODEL, state_dict=str(good))
    assert torch.equal(loaded.stem.weight, torch.load(good)["stem.weight"])
    with pytest.raises(ConfigError, match="does not fit") as info:
        build_network(MODEL, {"width": 8}, state_dict=str(good))
    assert info.value.field == "model.state_dict"


def test_registry_resnets_have_the_published_sizes():
    for name, count, gmacs in (("resnet18", 21, 1.814), ("resnet50", 54, 4.09)):
        layers = extract_layers(build_network(name), 224)
        assert len(layers) == count
        assert sum(layer.macs for layer in layers) / 1e9 == pytest.approx(gmacs, rel=5e-3)
    assert len(extract_layers(build_network("resnet20"), 32)) == 22
    assert len(extract_layers(build_network("mobilenet_v2"), 224)) == 53


SMALL = ["search.parents=4", "search.offspring=4", "search.generations=1", "search.bits=[4,8]",
         "qat.float_epochs=2", "final.points=1", "final.seeds=1",
         "mapper.max_evaluations=100", "data.resolution=16", f"model.name={MODEL}"]


def test_explore_runs_a_users_model_end_to_end(tmp_path, repo_root):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "wrapper.explore", "-o", str(out)]
    for item in SMALL:
        args += ["--set", item]
    run = subprocess.run(args, cwd=repo_root, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["points"] and all(len(p["bits"]) == 9 for p in pareto["points"])
    assert len(list((out / "mappings" / "P01").glob("L*.map.yaml"))) == 9


def _one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    return lines[0]


def seven_class_net() -> nn.Module:
    """A user's net that fixes its own class count (no num_classes keyword): 7 outputs."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 7))


@pytest.mark.parametrize("command", [
    ["-m", "wrapper.explore", "--set", "model.name=tests/test_own_model.py:seven_class_net",
     "--set", "data.resolution=16"],
    ["-m", "wrapper.commands", "qat", "train", "--model", "tests/test_own_model.py:seven_class_net",
     "--resolution", "16", "--epochs", "1"],
])
def test_a_net_with_fewer_outputs_than_the_datas_classes_is_one_line(
        tmp_path, repo_root, command):
    """Digits has 10 classes; a 7-logit net is refused before any training or mapping."""
    out = ["-o", str(tmp_path / "run")] if "wrapper.explore" in command else \
        ["--out", str(tmp_path / "float.pt")]
    run = subprocess.run([sys.executable, *command, *out], cwd=repo_root, capture_output=True,
                         text=True, timeout=600)
    line = _one_error_line(run)
    assert "7 logits" in line and "10 classes" in line and "model.kwargs" in line
    assert not (tmp_path / "float.pt").exists()


class FunctionalNet(nn.Module):
    """A convolution written inline with torch.nn.functional: compute outside any Conv2d."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3) * 0.1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(nn.functional.conv2d(x, self.weight, padding=1)).mean((2, 3)))


def functional_net(num_classes: int = 10) -> FunctionalNet:
    return FunctionalNet(num_classes)


def test_a_model_error_names_where_the_model_was_set(tmp_path, repo_root):
    """The same unsupported compute is reported against the experiment file that named the
    net (explore), the command line (workload), and the checkpoint that describes it (qat)."""
    name = "tests/test_own_model.py:functional_net"
    config = tmp_path / "experiment.yaml"
    config.write_text(f"model:\n  name: {name}\ndata:\n  resolution: 16\n")
    explore = subprocess.run([sys.executable, "-m", "wrapper.explore", "--config", str(config),
                              "-o", str(tmp_path / "run")], cwd=repo_root, capture_output=True,
                             text=True, timeout=600)
    line = _one_error_line(explore)
    assert line.startswith(f"error: {config}: model.name: conv2d in the model's own forward()")
    assert "model.skip_unsupported" in line
    workload = subprocess.run([sys.executable, "-m", "wrapper.commands", "workload", name,
                               "--resolution", "16", "-o", str(tmp_path / "wl")], cwd=repo_root,
                              capture_output=True, text=True, timeout=600)
    assert _one_error_line(workload).startswith("error: command line: model.name: conv2d in ")

    from wrapper.qat.settings import ModelSpec
    from wrapper.qat.train import Checkpoint, save_checkpoint
    checkpoint = tmp_path / "moved.pt"
    save_checkpoint(Checkpoint(ModelSpec(str(tmp_path / "gone.py:net"), num_classes=10), {}),
                    checkpoint)
    evaluate = subprocess.run([sys.executable, "-m", "wrapper.commands", "qat", "eval",
                               "--checkpoint", str(checkpoint), "--resolution", "16"],
                              cwd=repo_root, capture_output=True, text=True, timeout=600)
    line = _one_error_line(evaluate)
    assert line.startswith(f"error: {checkpoint}: model.name: model file ") and "gone.py" in line


class ReusedConvNet(nn.Module):
    """One 3x3 convolution applied twice (shared weights): two layers, one module."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.norm(self.shared(torch.relu(self.shared(x)))))
        return self.fc(x.mean((2, 3)))


def reused_conv_net(num_classes: int = 10) -> ReusedConvNet:
    return ReusedConvNet(num_classes)


def test_explore_gives_the_calls_of_one_module_one_pair(tmp_path, repo_root):
    """QAT quantizes a module once: a net that calls one convolution twice is searched with
    both calls at one (A, W), so no candidate is a configuration QAT cannot build."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "wrapper.explore", "-o", str(out)]
    for item in [*SMALL[:-1], "search.bits=[2,4,8]", "search.generations=2",
                 "model.name=tests/test_own_model.py:reused_conv_net", "final.evaluate=false"]:
        args += ["--set", item]
    run = subprocess.run(args, cwd=repo_root, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = list(csv.DictReader((out / "candidates.csv").open()))
    assert len({(r["L02_A"], r["L02_W"]) for r in rows}) > 1  # the shared pair is searched
    assert all((r["L02_A"], r["L02_W"]) == (r["L03_A"], r["L03_W"]) for r in rows)
    assert not any(r["accuracy_source"].endswith("failed") for r in rows)
