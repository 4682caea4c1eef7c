"""Experiment configuration: YAML file + ``--set section.key=value`` overrides, validated up front.

Every section is a frozen dataclass whose defaults form the default experiment (digits data, a
small MobileNetV1, the Eyeriss-like template, the built-in engine, a budget that finishes in a few
minutes on 2 cores). Validation happens entirely in ``load_config`` / ``validate_config``: unknown
keys, objectives, models, templates, bit widths outside the range the hardware and QAT accept, and
missing data folders all raise a one-line ConfigError before any training or mapping starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, unknown_name_fix
from ..spec.costmodel import MapperSettings
from ..spec.hashing import content_hash
from ..spec.templates import available_templates
from ..spec.yamlio import dump_yaml_file, load_yaml_file
from .executors import EXECUTORS, check_executor_available
from .nsga2 import SearchSettings

OBJECTIVES: tuple[str, ...] = ("accuracy", "energy", "latency", "edp", "dram_accesses", "memory")
MIN_BITS, MAX_BITS = 1, 16  # QAT accepts 1..16; the arch's word bits are checked in explore


@dataclass(frozen=True)
class ModelConfig:
    """Which net; the number of classes comes from the data set."""

    name: str = "mobilenet_v1"
    width_mult: float = 0.25
    relu6: bool | None = None


@dataclass(frozen=True)
class DataConfig:
    """The data set (``wrapper.qat.data.DataSpec`` fields); ``root`` is needed except for digits."""

    kind: str = "digits"
    root: str | None = None
    resolution: int = 32
    val_fraction: float = 0.2
    max_classes: int | None = None


@dataclass(frozen=True)
class ArchConfig:
    """A template and its parameters, or Timeloop YAML files (then the template is unused)."""

    template: str = "eyeriss"
    params: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineConfig:
    """The cost model by registry name, and its options."""

    name: str = "builtin"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchConfig(SearchSettings):
    """The NSGA-II settings (docs/search.md; the demo runs 8 generations, the paper 25), the
    objectives (>= 2, any subset of OBJECTIVES) and the Outputs bits of the last layer."""

    generations: int = 8
    objectives: tuple[str, ...] = ("accuracy", "energy", "memory")
    last_outputs_bits: int = 8


@dataclass(frozen=True)
class QatConfig:
    """QAT per candidate (fields of ``TrainSettings``), the float start and an optional proxy.

    ``proxy_epochs``/``proxy_generations``: generations < proxy_generations score accuracy with
    the cheaper QAT of proxy_epochs epochs; later generations and the final front use ``epochs``
    (the parents are re-scored at the switch, and results name the source of every accuracy).
    ``threads``: PyTorch threads per QAT job; results depend on it, so it is part of the key.
    """

    epochs: int = 1
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    batch_size: int = 64
    per_channel: bool = False
    calibration_batches: int = 8
    device: str = "cpu"
    threads: int = 1
    float_checkpoint: str | None = None
    float_epochs: int = 8
    float_lr: float = 0.1
    proxy_epochs: int = 1
    proxy_generations: int = 0


@dataclass(frozen=True)
class FinetuneConfig:
    """Retrain chosen Pareto points longer at the end (points = 0 skips it; runs only when
    accuracy is an objective, i.e. when there is a float model to start from)."""

    points: int = 2
    epochs: int = 3


@dataclass(frozen=True)
class ExecutorConfig:
    """Where fan-out jobs run (the seam of wrapper.executors).

    ``workers``: processes of the local pool, or CPUs of the Ray instance started when no
    ``address`` is given. ``address``: an existing Ray cluster (host:port, 'auto', ray://...).
    ``retries``: extra tries of a crashed job before it is recorded as a failure.
    ``qat_gpus``: GPUs (or a fraction) each QAT job reserves on a Ray cluster that has GPUs;
    0 keeps QAT on CPUs.
    """

    kind: str = "local"
    workers: int = 2
    retries: int = 1
    address: str | None = None
    qat_gpus: float = 1.0


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment. ``seed`` drives the search; QAT, data split and mapper derive theirs."""

    name: str = "default"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    arch: ArchConfig = ArchConfig()
    engine: EngineConfig = EngineConfig()
    mapper: MapperSettings = MapperSettings(max_evaluations=300)
    search: SearchConfig = SearchConfig()
    qat: QatConfig = QatConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    executor: ExecutorConfig = ExecutorConfig()
    store: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts) as written to the results folder's config.yaml."""
        return _plain(dataclasses.asdict(self))

    def run_id(self) -> str:
        """Identity of a search run: everything that changes its course, but not how long it
        runs or where it runs, so ``--resume`` may extend the generation count."""
        data = self.to_dict()
        data["search"].pop("generations")
        for key in ("executor", "finetune", "store"):
            data.pop(key)
        return content_hash(data)[:16]


