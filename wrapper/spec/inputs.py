"""The input files of one Timeloop-style job (arch, components, constraints, problem, mapping,
ERT/ART, mapper section), merged and read into project types in one place.

Every CLI that takes Timeloop's files goes through `load_inputs`, so they all accept the same
files, report missing sections the same way, and adapt constraints that name dimensions the
problem shape lacks (a depthwise layer has no M) instead of failing as Timeloop does, and
constraints that never name a dimension it has (the groups G of a grouped layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import SpecError
from .arch import Arch, arch_from_dict
from .constraints import adapt_constraints_for_shape
from .mapping import Mapping, mapping_from_dict
from .problem import Problem, problem_from_dict
from .yamlio import load_specs


@dataclass(frozen=True)
class SpecInputs:
    """Merged spec data, where each section came from, and the parsed arch and problem."""

    data: dict[str, Any]
    origin: dict[str, str]
    arch: Arch
    problem: Problem
    notes: tuple[str, ...] = ()

    def mapping(self) -> Mapping:
        """The ``mapping:`` section as a Mapping."""
        return mapping_from_dict(self.data["mapping"], self.origin.get("mapping"))


def load_inputs(paths: Sequence[str | Path],
                required: Sequence[str] = ("architecture", "problem")) -> SpecInputs:
    """Merge the files, check the required sections, read the problem and then the arch."""
    data, origin = load_specs(paths)
    for key in required:
        if key not in data:
            raise SpecError(f"no '{key}' section in the given files",
                            file=", ".join(map(str, paths)), field=key,
                            fix=f"add the file that holds '{key}:'")
    problem = problem_from_dict(data["problem"], origin.get("problem"))
    adapted = adapt_constraints_for_shape(data, problem.shape)
    notes: tuple[str, ...] = ()
    if adapted != data:
        notes = (f"constraints adapted to the {problem.shape.name} shape: dimensions it lacks were "
                 "removed (and C took M's place in spatial fan-out), and G follows N's "
                 "constraints",)
        data = adapted
    arch = arch_from_dict(data, origin.get("architecture"), origins=origin)
    return SpecInputs(data, origin, arch, problem, (*arch.notes, *notes))
