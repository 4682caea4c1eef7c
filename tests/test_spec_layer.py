"""The spec layer reads every golden problem, mapping and architecture of the real tools."""

from __future__ import annotations

import pytest
from conftest import ALL_GOLDEN_RECORDS, record_arch

from wrapper.spec.mapping import mapping_from_dict, mapping_to_dict, validate_mapping
from wrapper.spec.problem import (
    CNN_LAYER_SHAPE,
    DEPTHWISE_SHAPE,
    problem_from_dict,
    problem_to_dict,
)
from wrapper.spec.yamlio import dump_yaml_text, parse_yaml_text

RECORD_IDS = [r["record_id"] for r in ALL_GOLDEN_RECORDS]


@pytest.mark.parametrize("record", ALL_GOLDEN_RECORDS, ids=RECORD_IDS)
def test_golden_problem_and_mapping_round_trip_and_validate(record):
    problem = problem_from_dict(parse_yaml_text(record["problem_yaml"]), record["record_id"])
    again = problem_from_dict(parse_yaml_text(dump_yaml_text(problem_to_dict(problem))))
    assert again == problem, f"{record['record_id']}: problem changed in a round trip"
    mapping = mapping_from_dict(parse_yaml_text(record["mapping_yaml"]), record["record_id"])
    again_map = mapping_from_dict(parse_yaml_text(dump_yaml_text(mapping_to_dict(mapping))))
    assert again_map == mapping, f"{record['record_id']}: mapping changed in a round trip"
    validate_mapping(mapping, record_arch(record), problem, record["record_id"])


def test_golden_problem_shapes_are_the_builtin_shapes(shared_dir):
    by_shape = {problem_from_dict(parse_yaml_text(r["problem_yaml"])).shape.name: r
                for r in ALL_GOLDEN_RECORDS}
    assert problem_from_dict(parse_yaml_text(by_shape["CNN-Layer"]["problem_yaml"])).shape == CNN_LAYER_SHAPE
    dw = problem_from_dict(parse_yaml_text(by_shape["Depthwise-CNN-Layer"]["problem_yaml"]))
    assert dw.shape == DEPTHWISE_SHAPE
    assert dw.macs == dw.bounds["C"] * dw.bounds["P"] * dw.bounds["Q"] * dw.bounds["R"] * dw.bounds["S"]


@pytest.mark.parametrize("arch_name,expected", [
    ("eyeriss", [("DRAM", None, 4, 1), ("shared_glb", 51200, 4, 1), ("DummyBuffer", 16, 1, 14),
                 ("ifmap_spad", 12, 1, 168), ("weights_spad", 224, 1, 168), ("psum_spad", 24, 1, 168)]),
    ("simba", [("DRAM", None, 4, 1), ("GlobalBuffer", 32768, 16, 1), ("PEInputBuffer", 32768, 4, 16),
               ("PEWeightBuffer", 16384, 4, 64), ("PEAccuBuffer", 128, 1, 64),
               ("PEWeightRegs", 1, 1, 256)]),
])
def test_arch_levels_match_timeloop_specs(arch_name, expected, shared_dir):
    record = next(r for r in ALL_GOLDEN_RECORDS if r["arch"] == arch_name)
    arch = record_arch(record)
    got = [(lv.name, lv.size_words, lv.block_size, lv.instances) for lv in arch.levels]
    assert got == expected
    # The golden stats list the same specs innermost first.
    for level, stats in zip(arch.inner_to_outer, record["results"]["storage"]):
        assert level.name == stats["name"]
        assert level.size_words == stats["specs"]["Size"]
        assert level.word_bits == stats["specs"]["Word bits"]
        assert level.instances == stats["specs"]["Instances"]
    assert arch.arithmetic.instances == record["results"]["mac"]["instances"]


def test_eyeriss_fanout_follows_the_mesh(shared_dir):
    arch = record_arch(next(r for r in ALL_GOLDEN_RECORDS if r["arch"] == "eyeriss"))
    assert arch.fanout("shared_glb") == (14, 1)
    assert arch.fanout("DummyBuffer") == (1, 12)
    assert arch.fanout("psum_spad") == (1, 1)
