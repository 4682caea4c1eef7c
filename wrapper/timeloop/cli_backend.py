"""What ``python -m wrapper.evaluate/map --engine timeloop`` call: the same YAML files as the
Timeloop binaries take (arch, components, constraints, problem, mapping/mapper, optional ERT/ART),
answered by the real tools through ``TimeloopCostModel``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import SpecError
from ..spec.arch import arch_from_dict
from ..spec.costmodel import METRICS, MapperSettings
from ..spec.mapping import Mapping, dump_mapping, mapping_from_dict
from ..spec.problem import problem_from_dict
from ..spec.stats import Stats
from ..spec.yamlio import load_specs
from .costmodel import TimeloopCostModel
from .energy_tables import EnergyTables, check_table


def _tables(data: dict[str, Any], origin: dict[str, str]) -> EnergyTables | None:
    """ERT/ART files given among the inputs (as timeloop-model accepts them), else None."""
    if "ERT" not in data:
        return None
    if "ART" not in data:
        raise SpecError("an ERT file was given without its ART", file=origin["ERT"], field="ART",
                        fix="pass the ART.yaml Accelergy wrote next to the ERT.yaml")
    tables = EnergyTables(Path(origin["ERT"]), Path(origin["ART"]))
    check_table(tables.ert, "ERT")
    check_table(tables.art, "ART")
    return tables


def _settings(data: dict[str, Any]) -> MapperSettings:
    """Our MapperSettings from a Timeloop ``mapper:`` section (metric and search size)."""
    section = data.get("mapper") or {}
    wanted = [str(m).replace("-", "_") for m in section.get("optimization-metrics") or ["edp"]]
    metrics = [m for m in wanted if m in METRICS] or ["edp"]
    return MapperSettings(metric=metrics[0], secondary_metric=(metrics[1:] or ["energy"])[0],
                          max_evaluations=int(section.get("search-size") or 0) or 2000)


def evaluate_files(paths: Sequence[str | Path], model: TimeloopCostModel | None = None) -> Stats:
    """Evaluate the mapping in the given files with timeloop-model."""
    data, origin = load_specs(paths)
    arch = arch_from_dict(data, origin.get("architecture"))
    if "mapping" not in data:
        raise SpecError("no mapping among the inputs", field="mapping",
                        fix="add a mapping YAML (top-level 'mapping:'), e.g. a mapper's map.yaml")
    problem = problem_from_dict(data, origin.get("problem"))
    mapping = mapping_from_dict(data["mapping"], origin.get("mapping"))
    return (model or TimeloopCostModel()).evaluate(arch, problem, mapping, _tables(data, origin))


def map_files(paths: Sequence[str | Path], out_dir: str | Path | None = None,
              model: TimeloopCostModel | None = None) -> tuple[Mapping, Stats]:
    """Search a mapping with timeloop-mapper; writes ``map.yaml`` into ``out_dir`` when given."""
    data, origin = load_specs(paths)
    arch = arch_from_dict(data, origin.get("architecture"))
    problem = problem_from_dict(data, origin.get("problem"))
    found, stats = (model or TimeloopCostModel()).search(arch, problem, _settings(data),
                                                          _tables(data, origin))
    if out_dir is not None:
        dump_mapping(found, Path(out_dir) / "map.yaml")
    return found, stats

