"""Experiment configuration: YAML file + ``--set section.key=value`` overrides, validated up front.

Every section is a frozen settings dataclass whose defaults form the default experiment (digits
data, a small MobileNetV1, the Eyeriss-like template, the built-in engine, a budget that finishes
in a few minutes on 2 cores). The ``model``, ``data`` and ``qat`` sections are the QAT package's
own settings types, ``mapper`` is the mapper's and ``search`` the NSGA-II's, so a setting is
declared once (type, range, help) where it is used. Every section is read by the one declarative
reader (`wrapper.spec.settings`); the checks across sections (objectives, folders, files, the
executor) follow in ``validate_config``. All of it happens before any training or mapping starts.

Seeds: ``seed`` drives the search; ``data.seed`` fixes the train/validation/test split;
``qat.seed`` the search's QAT runs (the final evaluation uses qat.seed + 1 ... qat.seed +
final.seeds); ``mapper.seed`` the mapper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from ..backends import ENGINES
from ..errors import ConfigError, unknown_name_fix
from ..qat.settings import FLOAT_EPOCHS, FLOAT_LR, DataSpec, ModelSpec, TrainSettings
from ..spec.arch import load_arch
from ..spec.costmodel import (FORK, TIMELOOP_VERSIONS, EngineSettings, MapperSettings,
                              mapper_settings)
from ..spec.hashing import content_hash
from ..spec.settings import field_rules, read_settings, setting
from ..spec.templates import available_templates, render_arch
from ..spec.yamlio import dump_yaml_file, load_yaml_file
from .executors import EXECUTORS, check_executor_available
from .guided import GuidedSettings

OBJECTIVES: tuple[str, ...] = ("accuracy", "energy", "latency", "edp", "dram_accesses", "memory")
ALGORITHMS: tuple[str, ...] = ("nsga2", "guided")
# 'uniform': the paper's seeds (every layer at b) then random genomes; 'sensitivity': after the
# uniform seeds, low-width genomes whose most quantization-sensitive layers keep the widest width.
SEEDINGS: tuple[str, ...] = ("uniform", "sensitivity")


@dataclass(frozen=True)
class ArchConfig:
    """A template and its parameters, or Timeloop YAML files (then the template is unused)."""

    template: str = setting("eyeriss", choices=available_templates(),
                            help="architecture template")
    params: Mapping[str, Any] = setting(default_factory=dict, help="template parameters")
    files: tuple[str, ...] = setting((), help="Timeloop YAML files instead of a template")


@dataclass(frozen=True)
class EngineConfig:
    """The cost model by name, and its options."""

    name: str = setting("builtin", choices=tuple(ENGINES), help="cost model")
    timeloop_version: str = setting(FORK, choices=TIMELOOP_VERSIONS,
                                    help="accounting of the authors' fork ('fork') or of stock "
                                         "Timeloop v3.0.3 ('v3'), in both engines")
    mac_width_scaling: bool = setting(False, help="without an ERT, scale the MAC energy to the "
                                                  "operand widths, in both engines")
    options: Mapping[str, Any] = setting(default_factory=dict, help="cost model options")

    def cost_model_options(self) -> dict[str, Any]:
        """The keyword arguments of the cost model: ``options`` plus the named settings."""
        settings = EngineSettings(self.timeloop_version, self.mac_width_scaling)
        return {**self.options, **settings.options()}


@dataclass(frozen=True)
class SearchConfig(GuidedSettings):
    """The search algorithm and its settings (docs/search.md; the demo runs 6 generations, the
    paper 25), the objectives (>= 2, any subset of OBJECTIVES) and the Outputs bits of the last
    layer. ``algorithm``: 'nsga2' is the paper's search (one QAT run per child), 'guided' ranks
    a large pool of children by predicted accuracy and exact hardware cost and trains only the
    best (wrapper/explore/guided.py). ``seeding``: 'uniform' is the paper's initial population,
    'sensitivity' adds seeds that keep the layers a one-at-a-time probe found most sensitive
    wide. ``screen_fraction``, ``probe_fraction`` and ``probe_prior`` spend fewer QAT-run
    equivalents per front (docs/search.md, "Fewer QAT runs"); ``warm_start`` is there to try,
    off since it measured worse. The defaults are the combination that reached the best
    hypervolume per QAT run (benchmarks/bench_search.py); experiments/paper.yaml sets the
    paper's."""

    algorithm: str = setting("guided", choices=ALGORITHMS, help="search algorithm")
    seeding: str = setting("sensitivity", choices=SEEDINGS,
                           help="what fills the initial population after the uniform seeds")

    generations: int = setting(6, minimum=0, maximum=100_000,
                                  help="generations after the initial population")
    objectives: tuple[str, ...] = setting(("accuracy", "energy", "memory"), choices=OBJECTIVES,
                                          help="what the search trades off")
    last_outputs_bits: int = setting(8, minimum=1, maximum=16,
                                     help="Outputs bits of the last layer")
    screen_fraction: float = setting(0.25, minimum=0.0, maximum=0.95,
                                     help="share of one QAT epoch a screen trains on; only the "
                                          "candidates the screens place on the front get a full "
                                          "QAT (0: every candidate gets a full QAT)")
    screen_margin: float = setting(0.01, minimum=0.0, maximum=1.0,
                                   help="accuracy by which another screen must beat a candidate "
                                        "(at no more cost) to keep it from a full QAT")
    # Off by default: measured on digits, a warm-started QAT scored 2.8 points below the same
    # configuration fine-tuned from the float checkpoint (median 2.0, 19 pairs), and the search
    # ended lower with it (docs/search.md).
    warm_start: bool = setting(False, help="start each search QAT from the weights of the "
                                           "nearest configuration (in bits) the run trained fully")
    probe_fraction: float = setting(0.125, above=0.0, maximum=1.0,
                                    help="share of the calibration batches and validation split "
                                         "a sensitivity probe uses")
    probe_prior: bool = setting(True, help="guided search: weight each layer's features in the "
                                           "accuracy surrogate by its probe's accuracy drop")


