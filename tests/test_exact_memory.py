"""The exact mapper runs in bounded memory however large the mapspace is.

It streams a group's factor choices depth first (`MapSpace.stream_factors`) and decodes loop
orders block by block (`order_blocks`) instead of listing either whole: the stream gives exactly
the choices of the breadth-first enumeration, in its order, while holding a bounded number of
partial choices, and the blocks give exactly the product of the order classes. A real
`quantmap map` of a large layer on the shipped Simba render (only the hardware's constraints, so
groups hold hundreds of thousands of factor choices) then runs under an address-space limit
that the listing of one such group alone exceeds.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wrapper.engine import mapspace as mapspace_module
from wrapper.engine.bounds import BoundsInterrupted, compute_bound, group_bounds
from wrapper.engine.constraints import build_mapspace
from wrapper.engine.exact import certified_search, outer_assignments
from wrapper.engine.orderblocks import order_blocks
from wrapper.spec.arch import load_arch
from wrapper.spec.certificate import TIME
from wrapper.spec.costmodel import MapperSettings
from wrapper.spec.problem import load_problem
from wrapper.spec.templates import render_arch

MEMORY_LIMIT = 2 << 30  # bytes of address space for the mapping subprocess

PROBLEM = """problem:
  shape:
    name: CNN-Layer
    dimensions: [C, M, R, S, N, P, Q]
    coefficients:
    - {{name: Wstride, default: 1}}
    - {{name: Hstride, default: 1}}
    - {{name: Wdilation, default: 1}}
    - {{name: Hdilation, default: 1}}
    data-spaces:
    - name: Weights
      projection: [[[C]], [[M]], [[R]], [[S]]]
    - name: Inputs
      projection: [[[N]], [[C]], [[R, Wdilation], [P, Wstride]], [[S, Hdilation], [Q, Hstride]]]
    - name: Outputs
      projection: [[[N]], [[M]], [[Q]], [[P]]]
      read-write: True
  instance: {{C: {C}, M: {M}, R: 3, S: 3, N: 1, P: {P}, Q: {P}}}
