"""Architecture templates: render the Jinja2 specs in ``arch_templates/`` into Timeloop v0.3 YAML.

A template is a manifest ``arch_templates/defaults/<name>.yaml`` (which architecture, component
and constraint files it renders, and the default value of every parameter) plus the files it
names. With the defaults a template reproduces the reference spec of the golden records, so any
deviation is an explicit, validated parameter. Parameter validation happens here, before Jinja
runs, so a typo gets "did you mean" instead of a silently ignored value.

Constraint files written for the CNN-layer shape name dimension M; for a problem shape without
it (depthwise) `adapt_constraints_for_shape` rewrites them the way ../shared/golden_dw documents,
because Timeloop otherwise stops with "dimension M not found in problem shape".
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from .arch import parse_factors
from .engine.energy_model import DRAM_PJ_PER_BIT
from .errors import (
    ConfigError,
    QuantMapError,
    SpecError,
    report_error,
    unknown_name_fix,
)
from .problem import BUILTIN_SHAPES, ProblemShape, load_problem
from .yamlio import dump_yaml_text, parse_yaml_text, write_text_atomic

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "arch_templates"
_TECHNOLOGY = re.compile(r"^\d+(\.\d+)?nm$")

# A dimension the problem shape lacks may hand its role to another one. In a depthwise layer
# output channel c is computed from input channel c only, so C is the output-channel dimension
# that M is in the dense CNN layer (see ../shared/golden_dw/README.md).
_ROLE_SUBSTITUTES = {"M": "C"}


def _manifest_path(name: str) -> Path:
    return TEMPLATES_DIR / "defaults" / f"{name}.yaml"


def available_templates() -> tuple[str, ...]:
    """Names of the architecture templates shipped in ``arch_templates/`` (sorted)."""
    return tuple(sorted(p.stem for p in (TEMPLATES_DIR / "defaults").glob("*.yaml")))


@lru_cache(maxsize=None)
def _manifest(name: str) -> Mapping[str, Any]:
    if name not in available_templates():
        raise SpecError(f"unknown architecture template '{name}'", field="template",
                        fix=unknown_name_fix(name, available_templates(), "templates"))
    path = _manifest_path(name)
    return parse_yaml_text(path.read_text(), str(path))


def default_parameters(name: str) -> dict[str, Any]:
    """The default parameters of template ``name`` (they describe the golden reference spec)."""
    return dict(_manifest(name)["parameters"])


def _check_value(key: str, value: Any, default: Any, source: str) -> None:
    """Type rules, taken from the default: int -> positive int (bandwidths: positive number),
    None -> optional, str -> str (technology like '45nm', dram_type one the energy model knows)."""
    field_name = f"parameters.{key}"
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SpecError(f"{key} must be text, got {value!r}", file=source, field=field_name,
                            fix=f"give a value like {key}={default}")
        if key == "technology" and not _TECHNOLOGY.match(value):
            raise SpecError(f"technology '{value}' is not a process node like '45nm'", file=source,
                            field=field_name, fix="write the node in nm, e.g. technology=45nm")
        if key == "dram_type" and value not in DRAM_PJ_PER_BIT:
            raise SpecError(f"unknown DRAM type '{value}'", file=source, field=field_name,
                            fix=unknown_name_fix(value, DRAM_PJ_PER_BIT, "DRAM types"))
        return
    if value is None and default is None:
        return
    if key.endswith("_bandwidth"):  # Timeloop accepts fractional words per cycle
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise SpecError(f"{key} must be a positive number, got {value!r}", file=source,
                            field=field_name, fix=f"give words per cycle > 0, e.g. {key}=2")
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{key} must be a positive integer, got {value!r}", file=source,
                        field=field_name, fix=f"give a whole number >= 1, e.g. {key}={default or 1}")


def resolve_parameters(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults of template ``name`` overridden by ``params``, every value validated."""
    defaults = default_parameters(name)
    source = str(_manifest_path(name))
    if params is not None and not isinstance(params, Mapping):
        raise SpecError(f"parameters must be a map, got {type(params).__name__}", file=source,
                        field="parameters", fix="pass a dict such as {'pe_rows': 16}")
    merged = dict(defaults)
    for key, value in (params or {}).items():
        if key not in defaults:
            raise SpecError(f"unknown parameter '{key}' of template '{name}'", file=source,
                            field=f"parameters.{key}",
                            fix=unknown_name_fix(str(key), defaults, "parameters"))
        _check_value(key, value, defaults[key], source)
        merged[key] = value
    return merged


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


