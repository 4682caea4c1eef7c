"""The mapspace of one (arch, problem): every uniform mapping the architecture and mapspace
constraints allow, as compact choices a mapper can enumerate, sample and mutate.

Tiling slots are ordered innermost first, like Timeloop's tiling levels: per storage level its
spatial slot (fan-out to the level below, only where there is fan-out) inside its temporal slot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Mapping as MappingType
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import SpecError
from ..spec.arch import Arch
from ..spec.mapping import LevelMapping, Mapping
from ..spec.precision import packed_count
from ..spec.problem import Problem
from ..spec.costmodel import FORK
from .rowkeys import unique_rows

TEMPORAL = "temporal"
SPATIAL = "spatial"
STREAM_CHUNK = 1 << 15  # pairs per step and rows per block of `MapSpace.stream_factors`
SAMPLE_CAP = 1 << 20  # partial choices a regrown sample may hold before the space is streamed


@dataclass(frozen=True)
class Slot:
    """One tiling level: the temporal or spatial loops of one storage level."""

    level: str
    kind: str
    level_index: int  # index of the storage level, innermost = 0
    fixed: tuple[tuple[str, int], ...]  # resolved fixed factors
    prefix: tuple[str, ...]  # constrained permutation (innermost first)
    split: int | None
    fanout: tuple[int, int]  # (X, Y); (1, 1) for temporal slots
    free: tuple[str, ...]  # dimensions whose factor the mapper chooses here
    maxima: tuple[tuple[str, int], ...] = ()  # 'D<=n' constraints on free factors
    min_parallelism: int = 1  # fewest spatial instances used (utilization/parallelism minimums)

    @property
    def is_spatial(self) -> bool:
        return self.kind == SPATIAL


@dataclass(frozen=True)
class MapSpace:
    """All choices of one (arch, problem): factors per slot and dimension, loop orders, keeps."""

    arch: Arch
    problem: Problem
    slots: tuple[Slot, ...]
    dims: tuple[str, ...]
    dataspaces: tuple[str, ...]
    level_names: tuple[str, ...]  # storage levels innermost first
    keep_rules: tuple[tuple[str, ...], ...]  # [level][dataspace] in '1', '0', 'X'
    packing: tuple[tuple[int, ...], ...]  # [level][dataspace] operands per word (0 = cannot hold)
    dim_options: tuple[np.ndarray, ...] = field(repr=False, compare=False)  # [dim] (options, slots)
    notes: tuple[str, ...] = ()  # constraint factors released because they do not divide
    accounting: str = FORK  # the Timeloop version whose counts score it (analysis.FORK / V3)

    # ---- derived tables -------------------------------------------------------------------
    @cached_property
    def slot_level(self) -> np.ndarray:
        """Storage-level index (innermost 0) of each slot."""
        return np.array([s.level_index for s in self.slots], dtype=np.int64)

    @cached_property
    def temporal_slots(self) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(self.slots) if not s.is_spatial)

    @cached_property
    def spatial_slots(self) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(self.slots) if s.is_spatial)

    @cached_property
    def keep_choices(self) -> tuple[tuple[frozenset[str], ...], ...]:
        """Per storage level (innermost first), every keep set its rules allow."""
        out = []
        for rules in self.keep_rules:
            fixed = frozenset(ds for ds, r in zip(self.dataspaces, rules) if r == "1")
            open_ = [ds for ds, r in zip(self.dataspaces, rules) if r == "X"]
            out.append(tuple(fixed | frozenset(c) for n in range(len(open_) + 1)
                             for c in itertools.combinations(open_, n)))
        return tuple(out)

    @property
    def factor_space_size(self) -> int:
        """Number of factorizations before capacity and fan-out pruning."""
        return int(np.prod([len(o) for o in self.dim_options], dtype=object))

    def split_factors(self, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slot factors (n, slots, dims) as the engine's temporal and spatial (n, levels, dims)."""
        shape = (factors.shape[0], len(self.level_names), len(self.dims))
        temporal = np.ones(shape, dtype=np.int64)
        spatial = np.ones(shape, dtype=np.int64)
        t, s = list(self.temporal_slots), list(self.spatial_slots)
        temporal[:, self.slot_level[t], :] = factors[:, t, :]
        spatial[:, self.slot_level[s], :] = factors[:, s, :]
        return temporal, spatial

    # ---- capacity and fan-out -------------------------------------------------------------
    def capacity(self, keep: np.ndarray) -> CapacityCheck:
        """The capacity and fan-out check of one keep choice ((levels, dataspaces) booleans)."""
        return CapacityCheck.build(self, keep)

    def fits(self, factors: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Rows (n, slots, dims) whose kept tiles fit every buffer after packing."""
        return self.capacity(keep).fits(factors)

    def fanout_ok(self, factors: np.ndarray) -> np.ndarray:
        """Spatial factors fit each fan-out (total product; exact X/Y in `splits_ok`)."""
        ok = np.ones(factors.shape[0], dtype=bool)
        for i in self.spatial_slots:
            fx, fy = self.slots[i].fanout
            ok &= factors[:, i, :].prod(axis=1) <= fx * fy
        return ok

    def spatial_split(self, slot_index: int, factors: Sequence[int]) -> frozenset[str] | None:
        """The X-axis dimensions for these spatial factors, or None when no allowed split fits
        (memoized: the mapper asks about the same few spatial choices many times)."""
        key = (slot_index, tuple(int(f) for f in factors))
        if key not in self._split_cache:
            self._split_cache[key] = _spatial_split(self.slots[slot_index], self.dims, key[1])
        return self._split_cache[key]

    @cached_property
    def _split_cache(self) -> dict:
        return {}

    def splits_ok(self, factors: np.ndarray) -> np.ndarray:
        """Rows whose spatial factors have an allowed X/Y assignment that fits the fan-out, and
        that honour the constraints' factor maxima and parallelism minimums (every mapper ends
        its pruning here, so these limits hold for whatever it proposes)."""
        ok = self.limits_ok(factors)
        for i in self.spatial_slots:
            first, inverse = unique_rows(factors[:, i, :])
            good = np.array([self.spatial_split(i, row) is not None for row in factors[first, i]],
                            dtype=bool)
            ok &= good[inverse]
        return ok

    def limits_ok(self, factors: np.ndarray) -> np.ndarray:
        """Rows within every slot's 'D<=n' maxima and above its minimum parallelism."""
        ok = np.ones(factors.shape[0], dtype=bool)
        for i, slot in enumerate(self.slots):
            for dim, limit in slot.maxima:
                ok &= factors[:, i, self.dims.index(dim)] <= limit
            if slot.min_parallelism > 1:
                ok &= factors[:, i, :].prod(axis=1) >= slot.min_parallelism
        return ok

    # ---- enumeration ----------------------------------------------------------------------
    def enumerate_factors(self, keep: np.ndarray, limit: int | None = None,
                          rng: np.random.Generator | None = None,
                          dim_options: Sequence[np.ndarray] | None = None
                          ) -> tuple[np.ndarray, bool]:
        """Factor choices (n, slots, dims) that fit capacity (with packing), fan-out and the
        constraints' limits, never none while the space has any: a sample whose every row
        misses a minimum parallelism is drawn again four times larger, until complete (the
        result is then empty only when no choice fits). A draw regrown past ``SAMPLE_CAP``
        partial choices would not fit in memory, so the space is streamed instead
        (`_stream_sample`). ``dim_options`` replaces `dim_options` (e.g. a subset with some
        slots fixed)."""
        rng = rng or np.random.default_rng(0)
        size = limit
        while True:
            if limit is not None and size is not None and size < limit > SAMPLE_CAP:
                return self._stream_sample(keep, size, rng, dim_options)
            rows, complete = self._enumerate(keep, limit, rng, dim_options)
            if len(rows) or complete:
                return rows, complete
            limit = 4 * limit if limit is not None else None

    def _stream_sample(self, keep: np.ndarray, size: int, rng: np.random.Generator,
                       dim_options: Sequence[np.ndarray] | None) -> tuple[np.ndarray, bool]:
        """A seeded uniform sample of ``size`` of every factor choice that fits, in stream
        order, read from `stream_factors` in bounded memory: each choice gets a random key and
        the ``size`` smallest keys stay. Complete when the space has no more choices."""
        rows = np.zeros((0, len(self.slots), len(self.dims)), dtype=np.int64)
        keys = np.zeros(0)
        seen = 0
        for block in self.stream_factors(keep, dim_options):
            rows = np.concatenate([rows, block])
            keys = np.concatenate([keys, rng.random(len(block))])
            seen += len(block)
            if len(rows) > size:
                kept = np.sort(np.argpartition(keys, size)[:size])
                rows, keys = rows[kept], keys[kept]
        return rows, seen <= size

    def enumerate_all(self, keep: np.ndarray, limit: int) -> np.ndarray | None:
        """Every factor choice that fits, or None as soon as a step holds more than ``limit``
        partial choices (the caller then splits the space instead of sampling it)."""
        rows, complete = self._enumerate(keep, limit, np.random.default_rng(0), None,
                                         give_up=True)
        return rows if complete else None

    def stream_factors(self, keep: np.ndarray, dim_options: Sequence[np.ndarray] | None = None,
                       chunk: int = STREAM_CHUNK, stop: Callable[[], bool] | None = None
                       ) -> Iterator[np.ndarray]:
        """Every factor choice that fits (what `enumerate_factors` lists without a limit, in
        the same order), in blocks of about ``chunk`` rows.

        Dimensions are added as in `_enumerate`, but depth first: when adding the next
        dimension to all partial choices would test more than ``chunk`` (partial choice,
        option) pairs, the partial choices are taken a slice at a time and each slice is
        completed before the next. At most about ``chunk`` partial choices per dimension are
        held, so the memory stays bounded however large the space is. A space whose choices
        mostly fail at the last dimensions can take long between two blocks: ``stop`` is asked
        before every step, and the stream ends early once it holds.
        """
        check = self.capacity(keep)
        options, steps = self._options(check, dim_options)
        held: list[np.ndarray] = []
        count = 0
        for partial in _depth_first(check, check.root(), options, steps, chunk, stop):
            rows = self._rows(options, partial)
            held.append(rows)
            count += len(rows)
            if count >= chunk:
                yield np.concatenate(held)
                held, count = [], 0
        if count:
            yield np.concatenate(held)

    def _options(self, check: CapacityCheck, dim_options: Sequence[np.ndarray] | None
                 ) -> tuple[list[np.ndarray], list[int]]:
        """Each dimension's options that fit alone (others 1), and the order in which the
        enumeration adds dimensions (fewest options first)."""
        root = check.root()
        options = []
        for j, opts in enumerate(self.dim_options if dim_options is None else dim_options):
            alone = check.extend(root, j, opts, np.zeros(len(opts), dtype=np.int64),
                                 np.arange(len(opts)))
            options.append(opts[alone.choice[:, j]])
        return options, sorted(range(len(self.dims)), key=lambda j: len(options[j]))

    def _rows(self, options: list[np.ndarray], partial: Partial) -> np.ndarray:
        """The full factor choices ``[n, slots, dims]`` of complete partial choices that have
        an allowed X/Y split and honour the constraints' limits."""
        rows = np.stack([options[j][partial.choice[:, j]] for j in range(len(self.dims))], axis=2)
        return rows[self.splits_ok(rows)]

    def _enumerate(self, keep: np.ndarray, limit: int | None, rng: np.random.Generator,
                   dim_options: Sequence[np.ndarray] | None, give_up: bool = False
                   ) -> tuple[np.ndarray, bool]:
        """Factor choices (n, slots, dims) that fit capacity (with packing) and fan-out.

        Each dimension's options are first pruned alone (others 1), then dimensions are added
        one at a time, fewest options first, and partial choices that overflow a buffer or a
        fan-out are dropped (tiles only grow). Everything is array arithmetic on option indices
        (`CapacityCheck.extend`). Without a limit this is `stream_factors` gathered. When a
        step would test more than ``max(4 * limit, 2**16)`` (partial choice, option) pairs, a
        seeded random set of pairs is tested instead, and when more than ``limit`` partial
        choices survive, a seeded random ``limit`` of them is kept; the flag says whether the
        result is complete. With ``give_up`` an incomplete enumeration stops at the first such
        step and returns no rows.
        """
        if limit is None:
            blocks = list(self.stream_factors(keep, dim_options))
            empty = np.zeros((0, len(self.slots), len(self.dims)), dtype=np.int64)
            return np.concatenate(blocks) if blocks else empty, True
        check = self.capacity(keep)
        options, steps = self._options(check, dim_options)
        partial = check.root()
        complete = True
        pairs_cap = max(4 * limit, 1 << 16)
        for j in steps:
            n, m = partial.size, len(options[j])
            if n * m > pairs_cap:
                complete = False
                if give_up:
                    break
                flat = np.unique(rng.integers(0, n * m, size=pairs_cap))
                parent, option = flat // m, flat % m
            else:
                parent, option = np.repeat(np.arange(n), m), np.tile(np.arange(m), n)
            partial = check.extend(partial, j, options[j], parent, option)
            if partial.size > limit:
                complete = False
                if give_up:
                    break
                partial = partial.take(np.sort(rng.choice(partial.size, limit, replace=False)))
        if give_up and not complete:
            return np.zeros((0, len(self.slots), len(self.dims)), dtype=np.int64), False
        return self._rows(options, partial), complete

    # ---- loop-order equivalence -----------------------------------------------------------
    @cached_property
    def _relevance(self) -> tuple[tuple[frozenset[str], bool], ...]:
        """Per dataspace: its dimensions, and whether a rank couples two (sliding window)."""
        out = []
        for ds in self.dataspaces:
            shape = self.problem.dataspace(ds)
            out.append((shape.dims, any(len(rank) > 1 for rank in shape.projection)))
        return tuple(out)

    def order_signature(self, loops: Sequence[str]) -> tuple:
        """What a level's loop order (non-unit loops, innermost first) changes in the counts.

        Per dataspace only the run of irrelevant loops inside its innermost relevant loop
        matters (its tile stays put across them), and which loop ends the run. Where a rank
        sums two dimensions (sliding windows), consecutive tiles can overlap, so the order of
        the relevant loops after the run is kept as well.
        """
        sig = []
        for dims, sliding in self._relevance:
            run = []
            rest: tuple[str, ...] = ()
            for i, d in enumerate(loops):
                if d in dims:
                    tail = loops[i:]
                    rest = tuple(x if x in dims else "*" for x in tail) if sliding else (d,)
                    break
                run.append(d)
            sig.append((frozenset(run), rest))
        return tuple(sig)

    def default_orders(self) -> np.ndarray:
        """(levels, dims) loop orders, innermost first: each level's constrained prefix, then
        the other dimensions in problem order."""
        index = {d: j for j, d in enumerate(self.dims)}
        return np.array([[index[d] for d in slot.prefix]
                         + [j for j, d in enumerate(self.dims) if d not in slot.prefix]
                         for slot in (self.slots[i] for i in self.temporal_slots)], dtype=np.int64)

    def order_classes(self, level_index: int, nonunit: frozenset[str]) -> np.ndarray:
        """(k, dims) loop orders of one level with pairwise different effect on the counts when
        ``nonunit`` are its loops of size > 1: the constrained prefix, one representative
        order of the other non-unit loops per `order_signature`, then the unit loops."""
        key = (level_index, nonunit)
        cache = self._class_cache
        if key not in cache:
            slot = self.slots[self.temporal_slots[level_index]]
            index = {d: j for j, d in enumerate(self.dims)}
            movable = [d for d in self.dims if d in nonunit and d not in slot.prefix]
            unit = [d for d in self.dims if d not in nonunit and d not in slot.prefix]
            pre = [d for d in slot.prefix if d in nonunit]
            seen: dict[tuple, tuple[str, ...]] = {}
            for order in itertools.permutations(movable):
                seen.setdefault(self.order_signature(pre + list(order)), order)
            cache[key] = np.array([[index[d] for d in (*slot.prefix, *order, *unit)]
                                   for order in seen.values()], dtype=np.int64)
        return cache[key]

    @cached_property
    def _class_cache(self) -> dict:
        return {}

    # ---- turning a choice into a mapping --------------------------------------------------
    def to_mapping(self, factors: np.ndarray, orders: np.ndarray,
                   keeps: Sequence[frozenset[str]]) -> Mapping:
        """The Timeloop mapping of one choice (levels innermost first, all dims listed).

        ``factors`` is (slots, dims), ``orders`` (levels, dims) dimension indices innermost
        first, each starting with the level's constrained prefix, ``keeps`` one keep set per
        storage level (innermost first), so the mapping satisfies the constraints literally.
        """
        levels = []
        for li, name in enumerate(self.level_names):
            spatial: dict[str, int] = {}
            sperm = ""
            split = None
            temporal = {d: 1 for d in self.dims}
            for si, slot in enumerate(self.slots):
                if slot.level_index != li:
                    continue
                row = {d: int(factors[si, j]) for j, d in enumerate(self.dims)}
                if not slot.is_spatial:
                    temporal = row
                    continue
                spatial = row
                x_dims = self.spatial_split(si, factors[si])
                if x_dims is None:
                    raise SpecError(f"spatial factors {row} do not fit the fan-out of {name}",
                                    field=f"mapping target {name} (spatial)",
                                    fix="internal: the mapper emitted an unchecked choice")
                sperm, split = _spatial_permutation(slot, self.dims, row, x_dims)
            kept = keeps[li]
            levels.append(LevelMapping(
                target=name, temporal=temporal,
                temporal_permutation="".join(self.dims[j] for j in orders[li]), spatial=spatial,
                spatial_permutation=sperm, split=split,
                keep=tuple(ds for ds in self.dataspaces if ds in kept),
                bypass=tuple(ds for ds in self.dataspaces if ds not in kept)))
        return Mapping(tuple(levels))

    # ---- checking a mapping against the constraints ---------------------------------------
    def violations(self, mapping: Mapping, strict: bool = False) -> list[str]:
        """Constraint violations of a mapping (empty when it satisfies them).

        Loops of size 1 change nothing, so by default their position is ignored; ``strict``
        also requires each constrained permutation to be the literal innermost prefix and the
        constrained split to be the one written (what the mapper's own output satisfies).
        """
        problems: list[str] = []
        for si, slot in enumerate(self.slots):
            lm = mapping.for_level(slot.level)
            factors = dict(lm.spatial if slot.is_spatial else lm.temporal)
            where = f"{slot.level} ({slot.kind})"
            for dim, value in slot.fixed:
                if factors.get(dim, 1) != value:
                    problems.append(f"{where}: {dim} = {factors.get(dim, 1)}, constraint says {value}")
            nonunit = frozenset(d for d, f in factors.items() if f > 1)
            if slot.is_spatial:
                x, _ = lm.spatial_xy()
                x_nonunit = frozenset(d for d in x if x[d] > 1)
                if not _x_allowed(slot, self.dims, nonunit, x_nonunit):
                    problems.append(f"{where}: X dims {sorted(x_nonunit)} not allowed by the "
                                    f"constraint (permutation {''.join(slot.prefix)}, split {slot.split})")
                if strict and slot.split is not None and (
                        lm.split != slot.split
                        or not lm.spatial_permutation.startswith("".join(slot.prefix))):
                    problems.append(f"{where}: permutation/split not literally the constraint's")
            else:
                perm = lm.temporal_permutation
                order = [d for d in perm if d in nonunit] + sorted(nonunit - set(perm))
                pre = [d for d in slot.prefix if d in nonunit]
                if order[:len(pre)] != pre:
                    problems.append(f"{where}: loop order {''.join(order)} breaks the constraint "
                                    f"permutation {''.join(slot.prefix)}")
                if strict and not perm.startswith("".join(slot.prefix)):
                    problems.append(f"{where}: permutation {perm} does not start with "
                                    f"{''.join(slot.prefix)}")
        all_spaces = frozenset(self.dataspaces)
        for li, name in enumerate(self.level_names):
            lm = mapping.for_level(name)
            if lm.keep is None and lm.bypass is None:
                kept = all_spaces
            elif lm.keep is None:
                kept = all_spaces - frozenset(lm.bypass or ())
            else:
                kept = frozenset(lm.keep) - frozenset(lm.bypass or ())
            for ds, rule in zip(self.dataspaces, self.keep_rules[li]):
                if rule == "1" and ds not in kept:
                    problems.append(f"{name}: must keep {ds}")
                if rule == "0" and ds in kept:
                    problems.append(f"{name}: must bypass {ds}")
        return problems


