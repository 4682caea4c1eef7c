"""Tell whether the installed timeloop-model honours ``bitwidths:`` (native) or ignores it (stock).

Native builds are the authors' fork and upstream Timeloop with QuantMap's patch series
(``patches/``); both pack narrow operands into words. The probe evaluates one tiny layer twice on a
two-level toy architecture, without and with 4-bit operands on 16-bit words. A native build packs
4 operands per word, so the DRAM reads of Weights drop to a quarter; stock Timeloop reports the
same counts both times. Counting, not version strings, decides: forks and builds do not label
themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..spec.arch import arch_from_dict
from ..spec.mapping import mapping_from_dict
from ..spec.precision import Precision
from ..spec.problem import CNN_LAYER_SHAPE, Problem
from ..spec.stats import Stats
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


def _weights_reads(stats: Stats) -> int:
    return stats.levels[-1].dataspaces["Weights"].reads


def probe_mode(model: Path, work_dirs: WorkDirs, timeout_s: float = 60.0) -> str:
    """``native`` when packed counts differ from unpacked ones, else ``stock``."""
    arch = arch_from_dict(PROBE_SPEC, "probe")
    mapping = mapping_from_dict(PROBE_MAPPING, "probe")

    def run(precision: Precision) -> int:
        def job(work_dir: Path) -> int:
            files = write_model_inputs(work_dir, arch.spec, PROBE_PROBLEM.with_precision(precision),
                                       mapping)
            run_job([str(model), *(f.name for f in files)], work_dir, timeout_s=timeout_s)
            return _weights_reads(read_stats(work_dir, "timeloop-model"))
        return work_dirs.run(f"probe-{precision.label()}", job)

    return NATIVE if run(Precision.uniform(4)) < run(Precision()) else STOCK
