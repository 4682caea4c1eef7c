"""The storage-model patch set: per-dataspace packing on Timeloop builds without ``bitwidths:``.

Stock Timeloop counts operands, one per word. The authors' fork packs k = floor(W/b) operands into
a W-bit word (docs/packing.md). These rules make stock Timeloop see packed storage by
rewriting the spec, and turn its operand counts back into the fork's numbers afterwards
(patches/README.md explains each rule):

R1  A level whose kept dataspaces all have k = 1 is left alone.
R2  A level whose kept dataspaces share one k > 1 becomes a level of k-times-smaller words:
    word-bits W -> floor(W/k), block-size B -> B*k, width -> word-bits*block-size, bandwidths
    (words/cycle) x k, depth unchanged. With one kept dataspace a tile of t operands then fits
    iff ceil(t/k) <= depth*B, exactly as in the fork; with several, the fork rounds each dataspace
    up to whole words separately, so stock Timeloop may accept a mapping the fork refuses (R5
    refuses it afterwards), never the reverse, since t <= k*ceil(t/k).
R3  A level whose kept dataspaces have different k gets R2 with the smallest k, and when a
    mapping is evaluated its depth grows by ceil(k_max/k_min): then sum(t_d) <= k_max *
    sum(ceil(t_d/k_d)) guarantees stock Timeloop never refuses a tile set the fork accepts, and
    R5 decides. For a mapper search the depth stays (the search space is then a subset of the
    fork's, never a superset beyond what R5 catches).
R4  Counts (reads, fills, updates, utilized capacity) of dataspace d become ceil(x/k_d) with d's
    own k (checked on all golden cross evaluations). Energies are re-priced from those words with
    the energy table Timeloop was given (vector accesses x energy per vector access, per utilized
    cluster), and every level's cycles are recomputed from the packed words and the original
    bandwidths (the fork throttles on words, summed over dataspaces); compute cycles come from the
    stock run. This reproduces the fork's energy and cycles, not only its counts.
R5  The fork's capacity rule on the packed tiles: sum over kept dataspaces of ceil(t_d/k_d) <=
    depth*B at every bounded level; a violation makes the result invalid with that reason.
Levels whose word is narrower than a bit width are refused before anything runs. What remains
inexact: network (wire) energy, which stock Timeloop prices from its own word counts, and
energy sources other than read/write per vector access (address generation, temporal
reduction), which the golden specs do not use.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any
from typing import Mapping as MappingType

import numpy as np

from ..engine.energy_lookup import storage_energies
from ..engine.pricing import PackedCounts, dataspace_energy, level_cycles
from ..errors import SpecError
from ..spec.arch import Arch, StorageLevel
from ..spec.ert import EnergyTable
from ..spec.mapping import Mapping, check_precision
from ..spec.precision import DATASPACES, packed_count, packing_factor
from ..spec.problem import Problem
from ..spec.stats import DataspaceStats, LevelStats, Stats
from .stats_text import utilization

_BANDWIDTH_KEYS = ("read_bandwidth", "write_bandwidth", "shared_bandwidth",
                   "read-bandwidth", "write-bandwidth", "shared-bandwidth")
_WIDTH_KEYS = ("width", "memory_width")
_DEPTH_KEYS = ("depth", "memory_depth")


@dataclass(frozen=True)
class LevelRewrite:
    """What the rules do to one storage level and whether the result equals the fork there."""

    level: str
    original_word_bits: int
    factors: MappingType[str, int]  # k per kept dataspace
    k: int                          # packing factor applied to the level (1 = untouched)
    word_bits: int
    block_size: int
    capacity_exact: bool            # stock Timeloop's own capacity check equals the fork's
    rule: str
    note: str
    depth_scale: int = 1            # R3: depth growth that leaves the capacity decision to R5

    @property
    def changed(self) -> bool:
        return self.k > 1 or self.depth_scale > 1


@dataclass(frozen=True)
class PatchPlan:
    """The rewrite of every storage level of one (arch, problem[, mapping])."""

    levels: tuple[LevelRewrite, ...]

    def for_level(self, name: str) -> LevelRewrite:
        return {lv.level: lv for lv in self.levels}[name]

    @property
    def exact(self) -> bool:
        """True when stock Timeloop's capacity check alone equals the fork's at every level
        (otherwise R5 makes the decision afterwards)."""
        return all(level.capacity_exact for level in self.levels)

    def report(self) -> list[str]:
        """One line per level: rule applied, k, new word bits/block size, who checks capacity."""
        return [f"{lv.level}: {lv.rule} k={lv.k} word-bits={lv.word_bits} block-size="
                f"{lv.block_size}" + (f" depth x{lv.depth_scale}" if lv.depth_scale > 1 else "")
                + f" ({'exact' if lv.capacity_exact else 'capacity checked by R5'}: {lv.note})"
                for lv in self.levels]


def kept_dataspaces(arch: Arch, problem: Problem, level: str,
                    mapping: Mapping | None = None) -> tuple[str, ...]:
    """Dataspaces a level keeps: the mapping's keep list, else the arch's keep/bypass constraints."""
    names = problem.shape.dataspace_names
    if mapping is not None and level in mapping.targets:
        chosen = mapping.for_level(level)
        if chosen.keep is not None or chosen.bypass is not None:
            return tuple(d for d in names if d in chosen.kept(names))
    for constraint in arch.constraints_for(level):
        if constraint.keep is not None:
            return tuple(d for d in names if d in constraint.keep)
        if constraint.bypass is not None:
            return tuple(d for d in names if d not in constraint.bypass)
    return names


def _rewrite(level: StorageLevel, factors: dict[str, int], evaluating: bool) -> LevelRewrite:
    def make(k: int, exact: bool, rule: str, note: str, depth_scale: int = 1) -> LevelRewrite:
        return LevelRewrite(level.name, level.word_bits, factors, k, level.word_bits // k,
                            level.block_size * k, exact, rule, note, depth_scale)

    distinct = sorted(set(factors.values()))
    if not factors or distinct == [1]:
        return make(1, True, "R1", "no packing at this level")
    k = distinct[0]
    if len(distinct) > 1:
        scale = -(-distinct[-1] // k) if evaluating and level.depth is not None else 1
        return make(k, False, "R3", f"dataspaces pack differently {factors}; words use k={k}",
                    scale)
    if len(factors) > 1:
        return make(k, False, "R2", f"{len(factors)} dataspaces share the level; the fork rounds "
                                    f"each up to whole words")
    return make(k, True, "R2", "one kept dataspace")


def plan_patches(arch: Arch, problem: Problem, mapping: Mapping | None = None) -> PatchPlan:
    """Decide the rewrite of every storage level (refuses bit widths a word cannot hold); with a
    mapping the plan is for evaluating it, without one for a mapper search."""
    check_precision(arch, problem, mapping, arch.source)
    rewrites = []
    for level in arch.levels:
        factors = {d: packing_factor(problem.precision.bits(d), level.word_bits)
                   for d in kept_dataspaces(arch, problem, level.name, mapping) if d in DATASPACES}
        rewrites.append(_rewrite(level, factors, mapping is not None))
    return PatchPlan(tuple(rewrites))


def _leaves(nodes: Any) -> list[dict[str, Any]]:
    """All ``local`` component entries of a v0.3 architecture subtree."""
    found: list[dict[str, Any]] = []
    for node in nodes or []:
        found.extend(node.get("local") or [])
        found.extend(_leaves(node.get("subtree")))
    return found


def _base_name(name: str) -> str:
    return str(name).split("[", 1)[0].strip()


def leaves_by_name(spec: MappingType[str, Any]) -> dict[str, dict[str, Any]]:
    """The component entries of a (mutable) v0.3 spec by base name (``PE[0..15]`` -> ``PE``)."""
    return {_base_name(leaf.get("name", "")): leaf
            for leaf in _leaves((spec.get("architecture") or {}).get("subtree"))}


def patch_spec(spec: MappingType[str, Any], plan: PatchPlan,
               source: str | None = None) -> dict[str, Any]:
    """A deep copy of the merged spec with each changed level's attributes rewritten (R2/R3)."""
    patched = copy.deepcopy(dict(spec))
    leaves = leaves_by_name(patched)
    for rewrite in (lv for lv in plan.levels if lv.changed):
        leaf = leaves.get(rewrite.level)
        if leaf is None:
            raise SpecError(f"storage level '{rewrite.level}' not found in the spec", file=source,
                            field="architecture.subtree", fix="patch the spec the arch came from")
        attrs = leaf.setdefault("attributes", {})
        for key in ("word-bits", "word_bits"):
            attrs.pop(key, None)
        for key in ("block-size", "block_size"):
            attrs.pop(key, None)
        attrs["word-bits"] = rewrite.word_bits
        attrs["block-size"] = rewrite.block_size
        for key in _WIDTH_KEYS:
            if key in attrs:
                attrs[key] = rewrite.word_bits * rewrite.block_size
        for key in _BANDWIDTH_KEYS:
            if isinstance(attrs.get(key), (int, float)):
                attrs[key] = attrs[key] * rewrite.k
        for key in _DEPTH_KEYS:
            if isinstance(attrs.get(key), int):
                attrs[key] = attrs[key] * rewrite.depth_scale
    return patched