@dataclass(frozen=True)
class QatConfig(TrainSettings):
    """QAT per candidate (the QAT package's `TrainSettings`, with the demo's budget), the float
    start and an optional proxy.

    ``proxy_epochs``/``proxy_generations``: generations < proxy_generations score accuracy with
    the cheaper QAT of proxy_epochs epochs; later generations and the final front use ``epochs``
    (the parents are re-scored at the switch, and results name the source of every accuracy).
    ``threads``: PyTorch threads per QAT job; results depend on it, so it is part of the key.
    """

    progress: bool = setting(False, help="progress bars inside QAT jobs")
    threads: int = setting(1, minimum=1, maximum=256, help="PyTorch threads per QAT job")
    float_checkpoint: str | None = setting(None, help="float start (default: train one)")
    float_epochs: int = setting(FLOAT_EPOCHS, minimum=1, maximum=10_000,
                               help="epochs of the float training")
    float_lr: float = setting(FLOAT_LR, above=0.0, help="learning rate of the float training")
    proxy_epochs: int = setting(1, minimum=1, maximum=10_000,
                               help="epochs of the cheaper proxy QAT")
    proxy_generations: int = setting(0, minimum=0, maximum=100_000,
                                    help="generations scored by the proxy")

    def train_settings(self, epochs: int) -> TrainSettings:
        """The QAT package's settings for one run of ``epochs`` epochs."""
        shared = {f.name: getattr(self, f.name) for f in fields(TrainSettings)}
        return TrainSettings(**{**shared, "epochs": epochs})


