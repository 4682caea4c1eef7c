"""A table-driven corpus of malformed inputs for every command-line tool.

Each `Case` is a set of files (small valid specs with one thing broken), the argument list of one
CLI, and the file the error must name. The generator crosses hostile file contents (alias bombs,
binary data, deep nesting, duplicate keys) with every input file, and bad values (wrong types,
non-finite, fractional, out of range, huge) with every field each tool reads, so a fix has to be
in the loader and the typed readers, not in one message.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import yaml

ARCH = {"architecture": {"version": 0.3, "subtree": [{
    "name": "system",
    "local": [{"name": "DRAM", "class": "DRAM",
               "attributes": {"word-bits": 16, "width": 64, "block-size": 4}}],
    "subtree": [{
        "name": "chip",
        "local": [{"name": "GLB", "class": "SRAM",
                   "attributes": {"depth": 1024, "width": 64, "block-size": 4, "word-bits": 16}}],
        "subtree": [{
            "name": "PE[0..3]",
            "local": [{"name": "RF", "class": "regfile",
                       "attributes": {"depth": 64, "width": 16, "block-size": 1,
                                      "word-bits": 16, "meshX": 4}},
                      {"name": "mac", "class": "intmac",
                       "attributes": {"datawidth": 16, "meshX": 4}}]}]}]}]}}
PROBLEM = {"problem": {"shape": "cnn-layer",
                       "instance": {"C": 4, "M": 8, "R": 3, "S": 3, "N": 1, "P": 4, "Q": 4}}}
CUSTOM_SHAPE = {"name": "tiny", "dimensions": ["C", "M"],
                "coefficients": [{"name": "stride", "default": 1}],
                "data-spaces": [{"name": "Weights", "projection": [[["C"]], [["M"]]]},
                                {"name": "Inputs", "projection": [[["C"]]]},
                                {"name": "Outputs", "projection": [[["M"]]], "read-write": True}]}
CONSTRAINTS = {"mapspace_constraints": {"targets": [
    {"target": "RF", "type": "temporal", "factors": "R=3 S=3", "permutation": "RS"},
    {"target": "GLB", "type": "spatial", "factors": "M=4"}]}}
# The corpus checks input handling, not mapping quality: the sampling mapper is enough.
MAPPER = {"mapper": {"budget": 200, "seed": 0, "exact": False}}
MAPPING = {"mapping": [
    {"target": "RF", "type": "datatype", "keep": ["Weights", "Outputs"], "bypass": ["Inputs"]},
    {"target": "GLB", "type": "datatype", "keep": ["Weights", "Inputs", "Outputs"], "bypass": []},
    {"target": "DRAM", "type": "datatype", "keep": ["Weights", "Inputs", "Outputs"], "bypass": []},
    {"target": "RF", "type": "temporal", "factors": "C1 M2 R3 S3 N1 P4 Q4",
     "permutation": "RSCMNPQ"},
    {"target": "GLB", "type": "spatial", "factors": "C1 M4 R1 S1 N1 P1 Q1",
     "permutation": "MCRSNPQ", "split": 1},
    {"target": "GLB", "type": "temporal", "factors": "C1 M1 R1 S1 N1 P1 Q1",
     "permutation": "CMRSNPQ"},
    {"target": "DRAM", "type": "temporal", "factors": "C4 M1 R1 S1 N1 P1 Q1",
     "permutation": "CMRSNPQ"}]}
ERT = {"ERT": {"version": 0.3, "tables": [
    {"name": "system.DRAM", "actions": [{"name": "read", "energy": 512.0}]}]}}
ART = {"ART": {"version": 0.3, "tables": [{"name": "system.DRAM", "area": 0.0}]}}
COMPONENTS = {"compound_components": {"version": 0.3, "classes": [
    {"name": "smartbuffer", "attributes": {"depth": 16}}]}}
EXPERIMENT = {"name": "corpus", "search": {"generations": 1, "parents": 4, "offspring": 4},
              "final": {"points": 0}}

# The same design and layer in Timeloop v0.4 (node tags under the "!" key, written as tags).
ARCH_V04 = {"variables": {"version": 0.4, "word": 16},
            "architecture": {"version": 0.4, "nodes": [
    {"!": "Container", "name": "system"},
    {"!": "Component", "name": "DRAM", "class": "DRAM",
     "attributes": {"datawidth": "word", "width": 64}},
    {"!": "Container", "name": "chip"},
    {"!": "Component", "name": "GLB", "class": "SRAM",
     "attributes": {"depth": 1024, "width": "4 * word", "datawidth": 16}},
    {"!": "Container", "name": "PE", "spatial": {"meshX": 4}},
    {"!": "Parallel", "nodes": [
        {"!": "Component", "name": "RF", "class": "regfile",
         "attributes": {"depth": 64, "width": 16, "datawidth": 16},
         "constraints": {"dataspace": {"keep": ["Weights", "Outputs"], "bypass": ["Inputs"]},
                         "temporal": {"factors": ["R=3", "S=3"]}}},
        {"!": "Nothing"}]},
    {"!": "Component", "name": "mac", "class": "intmac", "attributes": {"datawidth": 16}}]}}
PROBLEM_V04 = {"problem": {"version": 0.4, "shape": {
    "name": "conv", "dimensions": ["C", "M", "R", "S", "N", "P", "Q"],
    "coefficients": [{"name": "Wstride", "default": 1}],
    "data_spaces": [{"name": "Weights", "projection": [[["C"]], [["M"]], [["R"]], [["S"]]]},
                    {"name": "Inputs", "projection": [[["N"]], [["C"]],
                                                      [["R"], ["P", "Wstride"]], [["S"], ["Q"]]]},
                    {"name": "Outputs", "projection": [[["N"]], [["M"]], [["Q"]], [["P"]]],
                     "read_write": True}]},
    "instance": {"C": 4, "M": 8, "R": 3, "S": 3, "N": 1, "P": 4, "Q": 4}}}

BASES: dict[str, Any] = {"arch04.yaml": ARCH_V04, "problem04.yaml": PROBLEM_V04,"arch.yaml": ARCH, "problem.yaml": PROBLEM, "mapping.yaml": MAPPING,
                         "constraints.yaml": CONSTRAINTS, "mapper.yaml": MAPPER, "ert.yaml": ERT, "art.yaml": ART,
                         "components.yaml": COMPONENTS,
                         "exp.yaml": EXPERIMENT}

# Which tool reads which input files (argument lists; {d} is the case folder).
EVALUATE = ["evaluate", "{d}/arch.yaml", "{d}/problem.yaml", "{d}/mapping.yaml"]
CHECK = ["check-mapping", "{d}/arch.yaml", "{d}/problem.yaml", "{d}/mapping.yaml"]
MAP = ["map", "{d}/arch.yaml", "{d}/problem.yaml", "{d}/constraints.yaml", "{d}/mapper.yaml",
       "-o", "{d}/out"]
SHOW = ["arch", "show", "{d}/arch.yaml"]
EVALUATE04 = ["evaluate", "{d}/arch04.yaml", "{d}/problem04.yaml", "{d}/mapping.yaml"]
MAP04 = ["map", "{d}/arch04.yaml", "{d}/problem04.yaml", "{d}/mapper.yaml", "-o", "{d}/out"]
SHOW04 = ["arch", "show", "{d}/arch04.yaml"]
EXPLORE = ["explore", "--config", "{d}/exp.yaml", "-o", "{d}/run"]
READERS = {"arch.yaml": [EVALUATE, MAP, SHOW], "problem.yaml": [EVALUATE, MAP],
           "arch04.yaml": [EVALUATE04, MAP04, SHOW04], "problem04.yaml": [EVALUATE04, MAP04],
           "mapping.yaml": [EVALUATE, CHECK], "constraints.yaml": [MAP],
           "mapper.yaml": [MAP], "ert.yaml": [EVALUATE + ["{d}/ert.yaml"]],
           "art.yaml": [EVALUATE + ["{d}/ert.yaml", "{d}/art.yaml"]],
           "components.yaml": [SHOW + ["{d}/components.yaml"]], "exp.yaml": [EXPLORE]}


@dataclass
class Case:
    """One malformed input: files to write, the CLI arguments, the text the error must name."""

    name: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    names: str | None = None  # the file (or option) the one error line must mention
    subprocess: bool = False


class _TagDumper(yaml.SafeDumper):
    """Writes a map with a "!" key as a tagged node (``!Container {...}``), as v0.4 specs are."""


def _tagged_map(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    if isinstance(data.get("!"), str):
        return dumper.represent_mapping(f"!{data['!']}",
                                        {k: v for k, v in data.items() if k != "!"})
    return dumper.represent_dict(data)


_TagDumper.add_representer(dict, _tagged_map)


def _dump(data: Any) -> bytes:
    return yaml.dump(data, Dumper=_TagDumper, sort_keys=False).encode()


def _files(**changed: bytes) -> dict[str, bytes]:
    out = {name: _dump(data) for name, data in BASES.items()}
    out.update(changed)
    return out


def _set(data: Any, path: tuple, value: Any) -> Any:
    """A deep copy of ``data`` with the item at ``path`` replaced (``...`` deletes it)."""
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def _bomb(depth: int = 30) -> bytes:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, depth)]
    return ("\n".join(lines) + "\n").encode()


# Whole-file hostility: applied to every input file of every tool that reads it.
HOSTILE_FILES: dict[str, Callable[[str], bytes]] = {
    "alias bomb": lambda key: _bomb() + f"{key}: *a29\n".encode(),
    "alias bomb in a section": lambda key: (
        f"{key}:\n  x: &b0 [y, y, y, y, y, y, y, y]\n".encode()
        + b"".join(f"  x{i}: &b{i} [*b{i-1}, *b{i-1}, *b{i-1}, *b{i-1}, *b{i-1}, *b{i-1}]\n"
                   .encode() for i in range(1, 25))),
    "recursive alias": lambda key: f"{key}: &r [*r]\n".encode(),
    "invalid utf-8": lambda key: f"{key}:\n  name: \xe9t\xe9\n".encode("latin-1"),
    "binary": lambda key: bytes(range(256)) * 8,
    "nul bytes": lambda key: f"{key}: {{}}\n\x00\x00\x00".encode(),
    "deep list": lambda key: f"{key}: ".encode() + b"[" * 5000 + b"]" * 5000 + b"\n",
    "deep map": lambda key: f"{key}: ".encode() + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n",
    "duplicate top key": lambda key: f"{key}: {{}}\n{key}: {{}}\n".encode(),
    "top-level list": lambda key: b"- 1\n- 2\n",
    "top-level scalar": lambda key: b"just text\n",
    "empty": lambda key: b"",
    "tabs": lambda key: f"{key}:\n\t- x\n".encode(),
    "huge": lambda key: f"{key}: {{}}\n".encode() + b"#" * (2 * 1024 * 1024) + b"\n",
    "wide list": lambda key: f"{key}: [".encode() + b"1, " * 300_000 + b"]\n",
}
TOP_KEYS = {"arch.yaml": "architecture", "problem.yaml": "problem", "mapping.yaml": "mapping",
            "arch04.yaml": "architecture", "problem04.yaml": "problem",
            "constraints.yaml": "mapspace_constraints", "mapper.yaml": "mapper",
            "ert.yaml": "ERT", "art.yaml": "ART", "components.yaml": "compound_components",
            "exp.yaml": "search"}

BAD_NUMBERS = [".inf", "-.inf", ".nan", "16.5", "-1", "abc", "[1, 2]", "{a: 1}", "true",
               "1000000000000000000000000000000", "1e300"]
BAD_COUNTS = BAD_NUMBERS + ["0"]

_RF = ("architecture", "subtree", 0, "subtree", 0, "subtree", 0, "local", 0, "attributes")
_GLB = ("architecture", "subtree", 0, "subtree", 0, "local", 0, "attributes")
_DRAM = ("architecture", "subtree", 0, "local", 0, "attributes")
_MAC = ("architecture", "subtree", 0, "subtree", 0, "subtree", 0, "local", 1, "attributes")
_PE = ("architecture", "subtree", 0, "subtree", 0, "subtree", 0)

_NODES = ("architecture", "nodes")
_RF04 = _NODES + (5, "nodes", 0)
_P04 = ("problem", "shape")

# Field-level hostility: (file, path inside it, bad YAML values).
# An optional fourth item names the tools that see the fault (default: every reader of the file).
FIELDS: list[tuple[Any, ...]] = [
    ("arch04.yaml", _RF04 + ("attributes", "datawidth"), BAD_COUNTS + ["100000", "'1 // 0'"]),
    ("arch04.yaml", _NODES + (3, "attributes", "depth"), BAD_NUMBERS + ["'2 ** 99999'"]),
    ("arch04.yaml", _NODES + (3, "attributes", "width"), ["'4 * nope'", "'log2(-1)'", "60"]),
    ("arch04.yaml", _NODES + (4, "spatial"), ["5", "{meshX: 0}", "{meshX: abc}", "{mesh: 2}",
                                              "{meshX: .inf}", "{meshY: 2.5}"]),
    ("arch04.yaml", _NODES + (4, "constraints"), ["{temporal: {factors: [C=1]}}", "5",
                                                  "{spatial: {split: -1}}"]),
    # names of dimensions and dataspaces are checked against the problem when mapping (evaluate
    # reads no constraints, as timeloop-model; arch show has no problem)
    ("arch04.yaml", _NODES + (4, "constraints"), ["{spatial: {factors: [K=2]}}"],
     [MAP04]),
    ("arch04.yaml", _NODES + (4, "!"), ["Mesh", "5"]),
    ("arch04.yaml", _NODES + (4, "name"), ["5", "'PE[0..3]'", "''", "a.b"]),
    ("arch04.yaml", _NODES + (5, "nodes"), ["5", "abc", "[{'!': Container, name: x}]"]),
    ("arch04.yaml", _RF04 + ("constraints",), ["{dataspace: {keep: [Nope]}}",
                                               "{temporal: {factors: [K=4]}}"],
     [MAP04]),
    ("arch04.yaml", _RF04 + ("constraints",), ["{dataspace: {keep: [Inputs], bypass: [Inputs]}}",
                                               "{temporal: {permutation: [R, R]}}",
                                               "{dataspaces: {keep: [Inputs]}}",
                                               "{temporal: {order: [R]}}", "abc"]),
    ("arch04.yaml", _RF04 + ("sparse_optimizations",), ["{}"]),
    ("arch04.yaml", _RF04 + ("class",), [...]),
    ("arch04.yaml", _NODES, ["5", "abc", "{a: 1}", "[]"]),
    ("arch04.yaml", ("variables",), ["5", "[1]", "{x: '1 / 0'}"]),
    ("problem04.yaml", ("problem", "instance", "densities"), ["{Weights: 0.5}"]),
    ("problem04.yaml", ("problem", "instance", "C"), BAD_COUNTS),
    ("problem04.yaml", _P04 + ("data_spaces",), ["5", "[]", "[{name: W}]",
                                                 "[{name: W, projection: [[[K]]]}]"]),
    ("problem04.yaml", _P04 + ("data_spaces", 2, "read_write"), ["5", "abc"]),
    ("problem04.yaml", _P04 + ("coefficients",), ["5", "[{name: Wstride, default: 0}]"]),
    ("arch.yaml", _RF + ("word-bits",), BAD_COUNTS + ["100000"]),
    ("arch.yaml", _GLB + ("depth",), BAD_NUMBERS),
    ("arch.yaml", _GLB + ("width",), BAD_NUMBERS + ["60"]),
    ("arch.yaml", _GLB + ("block-size",), BAD_COUNTS + ["2.5"]),
    ("arch.yaml", _RF + ("meshX",), BAD_COUNTS + ["3"]),
    ("arch.yaml", _DRAM + ("word-bits",), BAD_COUNTS),
    ("arch.yaml", _MAC + ("datawidth",), BAD_COUNTS),
    ("arch.yaml", _GLB + ("read_bandwidth",), [".inf", ".nan", "-1", "abc"]),
    ("arch.yaml", _PE + ("name",), ["'PE[1..0]'", "'PE[0..99999999999]'"]),
    ("arch.yaml", _PE + ("local",), ["5", "abc", "{a: 1}"]),
    ("arch.yaml", _PE + ("subtree",), ["5", "[1, 2]"]),
    ("arch.yaml", ("architecture", "subtree"), ["5", "abc", "[]", "{a: 1}"]),
    ("arch.yaml", _GLB, ["5", "[1, 2]", "abc"]),
    ("problem.yaml", ("problem", "instance", "C"), BAD_COUNTS + ["1099511627776"]),
    ("problem.yaml", ("problem", "instance", "K"), ["4"]),
    ("problem.yaml", ("problem", "instance", "bitwidths"),
     ["{Inputs: .inf}", "{Inputs: 8.5}", "{Weights: 33}", "5", "{Outputs: abc}"]),
    ("problem.yaml", ("problem", "instance"), ["5", "abc", "[1]"]),
    ("problem.yaml", ("problem", "shape"),
     ["5", "abc", "[a, b]", "{dimensions: 7, data-spaces: []}",
      "{dimensions: [C], data-spaces: 5}",
      "{dimensions: [C], coefficients: [{name: s, default: abc}], data-spaces: []}",
      "{dimensions: [C], coefficients: 5, data-spaces: []}",
      "{dimensions: [C, C], data-spaces: [{name: W, projection: [[[C]]]}]}",
      "{dimensions: [C], data-spaces: [{name: W, projection: 5}]}",
      "{dimensions: [C], data-spaces: [{name: W, projection: [[[C]]]}, "
      "{name: W, projection: [[[C]]]}]}",
      "{dimensions: [[C]], data-spaces: []}", "{dimensions: [], data-spaces: []}"]),
    ("mapping.yaml", ("mapping", 3, "factors"),
     ["5", "C1 M2 R3 S3 N1 P4 Q.5", "C-1", "{C: abc}", "{C: .inf}", "{C: 1.5}", "'C1 C2'"]),
    ("mapping.yaml", ("mapping", 3, "permutation"), ["RRSCMNPQ", "5", "{a: 1}", "RSCMNPQX"]),
    ("mapping.yaml", ("mapping", 4, "split"), ["abc", "-1", ".inf", "1.5", "99"]),
    ("mapping.yaml", ("mapping", 2, "keep"), ["[]", "[Weights]", "5", "[[a]]"]),
    ("mapping.yaml", ("mapping", 2, "bypass"), ["[Inputs]", "[Weights, Inputs, Outputs]"]),
    ("mapping.yaml", ("mapping", 0, "keep"), ["[Weights, Outputs, Nope]"]),
    ("mapping.yaml", ("mapping", 0, "bypass"), ["[Inputs, Weights]"]),
    ("mapping.yaml", ("mapping", 1, "bypass"), ["[Inputs]"]),
    ("mapping.yaml", ("mapping", 3, "type"), ["5", "tempral", "[temporal]"]),
    ("mapping.yaml", ("mapping", 3, "target"), ["5", "[RF]", "Nope"]),
    ("mapping.yaml", ("mapping", 3, "extra"), ["1"]),
    ("mapping.yaml", ("mapping",), ["5", "abc", "{a: 1}"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 0, "factors"),
     ["5", "K=4", "R=3 R=1", "{R: abc}", "R=.inf", "R<=abc", "R=3 S<=0"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 0, "permutation"),
     ["RR", "5", "RSX"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 1, "split"),
     ["abc", "-1", ".inf", "1.5"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 1, "factors"),
     ["M=4 C=4 P=4", "M<=0"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 0, "type"),
     ["5", "tempral", "[temporal]"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 0, "target"),
     ["5", "Nope", "[RF]"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 0, "unknown_key"), ["1"]),
    ("constraints.yaml", ("mapspace_constraints", "targets", 0, "min"), ["0.5"]),
    ("constraints.yaml", ("mapspace_constraints", "targets"), ["5", "abc", "{a: 1}"]),
    ("constraints.yaml", ("mapspace_constraints",), ["5", "abc"]),
    ("mapper.yaml", ("mapper", "budget"), BAD_COUNTS),
    ("mapper.yaml", ("mapper", "seed"), [".inf", "-1", "abc", "1.5"]),
    ("mapper.yaml", ("mapper", "metric"), ["5", "energyy", "[edp]"]),
    ("mapper.yaml", ("mapper", "optimization-metrics"), ["5", "[]", "[nope]", "{a: 1}"]),
    ("mapper.yaml", ("mapper", "max-seconds"), [".inf", "-1", "abc", "0"]),
    ("mapper.yaml", ("mapper", "bogus"), ["1"]),
    ("mapper.yaml", ("mapper",), ["5", "abc", "[1]"]),
    ("ert.yaml", ("ERT", "tables"), ["5", "abc", "[5]", "[{name: x, actions: 5}]",
                                     "[{name: x, actions: [{name: read, energy: abc}]}]",
                                     "[{name: x, actions: [{name: read, energy: .inf}]}]",
                                     "[{name: x, actions: [{name: read, energy: -1}]}]"]),
    ("art.yaml", ("ART", "tables"), ["5", "[{name: x, area: abc}]", "[{name: x, area: -1}]",
                                     "[{name: x, area: .inf}]"]),
    ("art.yaml", ("ART",), ["5", "[1]"]),
    ("components.yaml", ("compound_components", "classes"), ["5", "[a, b]", "{a: 1}", "[{x: 1}]"]),
    ("components.yaml", ("compound_components",), ["5", "[1]"]),
    ("mapper.yaml", ("mapper", "out_prefix"), ["../x", "/abs/x", "5", ".", "a/b"]),
    ("exp.yaml", ("search", "generations"), BAD_NUMBERS),
    ("exp.yaml", ("search", "objectives"), ["5", "[]", "[accuracy]", "abc"]),
    ("exp.yaml", ("search", "bits"), ["[]", "[0]", "[2, 99]", "[2.5]", "abc"]),
    ("exp.yaml", ("final", "points"), ["-1", "abc", ".inf", "2.5"]),
    ("exp.yaml", ("final",), ["5", "abc", "[1]"]),
    ("exp.yaml", ("qat", "device"), ["tpu", "5", "cuda:abc"]),
    ("exp.yaml", ("qat", "lr"), [".nan", "-1", "abc", "0"]),
    ("exp.yaml", ("arch", "template"), ["nope", "5"]),
    ("exp.yaml", ("arch", "params"), ["{glb_width: 60}", "{pe_rows: 0}", "{nope: 1}",
                                      "{glb_depth: .inf}", "5"]),
    ("exp.yaml", ("arch", "files"), ["[/no/such/file.yaml]", "5"]),
    ("exp.yaml", ("mapper", "metric"), ["nope", "5"]),
    ("exp.yaml", ("engine", "name"), ["nope", "5"]),
    ("exp.yaml", ("seed",), ["-1", "abc", ".inf"]),
    ("exp.yaml", ("nosuchsection",), ["1"]),
]


def _field_cases() -> Iterator[Case]:
    for fname, path, values, *readers in FIELDS:
        for raw in values:
            value = raw if raw is ... or raw == "abc" else yaml.safe_load(raw)  # ...: deleted
            data = _set(BASES[fname], path, value)
            for argv in readers[0] if readers else READERS[fname]:
                yield Case(f"{fname}:{'.'.join(map(str, path))}={raw} [{argv[0]}]", argv,
                           _files(**{fname: _dump(data)}), fname)


def _hostile_file_cases() -> Iterator[Case]:
    for fname, readers in READERS.items():
        for label, make in HOSTILE_FILES.items():
            heavy = label in ("huge", "wide list")
            if heavy and fname not in ("arch.yaml", "exp.yaml"):
                continue  # one big file per reader kind keeps the corpus light
            for argv in readers[:1] if heavy else readers:
                yield Case(f"{fname}: {label} [{argv[0]}]", argv,
                           _files(**{fname: make(TOP_KEYS[fname])}), fname)


def _text_cases() -> Iterator[Case]:
    """Faults only expressible as text: duplicate keys inside sections."""
    problem = _dump(PROBLEM).decode().replace("    C: 4\n", "    C: 4\n    M: 50\n")
    yield Case("problem: duplicate dimension", EVALUATE,
               _files(**{"problem.yaml": problem.encode()}), "problem.yaml")
    arch = _dump(ARCH).decode().replace("      word-bits: 16\n", "      word-bits: 16\n"
                                        "      word-bits: 8\n", 1)
    yield Case("arch: duplicate attribute", SHOW, _files(**{"arch.yaml": arch.encode()}),
               "arch.yaml")
    two = b"architecture: {}\n" + _dump(ARCH)
    yield Case("arch: two architecture keys", SHOW, _files(**{"arch.yaml": two}), "arch.yaml")
    second = {"components.yaml": _dump(COMPONENTS), "more.yaml": b"compound_components: [1]\n"}
    yield Case("components: second file not a map", [*SHOW, "{d}/components.yaml",
                                                      "{d}/more.yaml"], _files(**second), "more.yaml")
    exp = b"search: {generations: 1}\nsearch: {generations: 2}\n"
    yield Case("experiment: two search sections", EXPLORE, _files(**{"exp.yaml": exp}),
               "exp.yaml")


def _mapping_cases() -> Iterator[Case]:
    """Mappings Timeloop refuses: the evaluator must not report them valid."""
    keep_none = copy.deepcopy(MAPPING)
    for entry in keep_none["mapping"][:3]:
        entry["keep"], entry["bypass"] = [], ["Weights", "Inputs", "Outputs"]
    tiny_rf = _set(ARCH, _RF + ("depth",), 2)
    yield Case("mapping: everything bypassed", CHECK,
               _files(**{"mapping.yaml": _dump(keep_none)}), "mapping.yaml")
    yield Case("mapping: RF overflows", CHECK, _files(**{"arch.yaml": _dump(tiny_rf)}),
               "mapping.yaml")
    spatial = _set(MAPPING, ("mapping", 4, "factors"), "C1 M8 R1 S1 N1 P1 Q1")
    spatial = _set(spatial, ("mapping", 3, "factors"), "C1 M1 R3 S3 N1 P4 Q4")
    yield Case("mapping: fan-out overflow", CHECK, _files(**{"mapping.yaml": _dump(spatial)}),
               "mapping.yaml")


def _argument_cases() -> Iterator[Case]:
    """Command-line faults: bad options, blocked output paths."""
    blocked = {"file": b"x"}
    yield Case("map -o existing file", [*MAP[:-1], "{d}/file"], _files(**blocked), "file")
    yield Case("map -o below a file", [*MAP[:-1], "{d}/file/sub"], _files(**blocked), "file")
    yield Case("evaluate --json folder", [*EVALUATE, "--json", "{d}"], _files(), "--json")
    yield Case("evaluate --json below a file", [*EVALUATE, "--json", "{d}/file/x.json"],
               _files(**blocked), "file")
    for bits in ("i8w33o8", "i0w8o8", "i8w8", "x", "i8w8o8.5"):
        yield Case(f"workload --bits {bits}", ["workload", "mobilenet_v1", "--bits", bits,
                                               "-o", "{d}/w"], {}, "--bits")
    for option, value in (("--resolution", "0"), ("--resolution", "-3"), ("--width", "0"),
                          ("--width", "nan"), ("--width", "inf"), ("--classes", "0"),
                          ("--resolution", "abc")):
        yield Case(f"workload {option} {value}", ["workload", "mobilenet_v1", option, value,
                                                  "-o", "{d}/w"], {}, option)
    yield Case("workload unknown model", ["workload", "nope", "-o", "{d}/w"], {}, "nope")
    yield Case("workload -o file", ["workload", "mobilenet_v1", "-o", "{d}/file"],
               dict(blocked), "file")
    for setting in ("glb_width=60", "pe_rows=0", "pe_rows=.inf", "pe_rows=2.5", "nope=1",
                    "glb_depth=abc", "technology=5nmx", "pe_rows", "glb_word_bits=0",
                    "glb_word_bits=24"):
        yield Case(f"arch render --set {setting}", ["arch", "render", "eyeriss", "--set",
                                                    setting, "-o", "{d}/a"], {}, "--set")
    yield Case("arch render -o file", ["arch", "render", "eyeriss", "-o", "{d}/file"],
               dict(blocked), "file")
    yield Case("arch render unknown", ["arch", "render", "nope", "-o", "{d}/a"], {}, "nope")
    for argv in (["qat", "eval", "--checkpoint", "{d}/none.pt", "--device", "tpu"],
                 ["qat", "eval", "--checkpoint", "{d}/none.pt", "--batch-size", "0"],
                 ["qat", "eval", "--checkpoint", "{d}/none.pt", "--resolution", "abc"],
                 ["qat", "finetune", "--float-checkpoint", "{d}/none.pt", "--bits", "i8w33o8"],
                 ["qat", "train", "--out", "{d}/f.pt", "--epochs", "-1"],
                 ["qat", "nope"]):
        names = {"nope": "command line", "i8w33o8": "none.pt"}.get(argv[-1], argv[-1])
        yield Case(f"qat {' '.join(argv[1:])}", argv, {}, names)
    yield Case("explore -o file", [*EXPLORE[:-1], "{d}/file"], _files(**blocked), "file")
    yield Case("explore --set bad", ["explore", "--set", "search.generations=abc", "-o",
                                     "{d}/run"], {}, "search.generations")
    yield Case("final missing folder", ["final", "{d}/none"], {}, "none")
    yield Case("final --points -1", ["final", "{d}", "--points", "-1"], {},
               "--points")
    yield Case("figures --evaluations abc", ["figures", "--evaluations", "abc"], {},
               "--evaluations")
    yield Case("check-mapping no args", ["check-mapping"], {}, "check")
    yield Case("check-mapping unknown", ["check-mapping", "nope", "{d}/arch.yaml"], _files(),
               "nope")


SUBPROCESS_NAMES = ("arch.yaml: alias bomb [evaluate]", "problem.yaml: invalid utf-8 [evaluate]",
                    "mapping.yaml: deep list [evaluate]", "exp.yaml: alias bomb [explore]",
                    "workload --bits i8w33o8", "mapping: everything bypassed")


def corpus() -> list[Case]:
    """Every case, with a few marked to run as real subprocesses."""
    cases = [*_hostile_file_cases(), *_field_cases(), *_text_cases(), *_mapping_cases(),
             *_argument_cases()]
    for case in cases:
        case.subprocess = case.name in SUBPROCESS_NAMES
    return cases
