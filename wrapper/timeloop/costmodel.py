"""``TimeloopCostModel``: the real timeloop-model/-mapper behind the same API as the built-in engine.

One call = one job in its own work directory: write the spec files, run the binary with
precomputed ERT/ART (Accelergy once per arch, cached), parse the outputs into ``Stats`` and
``Mapping``. Bit widths that do not fit a word are refused before any binary runs. In stock mode
(a Timeloop that ignores ``bitwidths:``) the storage-model patch set rewrites the spec and the
run's operand counts are converted back to the fork's packed words, energy and cycles.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from ..errors import BackendError, ConfigError
from ..spec.arch import Arch
from ..spec.costmodel import FORK, V3, MapperSettings, check_timeloop_version
from ..spec.mapping import Mapping, check_precision, load_mapping
from ..spec.problem import Problem
from ..spec.stats import Stats
from .discovery import Binaries, find_binaries
from .energy_tables import AccelergyCache, TableFiles, as_energy_table, tables_in
from .outputs import invalid_mapping_reason, output_file, read_stats_text
from .accelergy_inputs import with_mac_width
from .patching import PatchPlan, StockRun, patch_spec, plan_patches, unpack_stats
from .probe import NATIVE, STOCK, probe_build
from .runner import WorkDirs, read_tail, run_job, run_parallel
from .specs import tool_problem, write_mapper_inputs, write_model_inputs
from .stats_text import occupancy

MODES = ("auto", NATIVE, STOCK)
# Sets the mode when the caller gives none: skips the probe, or forces stock rules on the fork.
MODE_ENV = "QUANTMAP_TIMELOOP_MODE"
WARNING = "warning: "
_WARNED: set[str] = set()


def _warn_once(line: str) -> None:
    """Print a warning line on stderr the first time this process meets it (every job of an
    experiment shares one arch, so a per-call warning would repeat thousands of times)."""
    if line not in _WARNED:
        _WARNED.add(line)
        print(line, file=sys.stderr)


def default_cache_dir() -> Path:
    """Where Accelergy tables and probe verdicts are cached (under ``$QUANTMAP_CACHE``, else the
    user cache folder)."""
    root = os.environ.get("QUANTMAP_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root or Path.home() / ".cache") / "quantmap"


class TimeloopCostModel:
    """CostModel over the Timeloop binaries (``evaluate``, ``search``, ``evaluate_many``).

    ``energy_tables`` (an Accelergy output folder or an ``TableFiles`` pair) is used for every
    call that does not pass its own; without either, Accelergy runs once per arch (cached).
    ``notes`` collects what the caller should know about how numbers were obtained.
    ``timeloop_version`` (``fork`` or ``v3``) is the accounting the caller asks for, as for the
    built-in engine; a build whose probed accounting differs is refused before any run, so one
    setting means the same numbers in both engines. An explicit ``mode`` skips the probe: the
    caller then vouches for the build's accounting as well. ``mac_width_scaling`` renders the
    MAC's width as the problem's widest operand (at most the unit's own) in the spec Accelergy
    estimates, when Accelergy runs (an ERT given is used as it is, as by the built-in engine).
    """

    name = "timeloop"
    version = "timeloop-binaries-1"

    def __init__(self, binaries: Binaries | None = None, *, mode: str | None = None,
                 work_root: Path | None = None, keep_work: str = "failed",
                 cache_dir: Path | None = None, timeout_s: float = 300.0,
                 mapper_threads: int = 1, workers: int = 1,
                 energy_tables: TableFiles | str | Path | None = None,
                 timeloop_version: str = FORK, mac_width_scaling: bool = False) -> None:
        mode = mode or os.environ.get(MODE_ENV) or "auto"
        if mode not in MODES:
            raise ConfigError(f"unknown Timeloop mode '{mode}'", field="timeloop.mode",
                              fix=f"use one of {', '.join(MODES)} (option 'mode' or ${MODE_ENV})")
        self.binaries = binaries if binaries is not None else find_binaries()
        self.work_dirs = WorkDirs(work_root or Path(tempfile.gettempdir()) / "quantmap-timeloop",
                                  keep=keep_work)
        self.cache_dir = cache_dir or default_cache_dir()
        self.timeout_s = timeout_s
        self.mapper_threads = mapper_threads
        self.workers = workers
        check_timeloop_version(timeloop_version)
        self.timeloop_version = timeloop_version
        self.mac_width_scaling = mac_width_scaling
        self._mode = None if mode == "auto" else mode
        self._verdict: dict[str, str] | None = None
        self.energy_tables = energy_tables
        self.notes: list[str] = []

    @property
    def mode(self) -> str:
        """``native`` (fork honours bitwidths) or ``stock``; probed once on first use."""
        if self._mode is None:
            self._mode = self.verdict["mode"]
        return self._mode

    @property
    def verdict(self) -> dict[str, str]:
        """The probe's verdict on the build (``mode`` and ``accounting``), probed once."""
        if self._verdict is None:
            self._verdict = probe_build(self.binaries.require("timeloop-model"), self.work_dirs,
                                        cache_dir=self.cache_dir / "probe")
        return self._verdict

    def check_version(self) -> None:
        """Refuse a build whose accounting is not the ``timeloop_version`` asked for (probed
        builds only, see the class docstring)."""
        if self._verdict is None and self._mode is not None:
            return
        found = self.verdict["accounting"]
        if found != self.timeloop_version:
            model = self.binaries.require("timeloop-model")
            builds = "a stock v3.x build" if self.timeloop_version == V3 else "the fork or 4a74d71"
            raise ConfigError(f"{model} counts as Timeloop '{found}', not the "
                              f"'{self.timeloop_version}' asked for", field="--timeloop-version",
                              fix=f"pass --timeloop-version {found} (engine.timeloop_version), "
                                  f"or put {builds} on PATH")

    def _tables(self, arch: Arch, problem: Problem,
                energy_table: TableFiles | str | Path | None) -> TableFiles:
        energy_table = energy_table if energy_table is not None else self.energy_tables
        if isinstance(energy_table, TableFiles):
            return energy_table
        if energy_table is not None:
            return tables_in(energy_table)
        cache = AccelergyCache(self.binaries.require("accelergy"), self.cache_dir / "accelergy",
                               timeout_s=self.timeout_s)
        spec = with_mac_width(arch, problem.precision) if self.mac_width_scaling else arch.spec
        tables = cache.tables_for(spec)
        for note in tables.notes:
            if note.startswith(WARNING):
                _warn_once(note)
            elif note not in self.notes:
                self.notes.append(note)
        return tables

    def _prepare(self, arch: Arch, problem: Problem,
                 mapping: Mapping | None) -> tuple[dict, Problem, PatchPlan | None]:
        """Refuse unfit bit widths, then the spec/problem the binary sees and the patch plan."""
        self.check_version()
        check_precision(arch, problem, mapping, arch.source)
        if self.mode == NATIVE or problem.precision.is_native:
            return dict(arch.spec), tool_problem(problem, True), None
        plan = plan_patches(arch, problem, mapping)
        return patch_spec(arch.spec, plan, arch.source), tool_problem(problem, False), plan

    @staticmethod
    def _result(work_dir: Path, prefix: str, arch: Arch, problem: Problem,
                plan: PatchPlan | None, tables: TableFiles) -> Stats:
        """The run's Stats; for a patched stock run, converted to the fork's numbers."""
        stats, parsed = read_stats_text(work_dir, prefix, read_tail(work_dir / "run.log"))
        if plan is None:
            return stats
        compute_cycles, instances = occupancy(parsed, prefix)
        return unpack_stats(StockRun(stats, compute_cycles, instances), arch, problem,
                            as_energy_table(tables))

    def evaluate(self, arch: Arch, problem: Problem, mapping: Mapping,
                 energy_table: TableFiles | str | Path | None = None) -> Stats:
        """Run timeloop-model on one mapping and parse its stats (BackendError on failure)."""
        model = self.binaries.require("timeloop-model")
        spec, tool_prob, plan = self._prepare(arch, problem, mapping)
        tables = self._tables(arch, problem, energy_table)

        def job(work_dir: Path) -> Stats:
            files = write_model_inputs(work_dir, spec, tool_prob, mapping)
            try:
                run_job([str(model), files[0].name, *tables.paths, *(f.name for f in files[1:])],
                        work_dir, timeout_s=self.timeout_s)
            except BackendError as exc:
                reason = invalid_mapping_reason(exc.log_tail)
                if reason is None:
                    raise
                return Stats.invalid(reason)
            return self._result(work_dir, "timeloop-model", arch, problem, plan, tables)

        return self.work_dirs.run(f"model-{arch.name}-{problem.precision.label()}", job)

    def evaluate_many(self, jobs: Sequence[tuple[Arch, Problem, Mapping]],
                      energy_table: TableFiles | str | Path | None = None
                      ) -> list[Stats | BackendError]:
        """Evaluate independent mappings ``workers`` at a time; failures come back in place."""
        return run_parallel([lambda j=j: self.evaluate(*j, energy_table=energy_table)
                             for j in jobs], self.workers)

    def find_mapping(self, arch: Arch, problem: Problem, settings: MapperSettings | None = None,
               energy_table: TableFiles | str | Path | None = None) -> tuple[Mapping, Stats]:
        """Run timeloop-mapper (random-pruned) and return its best mapping and stats."""
        settings = settings or MapperSettings()
        mapper = self.binaries.require("timeloop-mapper")
        spec, tool_prob, plan = self._prepare(arch, problem, None)
        tables = self._tables(arch, problem, energy_table)
        timeout = self.timeout_s if settings.max_seconds is None else settings.max_seconds

        def job(work_dir: Path) -> tuple[Mapping, Stats]:
            files = write_mapper_inputs(work_dir, spec, tool_prob, settings, self.mapper_threads)
            run_job([str(mapper), files[0].name, *tables.paths, *(f.name for f in files[1:])],
                    work_dir, timeout_s=timeout)
            map_yaml = output_file(work_dir, "timeloop-mapper", "map.yaml")
            tail = read_tail(work_dir / "run.log")
            if not map_yaml.is_file() or not map_yaml.read_text().strip():
                raise BackendError("timeloop-mapper found no valid mappings", file=str(map_yaml),
                                   log_tail=tail, fix="relax constraints, raise the search budget "
                                   "or check that the layer fits the buffers")
            return load_mapping(map_yaml), self._result(work_dir, "timeloop-mapper", arch,
                                                        problem, plan, tables)

        return self.work_dirs.run(f"mapper-{arch.name}-{problem.precision.label()}", job)