def _banner(name: str, params: Mapping[str, Any]) -> str:
    """A YAML comment saying where the spec came from and which parameters differ."""
    defaults = default_parameters(name)
    changed = {k: v for k, v in params.items() if v != defaults[k]}
    settings = " ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"
    return f"# Rendered by QuantMap from arch_templates/{name}.yaml.j2 with: {settings}"


def _output_name(template_file: str) -> str:
    return template_file[:-len(".j2")] if template_file.endswith(".j2") else template_file


def render_arch(name: str, params: Mapping[str, Any] | None = None,
                problem_shape: ProblemShape | None = None) -> dict[str, str]:
    """Render template ``name``: {relative file name: YAML text} for arch, components, constraints.

    With ``problem_shape`` the constraint files are adapted to its dimensions (see
    `adapt_constraints_for_shape`), so they can be handed to Timeloop with that problem.
    """
    manifest = _manifest(name)
    values = resolve_parameters(name, params)
    env = _environment()
    context = {"params": values, "banner": _banner(name, values)}
    files = {f"{name}.yaml": env.get_template(manifest["architecture"]).render(context)}
    for section in ("components", "constraints"):
        for template_file in manifest[section]:
            text = env.get_template(f"{section}/{template_file}").render(context)
            if section == "constraints" and problem_shape is not None:
                text = _adapted_text(text, problem_shape, template_file)
            files[f"{section}/{_output_name(template_file)}"] = text
    return files


def _adapted_text(text: str, shape: ProblemShape, source: str) -> str:
    """Constraint YAML text adapted to ``shape``; unchanged text when nothing needed adapting."""
    data = parse_yaml_text(text, source)
    adapted = adapt_constraints_for_shape(data, shape)
    if adapted == data:
        return text
    header = (f"# Adapted for problem shape '{shape.name}' (dimensions {' '.join(shape.dimensions)})"
              f" by QuantMap from {source}:\n# dimensions the shape lacks are removed; where M was a"
              " free spatial fan-out dimension, C takes its place.\n")
    return header + dump_yaml_text(adapted)


def write_arch(name: str, params: Mapping[str, Any] | None, out_dir: str | Path,
               problem_shape: ProblemShape | None = None) -> list[Path]:
    """Render template ``name`` into ``out_dir`` (subfolders components/, constraints/)."""
    out = Path(out_dir)
    return [write_text_atomic(text, out / rel) for rel, text in
            render_arch(name, params, problem_shape).items()]


# --- constraint adaptation -------------------------------------------------------------------

def _permutation_dims(perm: Any) -> list[str]:
    return [str(d) for d in perm] if isinstance(perm, list) else [c for c in str(perm) if not c.isspace()]


def _emit_factors(raw: Any, factors: Mapping[str, int]) -> Any:
    """Factors in the style the file used (string 'C=1 M=1', list of tokens, or map)."""
    if isinstance(raw, Mapping):
        return dict(factors)
    tokens = [f"{dim}={value}" for dim, value in factors.items()]
    return tokens if isinstance(raw, list) else " ".join(tokens)


def _edit_permutation(perm: Any, remove: str, rename: tuple[str, str] | None) -> Any:
    """Drop dim ``remove`` and optionally rename one dim, keeping the file's spacing style."""
    def new_name(dim: str) -> str:
        return rename[1] if rename and dim == rename[0] else dim
    if isinstance(perm, list):
        return [new_name(str(d)) for d in perm if str(d) != remove]
    text = "".join(new_name(c) for c in str(perm) if c != remove)
    return " ".join(text.split())