@dataclass(frozen=True)
class StockRun:
    """What a stock timeloop-model run reports beyond ``Stats``: its compute cycles, and per
    (level, dataspace) the utilized instances (which energy is spread over)."""

    stats: Stats
    compute_cycles: int
    utilized_instances: MappingType[tuple[str, str], int]


def _packed_counts(ds: DataspaceStats, k: int, instances: int) -> PackedCounts:
    def one(x: int) -> np.ndarray:
        return np.array([packed_count(x, k)], dtype=np.int64)

    return PackedCounts(one(ds.utilized_capacity), one(ds.reads), one(ds.fills), one(ds.updates),
                        k, np.array([instances], dtype=np.int64))


def unpack_stats(run: StockRun, arch: Arch, problem: Problem, table: EnergyTable | None) -> Stats:
    """R4 and R5: the fork's Stats from a stock run of the rewritten spec (see module docstring);
    ``table`` is the energy table Timeloop was given (None: its built-in defaults)."""
    stats = run.stats
    if not stats.valid:
        return stats
    compute = np.array([float(run.compute_cycles)])
    levels: list[LevelStats] = []
    for level_stats in stats.levels:
        level = arch.level(level_stats.name)
        energies = storage_energies(level, table)
        counts: dict[str, PackedCounts] = {}
        spaces: dict[str, DataspaceStats] = {}
        for name in problem.shape.dataspace_names:
            ds = level_stats.dataspaces.get(name)
            if ds is None:
                continue
            k = packing_factor(problem.precision.bits(name), level.word_bits)
            counts[name] = c = _packed_counts(ds, k, run.utilized_instances[(level.name, name)])
            energy = float(dataspace_energy(level, c, energies.read, energies.write)[0])
            spaces[name] = DataspaceStats(int(c.capacity[0]), int(c.reads[0]), int(c.fills[0]),
                                          int(c.updates[0]), k, energy)
        needed = sum(int(c.capacity[0]) for c in counts.values())
        if level.size_words is not None and needed > level.size_words:
            parts = ", ".join(f"{n} {int(c.capacity[0])}" for n, c in counts.items())
            return Stats.invalid(f"capacity exceeded at level {level.name}: needs {needed} words "
                                 f"({parts}), has {level.size_words} words")
        cycles = int(level_cycles(level, list(counts.values()), compute)[0])
        levels.append(LevelStats(level.name, sum(d.energy_pj for d in spaces.values()), cycles,
                                 spaces))
    energy = stats.energy_pj - sum(lv.energy_pj for lv in stats.levels) + sum(
        lv.energy_pj for lv in levels)
    cycles = max([run.compute_cycles, *(lv.cycles for lv in levels)])
    return replace(stats, levels=tuple(levels), energy_pj=energy, cycles=cycles,
                   utilization=utilization(stats.macs, cycles, arch.arithmetic.instances),
                   pj_per_mac=energy / stats.macs if stats.macs else 0.0)
