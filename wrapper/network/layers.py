"""Workloads: the Conv2d / Linear layers of any PyTorch model as Timeloop problems.

A model is traced with a seeded random input; forward hooks record each call's real input and
output shapes, so strides, padding and resolution never have to be re-derived by hand. Every call
of a Conv2d or Linear module is one layer, in execution order (a module called twice is two
layers, the second named ``name#2``). Each becomes a ``Layer`` (Timeloop dims N, M, C, P, Q, R, S
with the full channel counts and ``groups``) and then a ``Problem``:

- dense convolutions and Linear layers (a Linear is a 1x1 convolution with P = Q = 1) use the
  standard CNN-layer shape;
- depthwise convolutions (groups == C == M) use the depthwise shape without M, so their MACs are
  C*P*Q*R*S and their weights C*R*S;
- other grouped convolutions use the grouped shape: G = groups, with C and M per group.

Compute the hardware model cannot express (Conv1d/Conv3d, transposed convolutions, attention,
recurrent cells, a matmul/linear/conv called as a function outside a Conv2d/Linear module) is an
error naming the module, or, when the caller asks to skip it, a warning with the share of the
model's MACs left out. Nothing is dropped silently.

``write_workload`` writes one problem YAML per layer and ``layers.csv`` (the
``quantmap workload`` tool).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError, PrecisionError, SpecError
from ..spec.precision import Precision
from ..spec.problem import (CNN_LAYER_SHAPE, DEPTHWISE_SHAPE, GROUPED_SHAPE, Problem,
                            ProblemShape, dump_problem)
from ..spec.yamlio import write_text_atomic

KINDS = ("conv", "depthwise", "grouped", "linear")
TABLE_NAME = "layers.csv"
SHAPES: dict[str, ProblemShape] = {"conv": CNN_LAYER_SHAPE, "linear": CNN_LAYER_SHAPE,
                                   "depthwise": DEPTHWISE_SHAPE, "grouped": GROUPED_SHAPE}
# The trace input: random, seeded, signed, so a layer's input is negative somewhere unless a
# ReLU-like activation feeds it (the QAT reads the signedness of its input quantizers from it).
_TRACE_SEED = 0
_TRACE_BATCH = 2


class UnsupportedLayerWarning(UserWarning):
    """Compute the hardware model cannot express was left out of the workload on request."""


@dataclass(frozen=True)
class Layer:
    """One quantizable layer in Timeloop's terms.

    P, Q are the output width and height, R, S the kernel width and height, W, H the input width
    and height, Wpad/Hpad the padding on one side. C and M are the full channel counts; a
    grouped layer's problem divides them by ``groups``. For depthwise layers M == C == groups.
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
        if self.kind == "grouped" and (self.groups < 2 or self.C % self.groups
                                       or self.M % self.groups):
            raise SpecError(f"grouped layer needs groups > 1 dividing C={self.C} and M={self.M}, "
                            f"got groups={self.groups}", file="<layer>",
                            field=f"{self.name}.groups", fix="use a divisor of both channel counts")

    @property
    def is_depthwise(self) -> bool:
        return self.kind == "depthwise"

    @property
    def shape(self) -> ProblemShape:
        """The Timeloop problem shape of this kind of layer."""
        return SHAPES[self.kind]

    @property
    def macs(self) -> int:
        """Multiply-accumulates: each output sees C/groups input channels (1 when depthwise)."""
        return self.N * self.M * (self.C // self.groups) * self.P * self.Q * self.R * self.S

    @property
    def weight_count(self) -> int:
        """Weights (without bias): M filters of C/groups x R x S."""
        return self.M * (self.C // self.groups) * self.R * self.S


@dataclass(frozen=True)
class TracedLayer:
    """One layer call found by tracing: the module's name in the model, its Layer, and whether
    its input was negative anywhere (a signed input quantizer is needed then)."""

    module_name: str
    layer: Layer
    signed_input: bool


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
    """A Layer from a Conv2d call: dense, depthwise or grouped by its groups and channels."""
    batch = inp.shape[0] if inp.dim() == 4 else 1
    k_h, k_w = _pair(module.kernel_size)
    s_h, s_w = _pair(module.stride)
    d_h, d_w = _pair(module.dilation)
    p_h, p_w = _conv_padding(module)
    c, m, g = module.in_channels, module.out_channels, module.groups
    kind = "conv" if g == 1 else "depthwise" if g == c == m else "grouped"
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
        raise ConfigError(f"resolution {resolution} must be positive",
                          field="resolution", fix="use e.g. 224 (ImageNet) or 32 (CIFAR-10)")
    return height, width


# Modules whose compute has no Timeloop problem here; their MACs are estimated from the call.
_UNSUPPORTED_MODULES = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                        nn.ConvTranspose3d, nn.MultiheadAttention, nn.RNNBase, nn.RNNCellBase,
                        nn.Bilinear)


def _first_tensor(value: Any) -> torch.Tensor:
    """The first tensor of a module output (attention and RNNs return tuples)."""
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _module_macs(module: nn.Module, args: tuple, output: Any) -> int:
    """MACs of one call of an unsupported module, from its real input and output."""
    out = _first_tensor(output)
    if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return args[0].numel() * module.weight[0].numel()
    if isinstance(module, (nn.Conv1d, nn.Conv3d)):
        return out.numel() * module.weight[0].numel()
    if isinstance(module, nn.MultiheadAttention):
        query, key = args[0], args[1] if len(args) > 1 else args[0]
        embed = module.embed_dim
        queries, keys = query.numel() // embed, key.numel() // key.shape[-1]
        projections = (queries * 2 + keys * 2) * embed * embed
        batch = queries // query.shape[-2] if query.dim() > 2 else 1
        attention = 2 * batch * query.shape[-2] * key.shape[-2] * embed
        return projections + attention
    # recurrent cells and bilinear layers use every weight once per position
    weights = sum(p.numel() for n, p in module.named_parameters() if "weight" in n)
    positions = args[0].numel() // args[0].shape[-1]
    return weights * positions


def _einsum_macs(args: tuple, result: torch.Tensor) -> int:
    """An einsum's MACs: the product of every index's size, times any broadcast (``...``) part."""
    equation = args[0].replace(" ", "")
    operands = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
    inputs, arrow, output = equation.partition("->")
    sizes: dict[str, int] = {}
    for term, tensor in zip(inputs.split(","), operands):
        letters = term.replace("...", "")
        sizes.update(zip(letters, tensor.shape[-len(letters):] if letters else ()))
    if not arrow:
        output = "".join(sorted(l for l in sizes if inputs.count(l) == 1))
    kept = math.prod(sizes[l] for l in output.replace("...", ""))
    return result.numel() // max(1, kept) * math.prod(sizes.values())


def _function_macs(func: Callable, args: tuple, kwargs: dict, out: Any) -> int | None:
    """MACs of a functional compute call, or None when ``func`` is not compute."""
    result = _first_tensor(out)
    if func in (F.conv1d, F.conv2d, F.conv3d):
        return result.numel() * args[1][0].numel()
    if func in (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d):
        return args[0].numel() * args[1][0].numel()
    if func is F.linear:
        return result.numel() * args[1].shape[-1]
    if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.bmm,
                torch.Tensor.mm, torch.Tensor.bmm):
        return result.numel() * args[0].shape[-1]
    if func in (torch.addmm, torch.baddbmm, torch.Tensor.addmm, torch.Tensor.baddbmm):
        return result.numel() * args[1].shape[-1]
    if func is torch.einsum:
        return _einsum_macs(args, result)
    if func is F.scaled_dot_product_attention:
        query, key, value = args[:3]
        scores = query.shape[:-1].numel() * key.shape[-2]
        return scores * query.shape[-1] + scores * value.shape[-1]
    return None