# ---- capacity with packing and fan-out, over arrays of (partial) choices -------------------

_CHUNK = 1 << 17  # (partial choice, option) pairs tested per array pass (bounds memory)

@dataclass(frozen=True)
class Partial:
    """Partial factor choices: the option index of each chosen dimension (``choice`` (n, dims),
    0 where not chosen yet), each rank's tile extent per level (``extents``, one (n, levels)
    array per rank, unchosen dimensions counting as 1) and each spatial slot's fan-out in use."""

    choice: np.ndarray
    extents: tuple[np.ndarray, ...]
    fanout: np.ndarray

    @property
    def size(self) -> int:
        return self.choice.shape[0]

    def take(self, rows: np.ndarray) -> Partial:
        return Partial(self.choice[rows], tuple(e[rows] for e in self.extents), self.fanout[rows])


@dataclass(frozen=True)
class CapacityCheck:
    """Which factor choices fit every buffer (packed words of the kept tiles) and fan-out.

    A rank's extent is ``1 + sum(c * (bound - 1))`` over its terms, so adding one dimension to
    a partial choice adds one term to the ranks that use it: `extend` tests many (partial
    choice, option) pairs with a few array operations. Tiles only grow with factors, so a
    partial choice that does not fit never will. This is a pruning bound only; the engine
    (`evaluate_batch`) remains the judge of every mapping the mapper scores.
    """

    space: MapSpace
    ranks: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]  # (dataspace, ((dim, coef), ...))
    divisor: np.ndarray  # (levels, dataspaces) operands per word, 0 where not kept
    words: np.ndarray  # (levels,) capacity in words (int64 max when unbounded)
    fanouts: np.ndarray  # (spatial slots,) total fan-out
    last_slot: np.ndarray  # (levels,) index of each level's outermost slot

    @classmethod
    def build(cls, space: MapSpace, keep: np.ndarray) -> CapacityCheck:
        index = {d: j for j, d in enumerate(space.dims)}
        problem = space.problem
        ranks = tuple((di, tuple((index[t.dim], problem.coefficient(t.coefficient)) for t in rank))
                      for di, ds in enumerate(space.dataspaces)
                      for rank in problem.dataspace(ds).projection)
        divisor = np.where(np.asarray(keep, dtype=bool), np.array(space.packing, dtype=np.int64), 0)
        unbounded = np.iinfo(np.int64).max
        words = np.array([space.arch.level(n).size_words or unbounded for n in space.level_names],
                         dtype=np.int64)
        fanouts = np.array([int(np.prod(space.slots[i].fanout)) for i in space.spatial_slots],
                           dtype=np.int64)
        last = np.array([max(i for i, s in enumerate(space.slots) if s.level_index == li)
                         for li in range(len(space.level_names))], dtype=np.int64)
        return cls(space, ranks, divisor, words, fanouts, last)

    def root(self) -> Partial:
        """The one empty choice (every factor 1)."""
        levels = len(self.words)
        return Partial(np.zeros((1, len(self.space.dims)), dtype=np.int64),
                       tuple(np.ones((1, levels), dtype=np.int64) for _ in self.ranks),
                       np.ones((1, len(self.fanouts)), dtype=np.int64))

    def _ok(self, extents: Sequence[np.ndarray], fanout: np.ndarray) -> np.ndarray:
        """Rows whose packed kept tiles fit every level and whose fan-outs fit."""
        sizes: dict[int, np.ndarray] = {}
        for (di, _), extent in zip(self.ranks, extents):
            sizes[di] = sizes[di] * extent if di in sizes else extent
        needed = np.zeros_like(extents[0])
        for di, size in sizes.items():
            k = self.divisor[:, di]
            needed = needed + np.where(k > 0, packed_count(size, np.maximum(k, 1)), 0)
        return (needed <= self.words).all(axis=1) & (fanout <= self.fanouts).all(axis=1)

    def extend(self, partial: Partial, dim: int, options: np.ndarray, parent: np.ndarray,
               option: np.ndarray) -> Partial:
        """The pairs (``partial`` row ``parent[i]``, ``options[option[i]]`` for ``dim``) that
        fit, as a new `Partial`; ``options`` is (m, slots) factors of ``dim``."""
        bounds = np.cumprod(options, axis=1)[:, self.last_slot] - 1  # (m, levels)
        spatial = options[:, list(self.space.spatial_slots)]
        coefs = [sum(c for d, c in terms if d == dim) for _, terms in self.ranks]
        parts = []
        for start in range(0, len(parent), _CHUNK):
            p, o = parent[start:start + _CHUNK], option[start:start + _CHUNK]
            extents = [e[p] + c * bounds[o] if c else e[p] for e, c in zip(partial.extents, coefs)]
            fanout = partial.fanout[p] * spatial[o]
            ok = self._ok(extents, fanout)
            choice = partial.choice[p[ok]]
            choice[:, dim] = o[ok]
            parts.append(Partial(choice, tuple(e[ok] for e in extents), fanout[ok]))
        if not parts:
            return partial.take(np.zeros(0, dtype=np.int64))
        return Partial(np.concatenate([q.choice for q in parts]),
                       tuple(np.concatenate(e) for e in zip(*(q.extents for q in parts))),
                       np.concatenate([q.fanout for q in parts]))

    def fits(self, factors: np.ndarray) -> np.ndarray:
        """Full rows (n, slots, dims) that fit every buffer (fan-outs are `MapSpace.fanout_ok`)."""
        bounds = np.cumprod(factors, axis=1)[:, self.last_slot, :]  # (n, levels, dims)
        extents = [1 + sum(c * (bounds[:, :, d] - 1) for d, c in terms) for _, terms in self.ranks]
        return self._ok(extents, np.ones((factors.shape[0], len(self.fanouts)), dtype=np.int64))


