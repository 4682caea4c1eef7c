"""``TimeloopCostModel``: the real timeloop-model/-mapper behind the same API as the built-in engine.

One call = one job in its own work directory: write the spec files, run the binary with
precomputed ERT/ART (Accelergy once per arch, cached), parse the outputs into ``Stats`` and
``Mapping``. Bit widths that do not fit a word are refused before any binary runs. In stock mode
(a Timeloop that ignores ``bitwidths:``) the storage-model patch set rewrites the spec and the
counts are converted back to packed words.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from ..errors import BackendError, ConfigError
from ..spec.arch import Arch
from ..spec.costmodel import MapperSettings
from ..spec.mapping import Mapping, check_precision, load_mapping
from ..spec.problem import Problem
from ..spec.stats import Stats
from .discovery import Binaries, find_binaries
from .energy_tables import AccelergyCache, EnergyTables, tables_in
from .outputs import output_file, read_stats
from .patching import PatchPlan, patch_spec, plan_patches, unpack_stats
from .probe import NATIVE, STOCK, probe_mode
from .runner import WorkDirs, read_tail, run_job, run_parallel
from .specs import tool_problem, write_mapper_inputs, write_model_inputs

MODES = ("auto", NATIVE, STOCK)


def default_cache_dir() -> Path:
    """Where Accelergy tables are cached (``$QUANTMAP_CACHE`` or the user cache folder)."""
    root = os.environ.get("QUANTMAP_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(root or Path.home() / ".cache") / "quantmap" / "accelergy"


class TimeloopCostModel:
    """CostModel over the Timeloop binaries (``evaluate``, ``search``, ``evaluate_many``)."""

    name = "timeloop"
    version = "timeloop-binaries-1"

    def __init__(self, binaries: Binaries | None = None, *, mode: str = "auto",
                 work_root: Path | None = None, keep_work: str = "failed",
                 cache_dir: Path | None = None, timeout_s: float = 300.0,
                 mapper_threads: int = 1, workers: int = 1) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown Timeloop mode '{mode}'", field="timeloop.mode",
                              fix=f"use one of {', '.join(MODES)}")
        self.binaries = binaries if binaries is not None else find_binaries()
        self.work_dirs = WorkDirs(work_root or Path(tempfile.gettempdir()) / "quantmap-timeloop",
                                  keep=keep_work)
        self.cache_dir = cache_dir or default_cache_dir()
        self.timeout_s = timeout_s
        self.mapper_threads = mapper_threads
        self.workers = workers
        self._mode = None if mode == "auto" else mode

    @property
    def mode(self) -> str:
        """``native`` (fork honours bitwidths) or ``stock``; probed once on first use."""
        if self._mode is None:
            self._mode = probe_mode(self.binaries.require("timeloop-model"), self.work_dirs)
        return self._mode

    def _tables(self, arch: Arch, energy_table: EnergyTables | str | Path | None) -> EnergyTables:
        if isinstance(energy_table, EnergyTables):
            return energy_table
        if energy_table is not None:
            return tables_in(energy_table)
        cache = AccelergyCache(self.binaries.require("accelergy"), self.cache_dir,
                               timeout_s=self.timeout_s)
        return cache.tables_for(arch.spec)

    def _prepare(self, arch: Arch, problem: Problem,
                 mapping: Mapping | None) -> tuple[dict, Problem, PatchPlan | None]:
        """Refuse unfit bit widths, then the spec/problem the binary sees and the patch plan."""
        check_precision(arch, problem, mapping, arch.source)
        if self.mode == NATIVE or problem.precision.is_native:
            return dict(arch.spec), tool_problem(problem, True), None
        plan = plan_patches(arch, problem, mapping)
        return patch_spec(arch.spec, plan, arch.source), tool_problem(problem, False), plan

    def evaluate(self, arch: Arch, problem: Problem, mapping: Mapping,
                 energy_table: EnergyTables | str | Path | None = None) -> Stats:
        """Run timeloop-model on one mapping and parse its stats (BackendError on failure)."""
        model = self.binaries.require("timeloop-model")
        spec, tool_prob, plan = self._prepare(arch, problem, mapping)
        tables = self._tables(arch, energy_table)

        def job(work_dir: Path) -> Stats:
            files = write_model_inputs(work_dir, spec, tool_prob, mapping)
            run_job([str(model), files[0].name, str(tables.ert), str(tables.art),
                     *(f.name for f in files[1:])], work_dir, timeout_s=self.timeout_s)
            stats = read_stats(work_dir, "timeloop-model", read_tail(work_dir / "run.log"))
            return stats if plan is None else unpack_stats(stats, plan, problem)[0]

        return self.work_dirs.run(f"model-{arch.name}-{problem.precision.label()}", job)

    def evaluate_many(self, jobs: Sequence[tuple[Arch, Problem, Mapping]],
                      energy_table: EnergyTables | str | Path | None = None
                      ) -> list[Stats | BackendError]:
        """Evaluate independent mappings ``workers`` at a time; failures come back in place."""
        return run_parallel([lambda j=j: self.evaluate(*j, energy_table=energy_table)
                             for j in jobs], self.workers)

    def search(self, arch: Arch, problem: Problem, settings: MapperSettings | None = None,
               energy_table: EnergyTables | str | Path | None = None) -> tuple[Mapping, Stats]:
        """Run timeloop-mapper (random-pruned) and return its best mapping and stats."""
        settings = settings or MapperSettings()
        mapper = self.binaries.require("timeloop-mapper")
        spec, tool_prob, plan = self._prepare(arch, problem, None)
        tables = self._tables(arch, energy_table)
        timeout = self.timeout_s if settings.max_seconds is None else settings.max_seconds

        def job(work_dir: Path) -> tuple[Mapping, Stats]:
            files = write_mapper_inputs(work_dir, spec, tool_prob, settings, self.mapper_threads)
            run_job([str(mapper), files[0].name, str(tables.ert), str(tables.art),
                     *(f.name for f in files[1:])], work_dir, timeout_s=timeout)
            map_yaml = output_file(work_dir, "timeloop-mapper", "map.yaml")
            tail = read_tail(work_dir / "run.log")
            if not map_yaml.is_file() or not map_yaml.read_text().strip():
                raise BackendError("timeloop-mapper found no valid mappings", file=str(map_yaml),
                                   log_tail=tail, fix="relax constraints, raise the search budget "
                                   "or check that the layer fits the buffers")
            found = load_mapping(map_yaml)
            stats = read_stats(work_dir, "timeloop-mapper", tail)
            return found, (stats if plan is None else unpack_stats(stats, plan, problem)[0])

        return self.work_dirs.run(f"mapper-{arch.name}-{problem.precision.label()}", job)


