"""Timeloop v0.4 architecture specs (``nodes:`` with !Container/!Component) read as the v0.3 tree:
the Eyeriss reference written in v0.4 gives the same levels as the v0.3 template render."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrapper.errors import SpecError
from wrapper.spec.arch import arch_from_dict, load_arch
from wrapper.spec.templates import render_arch
from wrapper.spec.yamlio import parse_yaml_text

EYERISS_V04 = """
architecture:
  version: 0.4
  nodes:
  - !Container
    name: system
  - !Component
    name: DRAM
    class: DRAM
    attributes: {type: "LPDDR4", width: 64, block-size: 4, word-bits: 16}
  - !Container
    name: eyeriss
    attributes: {technology: "45nm"}
  - !Component
    name: shared_glb
    class: smartbuffer_SRAM
    attributes: {memory_depth: 12800, memory_width: 64, n_banks: 25, block-size: 4,
                 word-bits: 16, read_bandwidth: 16, write_bandwidth: 16}
  - !Component
    name: DummyBuffer
    class: regfile
    spatial: {meshX: 14}
    attributes: {depth: 16, width: 16, word-bits: 16, block-size: 1}
  - !Container
    name: PE
    spatial: {meshX: 14, meshY: 12}
  - !Component
    name: ifmap_spad
    class: smartbuffer_RF
    attributes: {memory_depth: 12, memory_width: 16, block-size: 1, word-bits: 16,
                 read_bandwidth: 2, write_bandwidth: 2}
  - !Component
    name: weights_spad
    class: smartbuffer_SRAM
    attributes: {memory_depth: 224, memory_width: 16, block-size: 1, word-bits: 16,
                 read_bandwidth: 2, write_bandwidth: 2}
  - !Component
    name: psum_spad
    class: smartbuffer_RF
    attributes: {memory_depth: 24, memory_width: 16, update_fifo_depth: 2, block-size: 1,
                 word-bits: 16, read_bandwidth: 2, write_bandwidth: 2}
  - !Component
    name: mac
    class: intmac
    attributes: {datawidth: 16}
"""


def _template_arch(tmp_path: Path):
    paths = []
    for rel, text in render_arch("eyeriss").items():
        paths.append(tmp_path / rel)
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(text)
    return load_arch(*paths), [p for p in paths if "components" in str(p)]


def test_v04_eyeriss_reads_as_the_v03_template(tmp_path: Path) -> None:
    reference, components = _template_arch(tmp_path)
    v04 = tmp_path / "eyeriss_v04.yaml"
    v04.write_text(EYERISS_V04)
    arch = load_arch(v04, *components)
    assert arch.levels == reference.levels
    assert arch.arithmetic == reference.arithmetic
    assert [lv.path for lv in arch.levels] == [lv.path for lv in reference.levels]
    assert arch.spec["architecture"]["version"] == 0.3, "Timeloop and Accelergy get the tree"


def test_v04_node_of_unknown_type_names_it() -> None:
    data = parse_yaml_text("architecture:\n  version: 0.4\n  nodes:\n"
                           "  - !Mesh {name: branches}\n", "spec.yaml")
    with pytest.raises(SpecError, match="unsupported node type !Mesh"):
        arch_from_dict(data, "spec.yaml")