def _depth_first(check: CapacityCheck, partial: Partial, options: Sequence[np.ndarray],
                 steps: Sequence[int], chunk: int, stop: Callable[[], bool] | None
                 ) -> Iterator[Partial]:
    """The completions of ``partial`` over the dimensions ``steps`` that fit, in the order a
    breadth-first enumeration lists them (by partial choice, then option), each step testing
    at most about ``chunk`` pairs at once; none after ``stop()`` holds."""
    if not steps:
        yield partial
        return
    j = steps[0]
    m = len(options[j])
    per = max(1, chunk // max(m, 1))
    for start in range(0, partial.size, per):
        if stop is not None and stop():
            return
        parents = np.arange(start, min(start + per, partial.size))
        child = check.extend(partial, j, options[j], np.repeat(parents, m),
                             np.tile(np.arange(m), len(parents)))
        if child.size:
            yield from _depth_first(check, child, options, steps[1:], chunk, stop)


# ---- building the space --------------------------------------------------------------------

def _x_allowed(slot: Slot, dims: tuple[str, ...], nonunit: frozenset[str],
               x_nonunit: frozenset[str]) -> bool:
    """Can Timeloop's split space put exactly ``x_nonunit`` (of the non-unit dims) on X?"""
    if not x_nonunit <= nonunit:
        return False
    prefix = slot.prefix
    free = [d for d in dims if d not in prefix]
    if slot.split is not None:
        s = slot.split
        if x_nonunit & set(prefix) != nonunit & set(prefix[:s]):
            return False
        room = max(0, s - len(prefix))
        free_x = len(x_nonunit - set(prefix))
        free_y = len((nonunit - set(prefix)) - x_nonunit)
        return free_x <= room and free_y <= len(free) - room
    ordered = [d for d in prefix if d in nonunit]
    for j in range(len(ordered) + 1):
        if x_nonunit == frozenset(ordered[:j]):
            return True
    return frozenset(ordered) <= x_nonunit


def _spatial_split(slot: Slot, dims: tuple[str, ...], factors: tuple[int, ...]) -> frozenset[str] | None:
    """First allowed X set (fewest X dims first) whose products fit the fan-out."""
    fx, fy = slot.fanout
    value = dict(zip(dims, factors))
    nonunit = [d for d in dims if value[d] > 1]
    for n in range(len(nonunit) + 1):
        for combo in itertools.combinations(nonunit, n):
            x = frozenset(combo)
            px = int(np.prod([value[d] for d in x])) if x else 1
            py = int(np.prod([value[d] for d in nonunit if d not in x])) if len(x) < len(nonunit) else 1
            if px <= fx and py <= fy and _x_allowed(slot, dims, frozenset(nonunit), x):
                return x
    return None


def _spatial_permutation(slot: Slot, dims: tuple[str, ...], factors: MappingType[str, int],
                         x_dims: frozenset[str]) -> tuple[str, int]:
    """A spatial permutation and split realizing ``x_dims`` on X (the constraint's when given)."""
    if slot.split is not None:
        prefix = list(slot.prefix)
        free = [d for d in dims if d not in prefix]
        room = max(0, slot.split - len(prefix))
        fx_nonunit = [d for d in free if d in x_dims]
        unit = [d for d in free if factors[d] == 1]
        fy_nonunit = [d for d in free if factors[d] > 1 and d not in x_dims]
        pad = room - len(fx_nonunit)
        order = prefix + fx_nonunit + unit[:pad] + fy_nonunit + unit[pad:]
        return "".join(order), slot.split
    rank = {d: i for i, d in enumerate(list(slot.prefix) + [d for d in dims if d not in slot.prefix])}
    x = sorted((d for d in dims if d in x_dims), key=rank.__getitem__)
    y = sorted((d for d in dims if d not in x_dims and factors[d] > 1), key=rank.__getitem__)
    unit = [d for d in dims if d not in x_dims and factors[d] == 1]
    return "".join(x + y + unit), len(x)
