"""The storage-model patch set: per-dataspace packing on Timeloop builds without ``bitwidths:``.

Stock Timeloop counts operands, one per word. The authors' fork packs k = floor(W/b) operands into
a W-bit word (docs/packing.md). These rules make stock Timeloop see packed storage by
rewriting the spec, and turn its operand counts back into packed words afterwards
(patches/README.md explains each rule and where it is exact):

R1  A level whose kept dataspaces all have k = 1 is left alone (exact).
R2  A level whose kept dataspaces share one k > 1 becomes a level of k-times-smaller words:
    word-bits W -> floor(W/k), block-size B -> B*k, width -> word-bits*block-size, bandwidths
    (words/cycle) x k, depth unchanged. Capacity in operands is then depth*B*k, so a tile of t
    operands fits iff ceil(t/k) <= depth*B, and vector accesses are ceil(x/(B*k)) =
    ceil(ceil(x/k)/B) exactly as in the fork. Exact for capacity with one kept dataspace; with
    several, the fork rounds each dataspace up separately (up to n-1 words more): approximate.
R3  A level whose kept dataspaces have different k gets R2 with the smallest k (capacity never
    over-estimated): approximate.
R4  Reported counts (reads, fills, updates, utilized capacity) of dataspace d become
    ceil(x/k_d) with d's own k (exact: checked on all 198 golden cross evaluations); energies
    are rescaled by k_level*ceil-sum/raw-sum, an approximation because Timeloop's energy per
    access depends on the access mix (golden: total energy within 2.3e-4).
Levels whose word is narrower than a bit width are refused before anything runs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any
from typing import Mapping as MappingType

from ..errors import SpecError
from ..spec.arch import Arch, StorageLevel
from ..spec.mapping import Mapping, check_precision
from ..spec.precision import DATASPACES, packed_count, packing_factor
from ..spec.problem import Problem
from ..spec.stats import DataspaceStats, LevelStats, Stats

_BANDWIDTH_KEYS = ("read_bandwidth", "write_bandwidth", "shared_bandwidth",
                   "read-bandwidth", "write-bandwidth", "shared-bandwidth")
_WIDTH_KEYS = ("width", "memory_width")


@dataclass(frozen=True)
class LevelRewrite:
    """What the rules do to one storage level and whether the result equals the fork there."""

    level: str
    original_word_bits: int
    factors: MappingType[str, int]  # k per kept dataspace
    k: int                          # packing factor applied to the level (1 = untouched)
    word_bits: int
    block_size: int
    capacity_exact: bool
    rule: str
    note: str

    @property
    def changed(self) -> bool:
        return self.k > 1


@dataclass(frozen=True)
class PatchPlan:
    """The rewrite of every storage level of one (arch, problem[, mapping])."""

    levels: tuple[LevelRewrite, ...]

    def for_level(self, name: str) -> LevelRewrite:
        return {lv.level: lv for lv in self.levels}[name]

    @property
    def exact(self) -> bool:
        """True when every level's capacity rule is exact (counts are exact by construction)."""
        return all(level.capacity_exact for level in self.levels)

    def report(self) -> list[str]:
        """One line per level: rule applied, k, new word bits/block size, exact or approximate."""
        return [f"{lv.level}: {lv.rule} k={lv.k} word-bits={lv.word_bits} block-size="
                f"{lv.block_size} ({'exact' if lv.capacity_exact else 'approximate'}: {lv.note})"
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


def _rewrite(level: StorageLevel, factors: dict[str, int]) -> LevelRewrite:
    def make(k: int, exact: bool, rule: str, note: str) -> LevelRewrite:
        return LevelRewrite(level.name, level.word_bits, factors, k, level.word_bits // k,
                            level.block_size * k, exact, rule, note)

    distinct = sorted(set(factors.values()))
    if not factors or distinct == [1]:
        return make(1, True, "R1", "no packing at this level")
    k = distinct[0]
    if len(distinct) > 1:
        what = "the level stays unpacked" if k == 1 else f"capacity uses k={k}"
        return make(k, False, "R3", f"dataspaces pack differently {factors}; {what}, so "
                                    f"capacity is under-estimated")
    if len(factors) > 1:
        return make(k, False, "R2", f"{len(factors)} dataspaces share the level; the fork rounds "
                                    f"each up to whole words")
    return make(k, True, "R2", "one kept dataspace")


def plan_patches(arch: Arch, problem: Problem, mapping: Mapping | None = None) -> PatchPlan:
    """Decide the rewrite of every storage level (refuses bit widths a word cannot hold)."""
    check_precision(arch, problem, mapping, arch.source)
    rewrites = []
    for level in arch.levels:
        factors = {d: packing_factor(problem.precision.bits(d), level.word_bits)
                   for d in kept_dataspaces(arch, problem, level.name, mapping) if d in DATASPACES}
        rewrites.append(_rewrite(level, factors))
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


def patch_spec(spec: MappingType[str, Any], plan: PatchPlan,
               source: str | None = None) -> dict[str, Any]:
    """A deep copy of the merged spec with each changed level's attributes rewritten (R2/R3)."""
    patched = copy.deepcopy(dict(spec))
    leaves = {_base_name(leaf.get("name", "")): leaf
              for leaf in _leaves((patched.get("architecture") or {}).get("subtree"))}
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
    return patched


def _packed(ds: DataspaceStats, k_level: int, k: int) -> tuple[DataspaceStats, bool]:
    raw = (ds.reads, ds.fills, ds.updates)
    packed = tuple(packed_count(x, k) for x in raw)
    exact = all(x % k == 0 for x in raw)
    energy = ds.energy_pj * k_level * sum(packed) / sum(raw) if sum(raw) else ds.energy_pj
    return DataspaceStats(utilized_capacity=packed_count(ds.utilized_capacity, k), reads=packed[0],
                          fills=packed[1], updates=packed[2], operands_per_word=k,
                          energy_pj=energy), exact


def unpack_stats(stats: Stats, plan: PatchPlan, problem: Problem) -> tuple[Stats, list[str]]:
    """R4: operand counts of a patched stock run -> packed words; notes list inexact energies."""
    if not stats.valid:
        return stats, []
    notes: list[str] = []
    levels: list[LevelStats] = []
    by_name = {lv.level: lv for lv in plan.levels}
    for level in stats.levels:
        rewrite = by_name.get(level.name)
        spaces: dict[str, DataspaceStats] = {}
        for name, ds in level.dataspaces.items():
            k = 1 if rewrite is None else packing_factor(problem.precision.bits(name),
                                                         rewrite.original_word_bits)
            if rewrite is None or (k == 1 and rewrite.k == 1):
                spaces[name] = ds
                continue
            spaces[name], exact = _packed(ds, rewrite.k, k)
            if not exact:
                notes.append(f"{level.name}.{name}: counts not divisible by k={k}; energy "
                             f"approximate (rounding to whole words)")
        levels.append(replace(level, dataspaces=spaces,
                              energy_pj=sum(d.energy_pj for d in spaces.values())))
    energy = stats.energy_pj - sum(lv.energy_pj for lv in stats.levels) + sum(
        lv.energy_pj for lv in levels)
    return replace(stats, levels=tuple(levels), energy_pj=energy,
                   pj_per_mac=energy / stats.macs if stats.macs else 0.0), notes
