"""Timeloop v0.4 architecture specs (``nodes:`` with !Container/!Component) read as the v0.3 tree:
the Eyeriss reference written in v0.4 gives the same levels as the v0.3 template render."""

from __future__ import annotations

import os
import re
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


# A small design written for these tests: a !Parallel of per-dataspace registers under a
# fan-out container with its own spatial constraints, variables and expressions in attributes.
PARALLEL_V04 = """
variables:
  version: 0.4
  word: 8
  glb_words: 2 ** 12
architecture:
  version: 0.4
  nodes:
  - !Container
    name: chip
    attributes: {technology: "45nm", datawidth: word}
  - !Component
    name: DRAM
    class: DRAM
    attributes: {type: "LPDDR4", width: 64}
  - !Component
    name: glb
    class: SRAM
    attributes: {depth: glb_words // 8, width: word * 8}
    constraints:
      dataspace: {keep: [Inputs, Outputs], bypass: [Weights]}
      temporal: {permutation: [N]}
  - !Container
    name: lane
    spatial: {meshX: 4}
    constraints:
      spatial: {factors: [R=1, S=1, P=1, Q=1, N=1], permutation: [M, C], split: 999}
  - !Parallel
    nodes:
    - !Component
      name: wreg
      class: regfile
      attributes: {depth: 4, width: word}
      constraints:
        dataspace: {keep: [Weights]}
    - !Component
      name: oreg
      class: regfile
      attributes: {depth: 2, width: "max(word, 16)", datawidth: 16}
      constraints:
        dataspace: {keep: [Outputs]}
    - !Nothing {}
  - !Component
    name: mac
    class: intmac
    attributes: {multiplier_width: word, adder_width: 2 * word}
"""

PROBLEM_V04 = """
problem:
  version: 0.4
  shape:
    name: small
    dimensions: [C, M, R, S, N, P, Q]
    coefficients: [{name: Wstride, default: 1}]
    data_spaces:
    - {name: Weights, projection: [[[C]], [[M]], [[R]], [[S]]]}
    - {name: Inputs, projection: [[[N]], [[C]], [[R], [P, Wstride]], [[S], [Q]]]}
    - {name: Outputs, projection: [[[N]], [[M]], [[Q]], [[P]]], read_write: true}
  instance: {C: 4, M: 8, R: 3, S: 3, N: 1, P: 6, Q: 6, Wstride: 1, W: 8}
"""


def _write(tmp_path: Path, **texts: str) -> list[Path]:
    paths = []
    for name, text in texts.items():
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(text)
    return paths


def test_v04_parallel_fanout_constraints_and_expressions(tmp_path: Path) -> None:
    from wrapper.spec.inputs import load_inputs
    inputs = load_inputs(_write(tmp_path, arch=PARALLEL_V04, problem=PROBLEM_V04))
    arch = inputs.arch
    assert arch.level_names == ("DRAM", "glb", "inter_lane_spatial", "wreg", "oreg")
    glb = arch.level("glb")
    assert (glb.depth, glb.width_bits, glb.word_bits, glb.block_size) == (512, 64, 8, 8)
    assert arch.level("oreg").word_bits == 16 and arch.level("oreg").width_bits == 16
    assert arch.level("wreg").instances == 4 and arch.fanout("inter_lane_spatial") == (4, 1)
    assert arch.arithmetic.attributes["adder_width"] == 16
    spatial = arch.constraints_for("inter_lane_spatial", "spatial")[0]
    assert spatial.split == 999 and spatial.permutation == "MC" and spatial.factors["R"] == 1
    wreg = arch.constraints_for("wreg", "bypass")[0]
    assert wreg.keep == ("Weights",) and set(wreg.bypass) == {"Inputs", "Outputs"}
    assert arch.constraints_for("glb", "temporal")[0].permutation == "N"
    assert inputs.problem.bounds["C"] == 4 and inputs.problem.shape.dataspace("Outputs").read_write


def test_v04_design_maps_and_evaluates_with_its_dataflow(tmp_path: Path) -> None:
    from wrapper.backends import evaluate_files, map_files
    from wrapper.spec.mapping import load_mapping
    paths = _write(tmp_path, arch=PARALLEL_V04, problem=PROBLEM_V04,
                   mapper="mapper: {exact: false, max_evaluations: 300}\n")
    out, mapping, stats = map_files(paths, tmp_path / "out")
    assert stats.valid
    assert mapping.for_level("inter_lane_spatial").temporal in ({}, {d: 1 for d in "CMRSNPQ"}) \
        or all(v == 1 for v in mapping.for_level("inter_lane_spatial").temporal.values())
    assert mapping.for_level("wreg").kept(("Weights", "Inputs", "Outputs")) == {"Weights"}
    assert mapping.for_level("glb").kept(("Weights", "Inputs", "Outputs")) == {"Inputs", "Outputs"}
    spatial = mapping.for_level("inter_lane_spatial").spatial or {}
    assert all(spatial.get(d, 1) == 1 for d in "RSPQN")
    again = evaluate_files([*paths[:2], out])
    assert again.cycles == stats.cycles and abs(again.energy_pj - stats.energy_pj) < 1e-6 * stats.energy_pj
    assert load_mapping(out).targets


