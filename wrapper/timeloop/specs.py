"""Write the YAML inputs of one timeloop-model/-mapper job into its work directory.

timeloop-model gets the architecture and components only: with the architecture constraints
added it rejects mappings the mapper found under them (golden README), so constraints go to the
mapper alone. The problem carries the fork's ``bitwidths:`` in native mode and none in stock
mode (where the patch set has rewritten the architecture instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping as MappingType

from ..costmodel import MapperSettings
from ..errors import ConfigError
from ..mapping import Mapping, mapping_to_dict
from ..precision import Precision
from ..problem import Problem, problem_to_dict
from ..yamlio import dump_yaml_file

MODEL_SECTIONS = ("architecture", "compound_components")
MAPPER_SECTIONS = MODEL_SECTIONS + ("architecture_constraints", "mapspace_constraints",
                                    "mapspace")
TIMELOOP_METRICS = {"energy": "energy", "delay": "delay", "edp": "edp",
                    "last_level_accesses": "last-level-accesses"}


def spec_sections(spec: MappingType[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """The named top-level sections of a merged spec that are present."""
    return {key: spec[key] for key in sections if key in spec}


def tool_problem(problem: Problem, native: bool) -> Problem:
    """The problem as the binary should see it: with bit widths (fork) or without (stock)."""
    return problem if native else problem.with_precision(Precision())


def mapper_config(settings: MapperSettings, threads: int) -> dict[str, Any]:
    """timeloop-mapper settings for our MapperSettings (random-pruned, like the paper)."""
    try:
        metrics = [TIMELOOP_METRICS[settings.metric], TIMELOOP_METRICS[settings.secondary_metric]]
    except KeyError as exc:
        raise ConfigError(f"metric {exc} has no timeloop-mapper equivalent", field="mapper.metric",
                          fix=f"use one of {', '.join(TIMELOOP_METRICS)}") from None
    return {"mapper": {
        "out_prefix": "timeloop-mapper",
        "optimization-metrics": list(dict.fromkeys(metrics)),
        "algorithm": "random-pruned",
        "num-threads": threads,
        "search-size": settings.max_evaluations,
        "victory-condition": settings.max_evaluations,
        "timeout": max(1000, 10 * settings.max_evaluations),
        "max-permutations-per-if-visit": 16,
        "log-oaves": False,
        "live-status": False,
    }}


def write_model_inputs(work_dir: Path, spec: MappingType[str, Any], problem: Problem,
                       mapping: Mapping) -> list[Path]:
    """arch.yaml, mapping.yaml, problem.yaml for timeloop-model (in command-line order)."""
    return [dump_yaml_file(spec_sections(spec, MODEL_SECTIONS), work_dir / "arch.yaml"),
            dump_yaml_file(mapping_to_dict(mapping), work_dir / "mapping.yaml"),
            dump_yaml_file(problem_to_dict(problem), work_dir / "problem.yaml")]


def write_mapper_inputs(work_dir: Path, spec: MappingType[str, Any], problem: Problem,
                        settings: MapperSettings, threads: int) -> list[Path]:
    """arch.yaml (with constraints), mapper.yaml, problem.yaml for timeloop-mapper."""
    return [dump_yaml_file(spec_sections(spec, MAPPER_SECTIONS), work_dir / "arch.yaml"),
            dump_yaml_file(mapper_config(settings, threads), work_dir / "mapper.yaml"),
            dump_yaml_file(problem_to_dict(problem), work_dir / "problem.yaml")]
