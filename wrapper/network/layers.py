"""Workloads: the Conv2d / Linear layers of a PyTorch model as Timeloop problems.

A model is traced with a dummy input; forward hooks record each layer's real input and output
shapes, so strides, padding and resolution never have to be re-derived by hand. Each layer
becomes a ``Layer`` (Timeloop dims N, M, C, P, Q, R, S) and then a ``Problem``:

- dense convolutions and Linear layers (a Linear is a 1x1 convolution with P = Q = 1) use the
  standard CNN-layer shape;
- depthwise convolutions (groups == C == M) use the depthwise shape without M, so their MACs are
  C*P*Q*R*S and their weights C*R*S (the paper's code wrongly made them dense, C times too big);
- other grouped convolutions are rejected with a SpecError: neither shape describes them exactly
  (folding groups into N would share one weight tile across groups), and a silently wrong cost
  is worse than a clear refusal.

``write_workload`` writes one problem YAML per layer and ``layers.csv`` (the
``quantmap workload`` tool).
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from ..errors import ConfigError, PrecisionError, SpecError
from ..spec.precision import Precision
from ..spec.problem import CNN_LAYER_SHAPE, DEPTHWISE_SHAPE, Problem, dump_problem
from ..spec.yamlio import write_text_atomic

KINDS = ("conv", "depthwise", "linear")
TABLE_NAME = "layers.csv"


@dataclass(frozen=True)
class Layer:
    """One quantizable layer in Timeloop's terms.

    P, Q are the output width and height, R, S the kernel width and height, W, H the input width
    and height, Wpad/Hpad the padding on one side. For depthwise layers M == C == groups.
    """

    name: str
    N: int
    M: int
    C: int
    P: int
    Q: int
    R: int
    S: int
    Wstride: int
    Hstride: int
    Wdilation: int
    Hdilation: int
    groups: int
    kind: str
    W: int
    H: int
    Wpad: int
    Hpad: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SpecError(f"unknown layer kind '{self.kind}'", file="<layer>",
                            field=f"{self.name}.kind", fix=f"use one of {', '.join(KINDS)}")
        if self.kind == "depthwise" and not self.groups == self.C == self.M:
            raise SpecError(f"depthwise layer needs groups == C == M, got groups={self.groups}, "
                            f"C={self.C}, M={self.M}", file="<layer>", field=f"{self.name}.groups",
                            fix="use kind 'conv' with groups=1 for a dense layer")

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "depthwise"

    @property
    def macs(self) -> int:
        """Multiply-accumulates: each output sees C/groups input channels (1 when depthwise)."""
        return self.N * self.M * (self.C // self.groups) * self.P * self.Q * self.R * self.S

    @property
    def weight_count(self) -> int:
        """Weights (without bias): M filters of C/groups x R x S."""
        return self.M * (self.C // self.groups) * self.R * self.S


# ---------------------------------------------------------------------------------------------
# Tracing


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's (height, width) pair from an int or a tuple."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _conv_padding(module: nn.Conv2d) -> tuple[int, int]:
    """Padding on one side as (height, width); 'same'/'valid' strings resolved like PyTorch."""
    if module.padding == "valid":
        return 0, 0
    if module.padding == "same":
        dil_h, dil_w = _pair(module.dilation)
        k_h, k_w = _pair(module.kernel_size)
        return dil_h * (k_h - 1) // 2, dil_w * (k_w - 1) // 2
    return _pair(module.padding)  # type: ignore[arg-type]


def _conv_layer(name: str, module: nn.Conv2d, inp: torch.Tensor, out: torch.Tensor) -> Layer:
    """A Layer from a Conv2d call; grouped convs that are not depthwise are refused."""
    batch = inp.shape[0] if inp.dim() == 4 else 1
    k_h, k_w = _pair(module.kernel_size)
    s_h, s_w = _pair(module.stride)
    d_h, d_w = _pair(module.dilation)
    p_h, p_w = _conv_padding(module)
    c, m, g = module.in_channels, module.out_channels, module.groups
    if g == 1:
        kind = "conv"
    elif g == c == m:
        kind = "depthwise"
    else:
        raise SpecError(f"grouped convolution with groups={g}, C={c}, M={m} is neither dense nor "
                        "depthwise; no Timeloop shape here models it exactly", file="<model>",
                        field=name, fix="use groups=1 or a depthwise conv (groups == C == M), or "
                        "split the layer into one dense conv per group")
    return Layer(name=name, N=int(batch), M=m, C=c, P=int(out.shape[-1]), Q=int(out.shape[-2]),
                 R=k_w, S=k_h, Wstride=s_w, Hstride=s_h, Wdilation=d_w, Hdilation=d_h, groups=g,
                 kind=kind, W=int(inp.shape[-1]), H=int(inp.shape[-2]), Wpad=p_w, Hpad=p_h)


def _linear_layer(name: str, module: nn.Linear, inp: torch.Tensor) -> Layer:
    """A Linear as a 1x1 convolution; all leading input dims count as the batch N."""
    batch = inp.numel() // module.in_features
    return Layer(name=name, N=int(batch), M=module.out_features, C=module.in_features, P=1, Q=1,
                 R=1, S=1, Wstride=1, Hstride=1, Wdilation=1, Hdilation=1, groups=1,
                 kind="linear", W=1, H=1, Wpad=0, Hpad=0)


def _input_size(resolution: int | tuple[int, int]) -> tuple[int, int]:
    height, width = _pair(resolution)
    if height < 1 or width < 1:
        raise ConfigError(f"resolution {resolution} must be positive", file="<model>",
                          field="resolution", fix="use e.g. 224 (ImageNet) or 32 (CIFAR-10)")
    return height, width


def extract_layers(model: nn.Module, resolution: int | tuple[int, int],
                   in_channels: int = 3) -> list[Layer]:
    """The model's Conv2d/Linear layers in module order, shapes traced on a dummy input.

    ``resolution`` is the input size (int, or (height, width)). Module order is the order of the
    layer index used by ``nets.LayerFactory`` and the search genome, so every such module must
    run exactly once on the dummy input; anything else would misalign those indices.
    """
    height, width = _input_size(resolution)
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, (nn.Conv2d, nn.Linear))]
    seen: dict[str, list[Layer]] = {name: [] for name, _ in targets}

    def record(name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            inp = args[0]
            layer = (_conv_layer(name, module, inp, output) if isinstance(module, nn.Conv2d)
                     else _linear_layer(name, module, inp))
            seen[name].append(layer)
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in targets]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width))
    except RuntimeError as exc:
        message = str(exc).splitlines()[0]
        raise ConfigError(f"tracing the model failed: {message}", file="<model>",
                          field="resolution/in_channels",
                          fix="check the input channels and that the resolution suits the model") \
            from None
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for name, calls in seen.items():
        if len(calls) != 1:
            raise SpecError(f"layer ran {len(calls)} times on one input (expected once)",
                            file="<model>", field=name,
                            fix="use each Conv2d/Linear module exactly once in forward()")
    return [seen[name][0] for name, _ in targets]


# ---------------------------------------------------------------------------------------------
# Problems and files


def layer_to_problem(layer: Layer, precision: Precision = Precision()) -> Problem:
    """The Timeloop problem of a layer: CNN-layer shape, or the depthwise shape (no M)."""
    shape = DEPTHWISE_SHAPE if layer.is_depthwise else CNN_LAYER_SHAPE
    dims = asdict(layer)
    bounds = {dim: dims[dim] for dim in shape.dimensions}
    coefficients = {name: dims[name] for name, _ in shape.coefficients}
    return Problem(shape, bounds, coefficients, precision)


def _precisions(layers: Sequence[Layer],
                precision: Precision | Sequence[Precision] | None) -> list[Precision]:
    """One Precision per layer from None (native), one for all, or one per layer."""
    if precision is None:
        return [Precision()] * len(layers)
    if isinstance(precision, Precision):
        return [precision] * len(layers)
    if len(precision) == 1:
        return list(precision) * len(layers)
    if len(precision) != len(layers):
        raise PrecisionError(f"{len(precision)} bit-width settings for {len(layers)} layers",
                             file="<workload>", field="bits",
                             fix="give one setting for all layers or exactly one per layer")
    return list(precision)


_TABLE_DIMS = tuple(f.name for f in fields(Layer) if f.name not in ("name", "kind"))


def _table_text(rows: list[tuple[str, Layer, Precision]]) -> str:
    """The layers table: file, name, kind, every dim, MACs, weights and bit widths per layer."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("index", "file", "name", "kind", *_TABLE_DIMS, "macs", "params", "bits"))
    for index, (file_name, layer, precision) in enumerate(rows, start=1):
        dims = asdict(layer)
        writer.writerow((index, file_name, layer.name, layer.kind,
                         *(dims[d] for d in _TABLE_DIMS), layer.macs, layer.weight_count,
                         precision.label()))
    return buffer.getvalue()


@dataclass(frozen=True)
class WorkloadFiles:
    """What ``write_workload`` wrote: problem files in layer order and the layers table."""

    problems: tuple[Path, ...]
    table: Path


def write_workload(layers: Sequence[Layer], out_dir: str | Path,
                   precision: Precision | Sequence[Precision] | None = None) -> WorkloadFiles:
    """Write ``L01.yaml``... (one Timeloop problem per layer, 1-based like the paper's layer
    names) and ``layers.csv`` into ``out_dir``. ``precision``: None (native), one Precision for
    all layers, or one per layer."""
    out = Path(out_dir)
    digits = max(2, len(str(len(layers))))
    rows = []
    paths = []
    for index, (layer, bits) in enumerate(zip(layers, _precisions(layers, precision)), start=1):
        file_name = f"L{index:0{digits}d}.yaml"
        paths.append(dump_problem(layer_to_problem(layer, bits), out / file_name))
        rows.append((file_name, layer, bits))
    table = write_text_atomic(_table_text(rows), out / TABLE_NAME)
    return WorkloadFiles(tuple(paths), table)