def _adapt_entry(entry: Mapping[str, Any], dims: Sequence[str], where: str) -> dict[str, Any]:
    """One constraint with every dimension outside ``dims`` removed or replaced."""
    out = dict(entry)
    factors = parse_factors(entry.get("factors"), where, None)
    perm = entry.get("permutation")
    named = list(factors) + (_permutation_dims(perm) if perm is not None else [])
    for dim in dict.fromkeys(d for d in named if d not in dims):
        remove, rename = dim, None
        substitute = _ROLE_SUBSTITUTES.get(dim)
        if entry.get("type") == "spatial" and substitute in dims and factors.get(dim) != 1 and (
                factors.get(substitute) == 1 or (substitute not in factors and dim in factors)):
            # ``dim`` fans out here and its substitute does not: the substitute takes its place.
            remove, rename = substitute, (dim, substitute)
            factors = {(substitute if d == dim else d): v for d, v in factors.items() if d != substitute}
        else:
            factors.pop(dim, None)
        if perm is not None:
            order = _permutation_dims(perm)
            if out.get("split") is not None and remove in order and order.index(remove) < out["split"]:
                out["split"] = out["split"] - 1
            perm = _edit_permutation(perm, remove, rename)
    if "factors" in entry:
        out["factors"] = _emit_factors(entry["factors"], factors)
    if perm is not None:
        out["permutation"] = perm
    return out


def adapt_constraints_for_shape(constraints: Mapping[str, Any],
                                problem_shape: ProblemShape) -> dict[str, Any]:
    """Constraint data (``architecture_constraints`` / ``mapspace_constraints``) for a shape.

    Timeloop aborts when a constraint names a dimension the problem shape lacks. For each such
    dimension: temporal constraints just drop it (factors and permutation). In a spatial
    constraint where it is a free fan-out dimension (factor not 1) and its role substitute (C for
    M) is pinned to 1 there or not named while it has a fixed factor, the substitute takes its
    place (its own pin is removed, it moves to the missing dimension's slot, keeping the factor);
    otherwise the dimension is dropped. ``split`` follows removed dimensions. This reproduces the
    adapted files in ../shared/golden_dw/constraints exactly. The input is not modified.
    """
    dims = tuple(problem_shape.dimensions)
    out = copy.deepcopy(dict(constraints))
    for section in ("architecture_constraints", "mapspace_constraints"):
        block = out.get(section)
        if not isinstance(block, Mapping):
            continue
        targets = block.get("targets") or []
        block["targets"] = [_adapt_entry(entry, dims, f"{section}.targets[{i}]")
                            if isinstance(entry, Mapping) else entry
                            for i, entry in enumerate(targets)]
    return out


# --- command line ----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError (one line, exit 2) instead of printing usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message, field="command line", fix=f"see '{self.prog} --help'")


def parse_set_options(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` options; values are read as YAML scalars (16 -> int, 45nm -> str)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set '{item}' is not key=value", field="--set",
                              fix="write --set pe_rows=16")
        value = parse_yaml_text(raw, "--set") if raw.strip() else None
        params[key.strip()] = value
    return params


def _shape_option(value: str | None) -> ProblemShape | None:
    """--shape: a built-in shape name (depthwise, cnn-layer) or a problem YAML file."""
    if value is None:
        return None
    if value.lower() in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[value.lower()]
    if Path(value).is_file():
        return load_problem(value).shape
    raise ConfigError(f"--shape '{value}' is neither a built-in shape nor a file", field="--shape",
                      fix=unknown_name_fix(value, sorted(BUILTIN_SHAPES), "shapes (or a problem file)"))


def _build_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Render QuantMap architecture templates to Timeloop YAML.")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="write arch, components and constraints to a folder")
    render.add_argument("template", help=f"one of: {', '.join(available_templates())}")
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a template parameter (repeatable)")
    render.add_argument("-o", "--out", required=True, help="output folder")
    render.add_argument("--shape", help="adapt constraints to a problem shape: depthwise, "
                        "cnn-layer, or a problem YAML file")
    params = sub.add_parser("params", help="list a template's parameters and defaults")
    params.add_argument("template")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m wrapper.templates") -> int:
    """CLI: ``render NAME [--set k=v ...] -o DIR [--shape S]`` and ``params NAME``."""
    try:
        args = _build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
        if args.command == "params":
            for key, value in default_parameters(args.template).items():
                print(f"{key} = {value}")
            return 0
        paths = write_arch(args.template, parse_set_options(args.set), args.out,
                           _shape_option(args.shape))
    except QuantMapError as exc:
        return report_error(exc)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