@dataclass
class _Unsupported:
    """Compute found outside any Conv2d/Linear: where, what, how many MACs."""

    where: str
    what: str
    macs: int


class _Tracer(TorchFunctionMode):
    """Records every Conv2d/Linear call and every compute outside one, in execution order.

    Forward hooks on every module keep a stack of the modules running; a compute function called
    while no Conv2d/Linear or unsupported module is running was written inline in a forward()
    and is recorded against the innermost module.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.inside = 0  # Conv2d/Linear/unsupported modules running
        self.calls: list[tuple[str, nn.Module, torch.Tensor, torch.Tensor]] = []
        self.unsupported: list[_Unsupported] = []
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._enter(name)))
            self.handles.append(module.register_forward_hook(self._leave(name), always_call=True))

    def _counted(self, module: nn.Module) -> bool:
        return isinstance(module, (nn.Conv2d, nn.Linear, *_UNSUPPORTED_MODULES))

    def _enter(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            self.stack.append(name)
            self.inside += self._counted(module)
        return hook

    def _leave(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            self.stack.pop()
            self.inside -= self._counted(module)
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                self.calls.append((name, module, args[0], output))
            elif isinstance(module, _UNSUPPORTED_MODULES):
                self.unsupported.append(_Unsupported(name, type(module).__name__,
                                                     _module_macs(module, args, output)))
        return hook

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self.inside:
            macs = _function_macs(func, args, kwargs, out)
            if macs is not None:
                where = self.stack[-1] if self.stack else ""
                self.unsupported.append(_Unsupported(where, getattr(func, "__name__", str(func)),
                                                     macs))
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _layer_names(calls: Sequence[tuple[str, Any, Any, Any]]) -> list[str]:
    """Layer names: the module name, ``name#k`` for the k-th call of a module used again."""
    seen: dict[str, int] = {}
    names = []
    for name, *_ in calls:
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return names