@dataclass(frozen=True)
class FinalConfig:
    """The final evaluation (only when accuracy is an objective): chosen front points and the
    uniform configurations (every layer at b, for each b of search.bits) are retrained from the
    float checkpoint with ``seeds`` fresh QAT seeds (never the search's own seed) and scored on
    the validation and test splits. The search kept the luckiest of many noisy validation
    scores; these unbiased means and spreads are what the report and headline use."""

    points: int = setting(3, minimum=0, maximum=10_000,
                         help="front points to evaluate by validation hypervolume contribution, "
                              "besides those dominating a uniform reference")
    seeds: int = setting(3, minimum=1, maximum=1000,
                        help="fresh QAT seeds per evaluated configuration")
    epochs: int | None = setting(None, minimum=1, maximum=10_000,
                                 help="QAT epochs of each retraining (default: qat.epochs)")
    evaluate: bool = setting(True, help="run the final evaluation (false: the search alone, "
                                        "a report without test figures or headline)")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where fan-out jobs run (the seam of wrapper.explore.executors).

    ``workers``: processes of the local pool, or CPUs of the Ray instance started when no
    ``address`` is given. ``address``: an existing Ray cluster (host:port, 'auto', ray://...).
    ``retries``: extra tries of a crashed job before it is recorded as a failure.
    ``qat_gpus``: GPUs (or a fraction) each QAT job reserves on a Ray cluster that has GPUs;
    0 keeps QAT on CPUs.
    """

    kind: str = setting("local", choices=EXECUTORS, help="local or ray")
    workers: int = setting(2, minimum=1, maximum=1024, help="worker processes / CPUs")
    retries: int = setting(1, minimum=0, maximum=100, help="extra tries of a crashed job")
    address: str | None = setting(None, help="Ray cluster address")
    qat_gpus: float = setting(1.0, minimum=0.0, help="GPUs per QAT job on Ray")


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment."""

    name: str = setting("default", help="run name (results/<name>)")
    seed: int = setting(0, minimum=0, help="seed of the search")
    model: ModelSpec = ModelSpec(width_mult=0.25)
    data: DataSpec = DataSpec()
    arch: ArchConfig = ArchConfig()
    engine: EngineConfig = EngineConfig()
    # The mapper's own budget (20,000 evaluations per layer, as `wrapper.map`): smaller budgets
    # were up to 2.3x (300), 1.5x (3,000) and 1.03x (10,000) worse in EDP on some layers of
    # MobileNetV1/V2 (benchmarks/bench_mapper_budget.py), for about 3x less mapper time.
    mapper: MapperSettings = MapperSettings()
    search: SearchConfig = SearchConfig()
    qat: QatConfig = QatConfig()
    final: FinalConfig = FinalConfig()
    executor: ExecutorConfig = ExecutorConfig()
    store: str | None = setting(None, help="store path (default: DIR/store.sqlite)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts) as written to the results folder's config.yaml."""
        return _plain(dataclasses.asdict(self))

    def run_id(self) -> str:
        """Identity of a search run: everything that changes its course, but not how long it
        runs or where it runs, so ``--resume`` may extend the generation count."""
        data = self.to_dict()
        data["search"].pop("generations")
        for key in ("progress", "num_workers"):
            data["qat"].pop(key)
        for key in ("executor", "final", "store"):
            data.pop(key)
        return content_hash(data)[:16]


_SECTIONS = tuple(f.name for f in fields(ExperimentConfig)
                  if dataclasses.is_dataclass(f.default))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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


def _section_base(defaults: ExperimentConfig, key: str, value: Any) -> Any:
    """The defaults a section's values overlay. The default experiment's width multiplier
    belongs to its default model: a model section naming another net starts from plain
    ModelSpec defaults unless it sets width_mult itself."""
    default = getattr(defaults, key)
    if key == "model" and isinstance(value, Mapping) and "width_mult" not in value \
            and value.get("name", default.name) != default.name:
        return ModelSpec()
    return default


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
    defaults = ExperimentConfig()
    scalars = field_rules(ExperimentConfig)
    values: dict[str, Any] = {}
    for key, value in tree.items():
        if key == "mapper":
            values[key] = mapper_settings(value, source, base=defaults.mapper)
        elif key in _SECTIONS:
            default = _section_base(defaults, key, value)
            values[key] = read_settings(type(default), value, key, source, base=default)
        elif key in scalars:
            values[key] = scalars[key].check(value, key, source)
        else:
            raise ConfigError(f"unknown section '{key}'", file=source, field=str(key),
                              fix=unknown_name_fix(str(key), [*_SECTIONS, *scalars],
                                                   "sections"))
    config = dataclasses.replace(defaults, **values)
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
    data = load_yaml_file(path)
    if data is None:
        raise ConfigError("the experiment file is empty", file=str(path),
                          fix="give at least one section, e.g. 'search: {generations: 3}'")
    return config_from_dict(data, str(path), overrides)


def save_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the config used, so a results folder says exactly what produced it."""
    return dump_yaml_file(config.to_dict(), path)


def _check_model(config: ExperimentConfig, source: str) -> None:
    # heavy (torch): the model builders are only loaded when a config is checked
    from ..qat.train import check_model

    try:
        check_model(config.model)
    except ConfigError as exc:
        raise exc.located(source) from None


def _check_search(search: SearchConfig, source: str) -> None:
    if len(set(search.objectives)) != len(search.objectives) or len(search.objectives) < 2:
        raise ConfigError(f"objectives {list(search.objectives)} must be >= 2 distinct names",
                          file=source, field="search.objectives",
                          fix="e.g. [accuracy, energy] or [accuracy, energy, memory]")
    if not search.bits:
        raise ConfigError("the bit set is empty", file=source, field="search.bits",
                          fix="e.g. [2, 3, 4, 5, 6, 7, 8]")


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
                          fix="give a checkpoint written by 'quantmap qat train', or "
                              "leave it empty to train one")
    for path in config.arch.files:
        if not Path(path).is_file():
            raise ConfigError(f"architecture file '{path}' does not exist", file=source,
                              field="arch.files", fix="give existing Timeloop YAML files")
    if config.arch.files:
        load_arch(*config.arch.files)  # its own errors name the file at fault
    else:
        render_arch(config.arch.template, config.arch.params, source=source)


def validate_config(config: ExperimentConfig, source: str = "<config>") -> None:
    """The checks across fields and sections (each field's own type and range were checked by
    the reader); each failure is one ConfigError line."""
    _check_model(config, source)
    _check_search(config.search, source)
    _check_files(config, source)
    if config.executor.address is not None and config.executor.kind != "ray":
        raise ConfigError(f"address {config.executor.address!r} needs the ray executor",
                          file=source, field="executor.address",
                          fix="set executor.kind=ray (--executor ray) with a host:port address")
    check_executor_available(config.executor.kind)
    if config.qat.proxy_generations and not config.qat.proxy_epochs < config.qat.epochs:
        raise ConfigError(f"proxy_epochs = {config.qat.proxy_epochs} must be fewer than"
                          f" epochs = {config.qat.epochs} to be a cheaper proxy", file=source,
                          field="qat.proxy_epochs",
                          fix="e.g. qat.epochs=3 with qat.proxy_epochs=1")
