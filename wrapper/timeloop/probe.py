"""Tell whether the installed timeloop-model honours ``bitwidths:`` (native) or ignores it (stock).

The probe evaluates one tiny layer twice on a two-level toy architecture, without and with 4-bit
operands on 16-bit words. The fork packs 4 operands per word, so the DRAM reads of Weights drop
to a quarter; stock Timeloop reports the same counts both times. Counting, not version strings,
decides: forks and builds do not label themselves.

The unpacked run also tells the accounting version (``fork`` or ``v3``, the built-in engine's
``--timeloop-version``): the toy's Buffer keeps Outputs below MainMemory, one output element per
tile over 2 output channels, so the fork and its base 4a74d71 report 2 Outputs fills there while
stock v3.0.3, which elides the first fill of a read-write tile, reports 0.

The probe hands timeloop-model its own energy/area tables, so it needs no Accelergy (an Accelergy
without a primitive component library would give an empty table for the toy's primitive classes,
and timeloop-model would stop on it). The verdict is cached per binary (path, size, mtime): a
session probes each build once, and a rebuilt binary is probed again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..spec.costmodel import FORK, TIMELOOP_VERSIONS, V3
from ..spec.arch import arch_from_dict
from ..spec.mapping import mapping_from_dict
from ..spec.precision import Precision
from ..spec.problem import CNN_LAYER_SHAPE, Problem
from ..spec.stats import Stats
from ..spec.yamlio import dump_yaml_file, write_text_atomic
from .outputs import read_stats
from .runner import WorkDirs, run_job
from .specs import write_model_inputs

NATIVE, STOCK = "native", "stock"

PROBE_SPEC: dict[str, Any] = {"architecture": {"version": 0.3, "subtree": [{
    "name": "system",
    "local": [{"name": "MainMemory", "class": "DRAM",
               "attributes": {"width": 64, "block-size": 4, "word-bits": 16}}],
    "subtree": [{"name": "chip", "attributes": {"technology": "45nm"}, "local": [
        {"name": "Buffer", "class": "regfile",
         "attributes": {"depth": 64, "width": 16, "block-size": 1, "word-bits": 16}},
        {"name": "mac", "class": "intmac", "attributes": {"datawidth": 16}}]}]}]}}

PROBE_MAPPING: list[dict[str, Any]] = [
    {"target": "MainMemory", "type": "temporal", "factors": "C16 M2 R1 S1 N1 P1 Q1",
     "permutation": "CMRSNPQ"},
    {"target": "Buffer", "type": "temporal", "factors": "C1 M1 R1 S1 N1 P1 Q1",
     "permutation": "CMRSNPQ"},
]

PROBE_PROBLEM = Problem(CNN_LAYER_SHAPE, {"C": 16, "M": 2, "R": 1, "S": 1, "N": 1, "P": 1, "Q": 1},
                        dict(CNN_LAYER_SHAPE.coefficients))

# Energies are irrelevant to the verdict (only counts are compared); any positive number will do.
_PROBE_COMPONENTS = (("system.MainMemory", ("read", "write")),
                     ("system.chip.Buffer", ("read", "write")),
                     ("system.chip.mac", ("compute",)))
PROBE_ERT = {"ERT": {"version": 0.3, "tables": [
    {"name": name, "actions": [{"name": action, "energy": 1.0} for action in actions]}
    for name, actions in _PROBE_COMPONENTS]}}
PROBE_ART = {"ART": {"version": 0.3, "tables": [
    {"name": name, "area": 1.0} for name, _ in _PROBE_COMPONENTS]}}


def _weights_reads(stats: Stats) -> int:
    return stats.levels[-1].dataspaces["Weights"].reads


def _accounting(stats: Stats) -> str:
    """``fork`` when the Buffer's Outputs fills include the first fill of each element, else
    ``v3`` (module docstring)."""
    buffer = next((lv for lv in stats.levels if lv.name == "Buffer"), None)
    outputs = buffer.dataspaces.get("Outputs") if buffer is not None else None
    return V3 if outputs is not None and outputs.fills == 0 else FORK


def binary_key(binary: Path) -> str:
    """Identity of one build: its resolved path, size and modification time."""
    resolved = Path(binary).resolve()
    info = resolved.stat()
    text = f"{resolved}\0{info.st_size}\0{info.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def run_probe(model: Path, work_dirs: WorkDirs, timeout_s: float = 60.0) -> dict[str, str]:
    """Run the probe now: ``mode`` is ``native`` when packed counts differ from unpacked ones,
    else ``stock``; ``accounting`` is ``fork`` or ``v3`` (module docstring)."""
    arch = arch_from_dict(PROBE_SPEC, "probe")
    mapping = mapping_from_dict(PROBE_MAPPING, "probe")

    def run(precision: Precision) -> Stats:
        def job(work_dir: Path) -> Stats:
            files = write_model_inputs(work_dir, arch.spec, PROBE_PROBLEM.with_precision(precision),
                                       mapping)
            ert = dump_yaml_file(PROBE_ERT, work_dir / "probe.ERT.yaml")
            art = dump_yaml_file(PROBE_ART, work_dir / "probe.ART.yaml")
            run_job([str(model), files[0].name, ert.name, art.name, *(f.name for f in files[1:])],
                    work_dir, timeout_s=timeout_s)
            return read_stats(work_dir, "timeloop-model")
        return work_dirs.run(f"probe-{precision.label()}", job)

    plain = run(Precision())
    packed = _weights_reads(run(Precision.uniform(4))) < _weights_reads(plain)
    return {"mode": NATIVE if packed else STOCK, "accounting": _accounting(plain)}


def probe_build(model: Path, work_dirs: WorkDirs, timeout_s: float = 60.0,
                cache_dir: Path | None = None) -> dict[str, str]:
    """The verdict (``mode`` and ``accounting``) for ``model``: from ``cache_dir`` when this
    build was probed before, else probed now and stored there (no cache when ``cache_dir`` is
    None)."""
    if cache_dir is None:
        return run_probe(model, work_dirs, timeout_s)
    entry = Path(cache_dir) / f"{binary_key(model)}.json"
    try:
        cached = json.loads(entry.read_text())
        if cached.get("mode") in (NATIVE, STOCK) and cached.get("accounting") in TIMELOOP_VERSIONS:
            return {"mode": str(cached["mode"]), "accounting": str(cached["accounting"])}
    except (OSError, ValueError):
        pass
    verdict = run_probe(model, work_dirs, timeout_s)
    write_text_atomic(json.dumps({"binary": str(Path(model).resolve()), **verdict}) + "\n",
                      entry)
    return verdict


def probe_mode(model: Path, work_dirs: WorkDirs, timeout_s: float = 60.0,
               cache_dir: Path | None = None) -> str:
    """``native`` or ``stock`` for ``model`` (`probe_build`)."""
    return probe_build(model, work_dirs, timeout_s, cache_dir)["mode"]
