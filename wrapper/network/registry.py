"""Which net to build: a registry name, ``package.module:callable`` or ``path/file.py:callable``.

``build_network`` is the one way every command builds the float net it was told to use. A user's
callable gets ``model.kwargs`` (and ``num_classes`` when it takes that keyword) and must return a
float ``torch.nn.Module`` mapping (N, 3, H, W) images to logits. The registry's MobileNets also
take ``width_mult`` and (MobileNetV2) ``relu6``. Every mistake (a module that does not import, a
missing callable, keywords it does not take, something that is not a Module, a state_dict that
does not fit) is one ConfigError naming the ``model.*`` setting and the fix.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..errors import ConfigError, unknown_name_fix
from .mobilenets import mobilenet_v1, mobilenet_v2
from .resnets import resnet18, resnet20, resnet50

REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v1": mobilenet_v1,
    "mobilenet_v2": mobilenet_v2,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "resnet20": resnet20,
}
_FORMS = "a registry name, package.module:callable or path/to/file.py:callable"


def _error(problem: str, field: str, fix: str) -> ConfigError:
    return ConfigError(problem, field=f"model.{field}", fix=fix)


def _import_file(path_text: str) -> ModuleType:
    """Import a Python file by path (relative to the working directory), once per process."""
    path = Path(path_text).resolve()
    if not path.is_file():
        raise _error(f"model file '{path_text}' does not exist", "name",
                     "give an existing .py file, relative to the working directory")
    module_name = f"quantmap_user_model_{abs(hash(str(path)))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise _error(f"importing '{path_text}' failed ({type(exc).__name__}: "
                     f"{str(exc).splitlines()[0] if str(exc) else ''})", "name",
                     "fix the error in the model file") from None
    return module


def _import_module(name: str) -> ModuleType:
    """Import a module importable from the working directory or PYTHONPATH."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise _error(f"module '{name}' not found", "name",
                         "put the package in the working directory or on PYTHONPATH, or give "
                         "path/to/file.py:callable") from None
        raise _error(f"importing '{name}' failed (No module named '{exc.name}')", "name",
                     f"install '{exc.name}' or fix the model's imports") from None
    except Exception as exc:
        raise _error(f"importing '{name}' failed ({type(exc).__name__}: {exc})", "name",
                     "fix the error in the model's module") from None


def resolve_builder(name: str) -> Callable[..., Any]:
    """The callable a model name stands for."""
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" not in name:
        raise _error(f"unknown model '{name}'", "name",
                     unknown_name_fix(name, REGISTRY, "models")
                     + "; or give package.module:callable or path/to/file.py:callable")
    where, _, attribute = name.rpartition(":")
    if not where or not attribute:
        raise _error(f"model '{name}' lacks a module or a callable", "name", f"give {_FORMS}")
    module = _import_file(where) if where.endswith(".py") or "/" in where or os.sep in where \
        else _import_module(where)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise _error(f"'{where}' has no attribute '{attribute}'", "name",
                         f"name a function or class defined in '{where}'")
        target = getattr(target, part)
    if not callable(target):
        raise _error(f"'{name}' is a {type(target).__name__}, not a callable", "name",
                     "name a function or class that returns a torch.nn.Module")
    return target


def _takes(builder: Callable[..., Any], keyword: str) -> bool:
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False
    return keyword in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def _arguments(name: str, builder: Callable[..., Any], kwargs: Mapping[str, Any],
               options: Mapping[str, Any]) -> dict[str, Any]:
    """model.kwargs plus the ModelSpec options the builder takes; an option it does not take is
    an error unless left unset."""
    arguments = dict(kwargs)
    for key, value in options.items():
        if value is None or key in arguments:
            continue
        if _takes(builder, key):
            arguments[key] = value
        elif key != "num_classes":  # a net without the keyword fixes its own classes
            raise _error(f"model '{name}' takes no '{key}'", key,
                         f"drop model.{key}, or pass the net's own keywords in model.kwargs")
    try:
        inspect.signature(builder).bind(**arguments)
    except TypeError as exc:
        raise _error(f"model '{name}' does not accept these keywords ({exc})", "kwargs",
                     "give only keyword arguments the callable takes") from None
    except ValueError:
        pass  # no signature to check (a builtin); the call below reports a mismatch
    return arguments


def _load_state_dict(net: nn.Module, path: str) -> None:
    if not Path(path).is_file():
        raise _error(f"state_dict file '{path}' does not exist", "state_dict",
                     "give a file written by torch.save(model.state_dict(), FILE)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _error(f"state_dict '{path}' does not fit the net ({first})", "state_dict",
                     "use a float state_dict of this very model and keywords") from None


def build_network(name: str, kwargs: Mapping[str, Any] | None = None, *,
                  state_dict: str | None = None, width_mult: float | None = None,
                  num_classes: int | None = None, relu6: bool | None = None) -> nn.Module:
    """The float net ``name`` with its keywords, loaded from ``state_dict`` when given.

    ``width_mult``, ``num_classes`` and ``relu6`` go to builders that take them (None: the
    builder's default); ``num_classes`` is left out for a net without that keyword.
    """
    builder = resolve_builder(name)
    arguments = _arguments(name, builder, kwargs or {},
                           {"width_mult": width_mult, "num_classes": num_classes,
                            "relu6": relu6})
    try:
        net = builder(**arguments)
    except ConfigError:
        raise
    except Exception as exc:
        raise _error(f"building model '{name}' failed ({type(exc).__name__}: {exc})", "kwargs",
                     "check the model's keyword arguments") from None
    if not isinstance(net, nn.Module):
        raise _error(f"'{name}' returned a {type(net).__name__}, not a torch.nn.Module", "name",
                     "name a callable that returns the float network (an nn.Module)")
    if state_dict is not None:
        _load_state_dict(net, state_dict)
    return net


def check_class_count(net: nn.Module, name: str, num_classes: int,
                      resolution: int | tuple[int, int]) -> None:
    """The net returns one logit per class of the data: a net that fixes its own classes (no
    ``num_classes`` keyword) or gets another count in ``model.kwargs`` would otherwise train
    against labels it has no output for, failing deep inside the loss or, worse, not at all."""
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            logits = net(torch.zeros(1, 3, height, width))
    except Exception as exc:
        raise _error(f"model '{name}' fails on a (1, 3, {height}, {width}) image "
                     f"({type(exc).__name__}: {exc})", "name",
                     "give a net that takes (N, 3, H, W) images at the data's resolution") from None
    finally:
        net.train(was_training)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != 1:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise _error(f"model '{name}' returns {shape} for one image, not (1, classes) logits",
                     "name", "return the logits tensor (N, classes) from forward")
    if logits.shape[1] != num_classes:
        raise _error(f"model '{name}' returns {logits.shape[1]} logits but the data has "
                     f"{num_classes} classes", "kwargs",
                     f"build the net with {num_classes} outputs (its class-count keyword in "
                     "model.kwargs, or a num_classes parameter QuantMap fills from the data)")