def _place(module_name: str) -> str:
    """Where in the net a compute runs, for messages ("" is the net itself)."""
    return f"module '{module_name}'" if module_name else "the model's own forward()"


def _report_unsupported(found: Sequence[_Unsupported], layers: Sequence[Layer],
                        skip: bool) -> None:
    """Error naming the first unsupported compute, or (``skip``) a warning with its MAC share."""
    if not found:
        return
    if not skip:
        first = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise SpecError(f"{first.what} in {_place(first.where)} is compute the Timeloop problems "
                        f"here cannot express{more}", field="model.name",
                        fix="use Conv2d/Linear modules, or leave such compute out of the "
                            "workload with model.skip_unsupported (--skip-unsupported)")
    left_out = sum(item.macs for item in found) // _TRACE_BATCH  # per image, like the layers
    total = left_out + sum(layer.macs for layer in layers)
    where = ", ".join(dict.fromkeys(f"{_place(item.where)} ({item.what})" for item in found))
    warnings.warn(f"left out of the workload: {left_out:,} of {total:,} MACs "
                  f"({100 * left_out / max(1, total):.2f}%) in {where}",
                  UnsupportedLayerWarning, stacklevel=3)


def trace_model(model: nn.Module, resolution: int | tuple[int, int], in_channels: int = 3, *,
                skip_unsupported: bool = False) -> list[TracedLayer]:
    """Every Conv2d/Linear call of the model on one input, in execution order.

    ``resolution`` is the input size (int, or (height, width)). This order is the layer order of
    the workload, the search genome and the QAT alike. Unsupported compute raises a SpecError,
    or with ``skip_unsupported`` warns (UnsupportedLayerWarning) with its share of the MACs.
    """
    height, width = _input_size(resolution)
    tracer = _Tracer(model)
    was_training = model.training
    images = torch.randn(_TRACE_BATCH, in_channels, height, width,
                         generator=torch.Generator().manual_seed(_TRACE_SEED))
    try:
        model.eval()
        with torch.no_grad(), tracer:
            model(images)
    except RuntimeError as exc:
        message = str(exc).splitlines()[0]
        raise ConfigError(f"tracing the model failed: {message}",
                          field="resolution/in_channels",
                          fix="check the input channels and that the resolution suits the model") \
            from None
    finally:
        tracer.remove()
        model.train(was_training)
    traced = []
    for layer_name, (name, module, inp, out) in zip(_layer_names(tracer.calls), tracer.calls):
        layer = (_conv_layer(layer_name, module, inp, out) if isinstance(module, nn.Conv2d)
                 else _linear_layer(layer_name, module, inp))
        traced.append(TracedLayer(name, _per_image(layer), bool((inp < 0).any())))
    if not traced:
        raise SpecError("the model has no Conv2d or Linear layer", field="model.name",
                        fix="give a CNN built from torch.nn.Conv2d / torch.nn.Linear modules")
    _report_unsupported(tracer.unsupported, [t.layer for t in traced], skip_unsupported)
    return traced


def _per_image(layer: Layer) -> Layer:
    """The layer for one image: the trace runs a small batch (BatchNorm-safe), the workload is
    per inference."""
    return Layer(**{**asdict(layer), "N": layer.N // _TRACE_BATCH})


def extract_layers(model: nn.Module, resolution: int | tuple[int, int], in_channels: int = 3,
                   *, skip_unsupported: bool = False) -> list[Layer]:
    """The model's layers (``trace_model``) as Layers, in execution order."""
    return [traced.layer for traced in trace_model(model, resolution, in_channels,
                                                   skip_unsupported=skip_unsupported)]


# ---------------------------------------------------------------------------------------------
# Problems and files


def layer_to_problem(layer: Layer, precision: Precision = Precision()) -> Problem:
    """The Timeloop problem of a layer: CNN-layer, depthwise (no M) or grouped shape (G groups
    of C/groups to M/groups channels)."""
    shape = layer.shape
    dims = asdict(layer)
    if layer.kind == "grouped":
        dims.update(G=layer.groups, C=layer.C // layer.groups, M=layer.M // layer.groups)
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
    writer.writerow(("index", "file", "name", "kind", "shape", *_TABLE_DIMS, "macs", "params",
                     "bits"))
    for index, (file_name, layer, precision) in enumerate(rows, start=1):
        dims = asdict(layer)
        writer.writerow((index, file_name, layer.name, layer.kind, layer.shape.name,
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