_SECTIONS = {f.name: f.type for f in fields(ExperimentConfig)}
_SECTION_CLASSES: dict[str, type] = {
    "model": ModelConfig, "data": DataConfig, "arch": ArchConfig, "engine": EngineConfig,
    "mapper": MapperSettings, "search": SearchConfig, "qat": QatConfig,
    "finetune": FinetuneConfig, "executor": ExecutorConfig}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, default: Any, where: str, source: str) -> Any:
    """Check a value against the type of its default (ints accepted for floats, lists for
    tuples); None is accepted where the default is None (optional)."""
    if default is None or value is None:
        if value is None and default is not None and not isinstance(default, (tuple, Mapping)):
            raise ConfigError("a value is required", file=source, field=where,
                              fix=f"give a value like {default!r}")
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        value = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
    elif isinstance(default, Mapping):
        value = {} if value is None else value
        ok = isinstance(value, Mapping)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError(f"{value!r} is not a {type(default).__name__}", file=source, field=where,
                          fix=f"give a value like {_plain(default)!r}")
    return value


def _section(cls: type, data: Any, name: str, source: str) -> Any:
    """Build one section dataclass from a map, naming unknown keys with a did-you-mean."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"section '{name}' must be a map", file=source, field=name,
                          fix=f"write '{name}:' followed by indented key: value lines")
    defaults = cls()
    names = [f.name for f in fields(cls)]
    values = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown key '{key}'", file=source, field=f"{name}.{key}",
                              fix=unknown_name_fix(str(key), names, f"keys of '{name}'"))
        values[key] = _coerce(value, getattr(defaults, key), f"{name}.{key}", source)
    return cls(**values)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Apply one ``--set a.b.c=value`` override to nested plain data."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"'{part}' is not a section", file="--set", field=dotted,
                              fix="override leaf keys such as search.generations=3")
        node = child
    node[parts[-1]] = value


def config_from_dict(data: Any, source: str = "<config>",
                     overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Build and validate an ExperimentConfig from plain data plus dotted overrides."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError("the experiment file must be a map of sections", file=source,
                          fix="start with keys such as 'search:' or 'model:'")
    tree = _plain(data)
    for dotted, value in (overrides or {}).items():
        _set_path(tree, dotted, value)
    values: dict[str, Any] = {}
    for key, value in tree.items():
        if key not in _SECTIONS:
            raise ConfigError(f"unknown section '{key}'", file=source, field=key,
                              fix=unknown_name_fix(str(key), list(_SECTIONS), "sections"))
        if key in _SECTION_CLASSES:
            values[key] = _section(_SECTION_CLASSES[key], value, key, source)
        else:
            values[key] = _coerce(value, getattr(ExperimentConfig(), key), key, source)
    config = ExperimentConfig(**values)
    validate_config(config, source)
    return config


def load_config(path: str | Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """The experiment in ``path`` (None = the default experiment) with overrides applied."""
    if path is None:
        return config_from_dict({}, "<default experiment>", overrides)
    if not Path(path).is_file():
        raise ConfigError("experiment file not found", file=str(path), field="--config",
                          fix="give the path of an experiment YAML file")
    return config_from_dict(load_yaml_file(path), str(path), overrides)


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the config used, so a results folder says exactly what produced it."""
    return dump_yaml_file(config.to_dict(), path)


def _check_names(config: ExperimentConfig, source: str) -> None:
    from ..network.mobilenets import MODELS  # heavy (torch): only when a config is checked
    from ..qat.data import DATA_KINDS

    checks = [(config.model.name, MODELS, "model.name", "models"),
              (config.data.kind, DATA_KINDS, "data.kind", "data sets"),
              (config.executor.kind, EXECUTORS, "executor.kind", "executors")]
    if not config.arch.files:
        checks.append((config.arch.template, available_templates(), "arch.template", "templates"))
    for objective in config.search.objectives:
        checks.append((objective, OBJECTIVES, "search.objectives", "objectives"))
    for value, options, where, what in checks:
        if value not in options:
            raise ConfigError(f"unknown {what[:-1] if what.endswith('s') else what} '{value}'",
                              file=source, field=where, fix=unknown_name_fix(value, options, what))