@pytest.mark.parametrize("text, field, message", [
    ("architecture: {version: 0.4, nodes: [!Component {class: SRAM}]}", "nodes[0].name",
     "missing or not a plain name"),
    ("architecture: {version: 0.4, nodes: [!Container {name: c, spatial: {meshX: 2}, "
     "constraints: {temporal: {factors: [C=1]}}}]}", "constraints.temporal", "does not apply"),
    ("architecture: {version: 0.4, nodes: [!Container {name: c, constraints: "
     "{spatial: {factors: [C=1]}}}]}", "nodes[0].constraints", "no fan-out"),
    ("architecture: {version: 0.4, nodes: [!Component {name: b, class: SRAM, constraints: "
     "{dataspaces: {keep: [Inputs]}}}]}", "constraints.dataspaces", "unknown constraint kind"),
    ("architecture: {version: 0.4, nodes: [!Component {name: b, class: SRAM, constraints: "
     "{temporal: {order: [C]}}}]}", "constraints.temporal.order", "unknown key"),
    ("architecture: {version: 0.4, nodes: [!Container {name: c, spatial: {meshX: 0}}]}",
     "spatial.meshX", "not a whole number"),
    ("architecture: {version: 0.4, nodes: [!Component {name: b, class: SRAM, "
     "attributes: {depth: 1 // 0}}]}", "attributes.depth", "fails"),
    ("architecture: {version: 0.4, nodes: [!Parallel {nodes: [!Container {name: c}]}]}",
     "nodes[0].nodes[0]", "inside !Parallel"),
    ("architecture: {version: 0.4, nodes: [!Component {name: b, class: SRAM, "
     "sparse_optimizations: {}}]}", "sparse_optimizations", "sparse feature"),
])
def test_v04_bad_architecture_gives_one_line(text: str, field: str, message: str) -> None:
    data = parse_yaml_text(text, "spec.yaml")
    with pytest.raises(SpecError, match=message) as caught:
        arch_from_dict(data, "spec.yaml")
    assert field in str(caught.value) and "spec.yaml" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_v04_problem_densities_are_refused(tmp_path: Path) -> None:
    from wrapper.spec.problem import load_problem
    path = _write(tmp_path, problem=PROBLEM_V04.replace("W: 8}", "W: 8, densities: "
                                                                 "{Weights: 0.5}}"))[0]
    with pytest.raises(SpecError, match="densities are not supported"):
        load_problem(path)


def test_v04_problem_extra_instance_keys_are_noted(tmp_path: Path, capsys) -> None:
    from wrapper.spec.problem import load_problem
    path = _write(tmp_path, problem=PROBLEM_V04)[0]
    assert load_problem(path).bounds["P"] == 6
    assert "problem.instance.W is neither a dimension nor a coefficient" in capsys.readouterr().err


def test_jinja2_top_level_file_is_refused(tmp_path: Path) -> None:
    from wrapper.spec.yamlio import load_yaml_file
    path = tmp_path / "top.yaml.jinja2"
    path.write_text("{{add_to_path(cwd())}}\nproblem: {{include('p.yaml', 'problem')}}\n")
    with pytest.raises(SpecError, match="Jinja2 templates .* are not supported"):
        load_yaml_file(path)


# The official exercises' example designs, where a copy is given (QUANTMAP_EXERCISES: the
# extracted example_designs folder that holds eyeriss_like/, _components/, _include/).
EXERCISES = os.environ.get("QUANTMAP_EXERCISES")
DESIGNS = ("eyeriss_like", "simba_like", "simple_weight_stationary", "simple_output_stationary")
needs_exercises = pytest.mark.skipif(
    not EXERCISES or not Path(EXERCISES, "_include", "default_problem.yaml").is_file(),
    reason="QUANTMAP_EXERCISES does not point at the exercises' example_designs folder")


def _design_files(design: str, *extra: str) -> list[Path]:
    root = Path(EXERCISES or ".")
    return [root / design / "arch.yaml", *sorted((root / "_components").glob("*.yaml")),
            root / "_include" / "default_problem.yaml", *(root / design / e for e in extra)]


@needs_exercises
@pytest.mark.parametrize("design", DESIGNS)
def test_exercise_design_reproduces_the_stored_cycles(design: str) -> None:
    """The stored Timeloop v4 mapping, evaluated with the stored ERT: cycles equal, energy
    within 3% (the built-in engine's default accounting also counts output fills)."""
    from wrapper.backends import evaluate_files
    ref = Path(EXERCISES, design, "ref_outputs", "default_problem")
    stats = evaluate_files(_design_files(design, f"ref_outputs/default_problem/"
                                                 "timeloop-mapper.map.yaml",
                                         "ref_outputs/default_problem/timeloop-mapper.ERT.yaml"))
    text = (ref / "timeloop-mapper.stats.txt").read_text()
    cycles = int(re.search(r"^Cycles: (\d+)", text, re.M)[1])
    energy_uj = float(re.search(r"^Energy: ([\d.]+) uJ", text, re.M)[1])
    assert stats.cycles == cycles
    assert abs(stats.energy_pj / 1e6 - energy_uj) / energy_uj < 0.03


@pytest.mark.parametrize("template", ["eyeriss", "simba"])
def test_render_v04_reads_as_the_v03_render(template: str, tmp_path: Path) -> None:
    from wrapper.commands.arch import main
    for spec_format in ("v0.3", "v0.4"):
        assert main(["render", template, "-o", str(tmp_path / spec_format),
                     "--format", spec_format]) == 0
    loaded = []
    for spec_format in ("v0.3", "v0.4"):
        folder = tmp_path / spec_format
        loaded.append(load_arch(folder / f"{template}.yaml",
                                *sorted(folder.glob("components/*.yaml")),
                                *sorted(folder.glob("constraints/*.yaml"))))
    assert "nodes:" in (tmp_path / "v0.4" / f"{template}.yaml").read_text()
    assert "!Container" in (tmp_path / "v0.4" / f"{template}.yaml").read_text()
    assert loaded[0].levels == loaded[1].levels
    assert loaded[0].arithmetic == loaded[1].arithmetic
    assert loaded[0].constraints == loaded[1].constraints