"""


def _simba(folder: Path, constraints: str, **bounds: int) -> list[Path]:
    """The shipped Simba render (its constraint files whose name has ``constraints`` in it) and
    a 3x3 convolution of the given C, M and P = Q, written as files."""
    paths = []
    for name, text in render_arch("simba").items():
        if name.startswith("constraints/") and constraints not in name:
            continue
        paths.append(folder / name)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(text)
    problem = folder / "layer.yaml"
    problem.write_text(PROBLEM.format(**bounds))
    return [*paths, problem]


def _space(folder: Path, constraints: str, **bounds: int):
    *arch_files, problem = _simba(folder, constraints, **bounds)
    space = build_mapspace(load_arch(*arch_files), load_problem(problem))
    keep = np.array([[ds in choice[0] for ds in space.dataspaces] for choice in space.keep_choices])
    return space, keep


def test_the_stream_lists_the_enumeration_holding_a_bounded_frontier(tmp_path, monkeypatch):
    """With blocks of 512, a space of tens of thousands of factor choices streams to exactly
    the breadth-first enumeration (same rows, same order), and no step ever holds more than
    512 partial choices."""
    space, keep = _space(tmp_path, "constraints", C=16, M=32, P=28)
    every = space.enumerate_all(keep, 1 << 40)  # breadth first, every step held whole
    assert len(every) > 40 * 512
    held = []
    extend = mapspace_module.CapacityCheck.extend

    def spy(self, partial, dim, options, parent, option):
        out = extend(self, partial, dim, options, parent, option)
        held.append(out.size)
        return out

    monkeypatch.setattr(mapspace_module.CapacityCheck, "extend", spy)
    blocks = list(space.stream_factors(keep, chunk=512))
    assert np.array_equal(np.concatenate(blocks), every)
    assert max(held) <= 512 and all(len(b) < 2 * 512 for b in blocks)


def test_the_stream_stops_when_asked(tmp_path):
    space, keep = _space(tmp_path, "constraints", C=16, M=32, P=28)
    assert list(space.stream_factors(keep, chunk=512, stop=lambda: True)) == []


def test_order_blocks_are_the_product_of_the_order_classes(tmp_path):
    """Blocks of 7 decode to every combination of each level's order classes, choice by choice,
    the last level varying fastest, as `itertools.product` lists them."""
    space, keep = _space(tmp_path, "arch_constraints", C=8, M=16, P=14)
    rows = next(space.stream_factors(keep, chunk=64))[:12]
    temporal = list(space.temporal_slots)
    expected_rows, expected_orders = [], []
    for i, row in enumerate(rows):
        classes = [space.order_classes(li, frozenset(d for j, d in enumerate(space.dims)
                                                     if row[si, j] > 1))
                   for li, si in enumerate(temporal)]
        for combo in itertools.product(*classes):
            expected_rows.append(i)
            expected_orders.append(np.stack(combo))
    assert len(expected_rows) > 7 * len(rows)
    nonunit = rows[:, temporal, :] > 1
    blocks = list(order_blocks(space, nonunit, 0, 7))
    assert all(len(index) <= 7 for index, _ in blocks)
    assert np.array_equal(np.concatenate([index for index, _ in blocks]), expected_rows)
    assert np.array_equal(np.concatenate([orders for _, orders in blocks]), expected_orders)


def test_a_search_out_of_time_while_bounding_its_groups_reports_the_compute_bound(tmp_path):
    """Bounding the DRAM groups of a large layer takes hundreds of analysis blocks; the time
    limit stops it between two, and the sampling mapper answers with the compute bound as the
    honest gap."""
    space, _ = _space(tmp_path, "arch_constraints", C=16, M=64, P=240)
    keeps = list(itertools.product(*space.keep_choices))
    outer, _ = outer_assignments(space)
    with pytest.raises(BoundsInterrupted):
        group_bounds(space, keeps[0], outer, 1, None, stop=lambda: True)
    result = certified_search(space, None, MapperSettings(exact_seconds=1e-9,
                                                          max_evaluations=500))
    certificate = result.certificate
    assert result.stats.valid and certificate.stopped_by == TIME and not certificate.optimal
    assert certificate.lower_bound == pytest.approx(compute_bound(space, None).metric("edp")[0])


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_AS"), reason="no address-space limit here")
def test_mapping_a_large_layer_stays_within_an_address_space_limit(tmp_path, repo_root):
    """The default problem of the exercises (3 to 32 channels, 112x112) on the Simba render with
    only its hardware constraints: the groups by DRAM factors hold up to hundreds of thousands
    of factor choices with thousands of loop orders each (listing one group took more than
    5 GiB). Under a 2 GiB address-space limit the map succeeds: the exact search ends proven or
    stopped by its time limit with an honest gap, and the mapping is valid."""
    inputs = _simba(tmp_path, "arch_constraints", C=3, M=32, P=112)
    mapper = tmp_path / "mapper.yaml"
    mapper.write_text("mapper: {exact-seconds: 10, max-evaluations: 2000}\n")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "wrapper.map", *map(str, inputs), str(mapper),
                           "-o", str(tmp_path / "out"), "--json", str(tmp_path / "stats.json")],
                          capture_output=True, text=True, cwd=repo_root, env=env, check=False,
                          timeout=600, preexec_fn=_limit_memory)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    certificate = stats["certificate"]
    assert stats["valid"] and certificate["stopped_by"] in ("time", "bound", "exhausted")
    assert 0 < certificate["lower_bound"] <= stats["energy_pj"] * stats["cycles"]


def test_a_sample_too_large_to_draw_is_read_from_the_stream(tmp_path, monkeypatch):
    """Where random draws keep missing, the regrown sample would outgrow memory; past the cap
    it is a seeded uniform sample of the stream instead: distinct choices of the space, in
    stream order, all of them (and complete) when the space is smaller than the sample."""
    space, keep = _space(tmp_path, "constraints", C=16, M=32, P=28)
    every = space.enumerate_all(keep, 1 << 40)
    monkeypatch.setattr(mapspace_module, "SAMPLE_CAP", 0)
    draw = mapspace_module.MapSpace._enumerate
    monkeypatch.setattr(mapspace_module.MapSpace, "_enumerate",  # every draw misses
                        lambda self, *args, **kw: (draw(self, *args, **kw)[0][:0], False))
    rows, complete = space.enumerate_factors(keep, limit=1000, rng=np.random.default_rng(1))
    position = {row.tobytes(): i for i, row in enumerate(every)}
    where = [position[row.tobytes()] for row in rows]
    assert len(rows) == 1000 and not complete and where == sorted(set(where))
    assert where[-1] > len(every) // 2  # drawn from the whole stream, not its start
    rows, complete = space.enumerate_factors(keep, limit=len(every) + 1)
    assert complete and np.array_equal(rows, every)