def _check_search(search: SearchConfig, source: str) -> None:
    if len(set(search.objectives)) != len(search.objectives) or len(search.objectives) < 2:
        raise ConfigError(f"objectives {list(search.objectives)} must be >= 2 distinct names",
                          file=source, field="search.objectives",
                          fix="e.g. [accuracy, energy] or [accuracy, energy, memory]")
    if not search.bits:
        raise ConfigError("the bit set is empty", file=source, field="search.bits",
                          fix="e.g. [2, 3, 4, 5, 6, 7, 8]")
    for value in (*search.bits, search.last_outputs_bits):
        if isinstance(value, bool) or not isinstance(value, int) \
                or not MIN_BITS <= value <= MAX_BITS:
            raise ConfigError(f"bit width {value!r} is outside {MIN_BITS}..{MAX_BITS}",
                              file=source, field="search.bits",
                              fix=f"use integers from {MIN_BITS} to {MAX_BITS}")
    for name in ("parents", "offspring"):
        if getattr(search, name) < 2:
            raise ConfigError(f"{name} = {getattr(search, name)} must be >= 2", file=source,
                              field=f"search.{name}", fix="use e.g. 10")
    if search.generations < 0:
        raise ConfigError("generations must be >= 0", file=source, field="search.generations",
                          fix="use e.g. 25")
    for name in ("crossover_prob", "mutation_prob"):
        if not 0.0 <= getattr(search, name) <= 1.0:
            raise ConfigError(f"{name} must be within 0..1", file=source,
                              field=f"search.{name}", fix="use e.g. 0.9")


def _check_files(config: ExperimentConfig, source: str) -> None:
    if config.data.kind != "digits":
        root = config.data.root
        if not root or not Path(root).is_dir():
            raise ConfigError(f"data folder {root!r} does not exist", file=source,
                              field="data.root", fix=f"give the folder of the {config.data.kind} "
                              "data set (make paper DATA=...)")
    if config.qat.float_checkpoint and not Path(config.qat.float_checkpoint).is_file():
        raise ConfigError(f"float checkpoint '{config.qat.float_checkpoint}' does not exist",
                          file=source, field="qat.float_checkpoint",
                          fix="give a checkpoint written by 'python -m wrapper.qat train', or "
                              "leave it empty to train one")
    for path in config.arch.files:
        if not Path(path).is_file():
            raise ConfigError(f"architecture file '{path}' does not exist", file=source,
                              field="arch.files", fix="give existing Timeloop YAML files")


def _check_executor(executor: ExecutorConfig, source: str) -> None:
    if executor.address is not None and (executor.kind != "ray"
                                         or not isinstance(executor.address, str)):
        raise ConfigError(f"address {executor.address!r} needs the ray executor", file=source,
                          field="executor.address",
                          fix="set executor.kind=ray (--executor ray) with a host:port address")
    for where, value in (("executor.retries", executor.retries),
                         ("executor.qat_gpus", executor.qat_gpus)):
        if value < 0:
            raise ConfigError(f"{where} = {value} must be >= 0", file=source, field=where,
                              fix="use e.g. 1")
    check_executor_available(executor.kind)


def validate_config(config: ExperimentConfig, source: str = "<config>") -> None:
    """All checks that need no training or mapping; each failure is one ConfigError line."""
    _check_names(config, source)
    _check_search(config.search, source)
    _check_executor(config.executor, source)
    _check_files(config, source)
    positive = {"qat.epochs": config.qat.epochs, "qat.threads": config.qat.threads,
                "qat.float_epochs": config.qat.float_epochs,
                "executor.workers": config.executor.workers}
    for where, value in positive.items():
        if value < 1:
            raise ConfigError(f"{where} = {value} must be >= 1", file=source, field=where,
                              fix="use a positive value")
    if config.qat.proxy_generations and not 1 <= config.qat.proxy_epochs < config.qat.epochs:
        raise ConfigError(f"proxy_epochs = {config.qat.proxy_epochs} must be >= 1 and fewer than"
                          f" epochs = {config.qat.epochs} to be a cheaper proxy", file=source,
                          field="qat.proxy_epochs",
                          fix="e.g. qat.epochs=3 with qat.proxy_epochs=1")
