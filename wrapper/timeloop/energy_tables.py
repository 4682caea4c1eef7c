"""Accelergy's energy/area reference tables (ERT/ART): locate, check, and cache them per arch.

Timeloop calls Accelergy itself when no ERT is given, which costs seconds per call (see the
golden README: 18 ms per model run with tables, 2.6-7.5 s without). The tables depend only on
the architecture and component specs, so they are computed once per content hash of what
Accelergy reads (the v0.4 rendering of accelergy_inputs) and reused by every later job, including
jobs of other processes that share the cache directory. Components Accelergy could only price
with its placeholder table are named in a warning that travels with the cached tables.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from ..errors import BackendError
from ..spec.ert import EnergyTable, load_energy_table
from ..spec.yamlio import load_yaml_file, write_text_atomic
from .accelergy_inputs import NOTE as ACCELERGY_NOTE
from .accelergy_inputs import accelergy_v04_text, placeholder_components
from .runner import run_job

NOTES_NAME = "quantmap-notes.txt"


@dataclass(frozen=True)
class TableFiles:
    """Paths of one ERT and its ART (optional, as for Timeloop), and how they were obtained."""

    ert: Path
    art: Path | None = None
    notes: tuple[str, ...] = ()

    @property
    def paths(self) -> list[str]:
        """The table files in Timeloop's command-line order."""
        return [str(p) for p in (self.ert, self.art) if p is not None]


def _table_file(folder: Path, kind: str) -> Path:
    """The ``*<kind>.yaml`` (not the summary) in an Accelergy output folder."""
    matches = sorted(p for p in folder.glob(f"*{kind}.yaml") if "summary" not in p.name)
    if not matches:
        raise BackendError(f"no {kind} table (*{kind}.yaml) in {folder}", file=str(folder),
                           fix="give the folder Accelergy wrote (ERT.yaml and ART.yaml)")
    return matches[0]


def check_table(path: Path, kind: str) -> None:
    """Refuse a file that is not an Accelergy ``ERT:``/``ART:`` table with a ``tables`` list."""
    data = load_yaml_file(path)
    if not isinstance(data, dict) or not isinstance((data.get(kind) or {}).get("tables"), list):
        raise BackendError(f"{path.name} is not an Accelergy {kind} (no '{kind}.tables' list)",
                           file=str(path), fix="rerun Accelergy on the architecture")


def tables_in(folder: str | Path) -> TableFiles:
    """The ERT/ART pair in a folder written by Accelergy (any output prefix)."""
    folder = Path(folder)
    tables = TableFiles(_table_file(folder, "ERT"), _table_file(folder, "ART"))
    check_table(tables.ert, "ERT")
    check_table(tables.art, "ART")
    return tables


@lru_cache(maxsize=32)
def as_energy_table(tables: TableFiles) -> EnergyTable:
    """The tables as the ``EnergyTable`` Timeloop prices with (read once per pair of files)."""
    return load_energy_table(tables.ert, tables.art)


def tables_from_inputs(data: Mapping[str, Any], origin: Mapping[str, str]) -> TableFiles | None:
    """The ERT (and ART) files among a CLI's merged inputs, as Timeloop takes them; else None."""
    if "ERT" not in data:
        return None
    # Absolute: Timeloop runs in its own work folder, where a relative path names nothing.
    tables = TableFiles(Path(origin["ERT"]).resolve(),
                        Path(origin["ART"]).resolve() if "ART" in data else None)
    check_table(tables.ert, "ERT")
    if tables.art is not None:
        check_table(tables.art, "ART")
    return tables


def spec_hash(spec: Mapping[str, Any]) -> str:
    """Content hash of exactly what Accelergy reads for a spec."""
    return hashlib.sha256(accelergy_v04_text(spec).encode()).hexdigest()[:20]


def placeholder_warning(folder: Path) -> str | None:
    """A one-line warning naming the components Accelergy priced with its placeholder table."""
    summary = sorted(p for p in folder.glob("*ERT_summary.yaml"))
    names = placeholder_components(load_yaml_file(summary[0])) if summary else []
    if not names:
        return None
    return (f"Accelergy had no estimate for {', '.join(names)}: their energies are placeholders "
            f"(dummy_table, 1 pJ per action); add the plug-in or primitive library that covers "
            f"them, or give your own ERT")


def _cached(folder: Path) -> TableFiles:
    tables = tables_in(folder)
    notes_file = folder / NOTES_NAME
    notes = tuple(notes_file.read_text().splitlines()) if notes_file.is_file() else ()
    return TableFiles(tables.ert, tables.art, notes)


class AccelergyCache:
    """Runs Accelergy once per architecture content and hands out the cached tables after that."""

    def __init__(self, accelergy: Path, cache_dir: Path, *, timeout_s: float = 300.0) -> None:
        self.accelergy = accelergy
        self.cache_dir = Path(cache_dir)
        self.timeout_s = timeout_s

    def tables_for(self, spec: Mapping[str, Any]) -> TableFiles:
        """ERT/ART for this arch spec: from the cache, or by running Accelergy now."""
        final = self.cache_dir / spec_hash(spec)
        if final.is_dir():
            return _cached(final)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".accelergy-", dir=self.cache_dir))
        try:
            spec_file = write_text_atomic(accelergy_v04_text(spec), work / "arch.yaml")
            run_job([str(self.accelergy), spec_file.name, "-o", "out"], work,
                    timeout_s=self.timeout_s)
            tables_in(work / "out")  # refuse to cache a broken result
            warning = placeholder_warning(work / "out")
            notes = [ACCELERGY_NOTE] + ([f"warning: {warning}"] if warning else [])
            write_text_atomic("\n".join(notes) + "\n", work / "out" / NOTES_NAME)
            try:
                os.rename(work / "out", final)
            except OSError:
                if not final.is_dir():  # lost a race to another job: theirs is as good
                    raise
        finally:
            if final.is_dir():  # on failure the work dir and its run.log stay for inspection
                shutil.rmtree(work, ignore_errors=True)
        return _cached(final)
