"""Architecture templates: render the Jinja2 specs in ``arch_templates/`` into Timeloop v0.3 YAML.

A template is a manifest ``arch_templates/defaults/<name>.yaml`` (which architecture, component
and constraint files it renders, and the default value of every parameter) plus the files it
names. With the defaults a template reproduces the reference spec of the golden records, so any
deviation is an explicit, validated parameter. Parameter validation happens here, before Jinja
runs, so a typo gets "did you mean" instead of a silently ignored value.

Constraint files written for the CNN-layer shape name dimension M and never name G; for a
problem shape without M (depthwise) or with G (grouped) `adapt_constraints_for_shape` rewrites
them (see `wrapper.spec.constraints`): Timeloop otherwise stops with "dimension M not found in
problem shape", or leaves G free at every level.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jinja2

from ..errors import SpecError, unknown_name_fix
from .arch import arch_from_dict
from .constraints import adapt_constraints_for_shape
from .ert import DRAM_PJ_PER_BIT
from .problem import ProblemShape
from .settings import Rule
from .v04 import nodes_from_tree
from .yamlio import dump_yaml_text, ensure_folder, parse_yaml_text, write_text_atomic

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "arch_templates"
_TECHNOLOGY = re.compile(r"^\d+(\.\d+)?nm$")


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


def parameter_rule(key: str, default: Any) -> Rule:
    """The rule of a template parameter, from its name and default: text (technology a process
    node such as '45nm', dram_type one the energy model prices), a positive number of words per
    cycle for bandwidths (Timeloop accepts fractions; null = unlimited where the default is
    null), else a positive whole number."""
    if key == "technology":
        return Rule(str, pattern=_TECHNOLOGY.pattern, help="a process node like 45nm",
                    example=default)
    if key == "dram_type":
        return Rule(str, choices=tuple(DRAM_PJ_PER_BIT), example=default)
    if isinstance(default, str):
        return Rule(str, example=default)
    if key.endswith("_bandwidth"):
        return Rule(float, optional=default is None, above=0.0, example=default or 2)
    return Rule(int, optional=default is None, minimum=1, example=default or 1)


def resolve_parameters(name: str, params: Mapping[str, Any] | None,
                       source: str = "--set") -> dict[str, Any]:
    """Defaults of template ``name`` overridden by ``params``, every value validated; errors
    name ``source``, where the parameters came from (the command line or a config file)."""
    defaults = default_parameters(name)
    if params is not None and not isinstance(params, Mapping):
        raise SpecError(f"parameters must be a map, got {type(params).__name__}", file=source,
                        field="parameters", fix="pass a dict such as {'pe_rows': 16}")
    merged = dict(defaults)
    for key, value in (params or {}).items():
        if key not in defaults:
            raise SpecError(f"unknown parameter '{key}' of template '{name}'", file=source,
                            field=f"parameters.{key}",
                            fix=unknown_name_fix(str(key), defaults, "parameters"))
        parameter_rule(key, defaults[key]).check(value, f"parameters.{key}", source, SpecError)
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
                problem_shape: ProblemShape | None = None, source: str = "--set") -> dict[str, str]:
    """Render template ``name``: {relative file name: YAML text} for arch, components, constraints.

    With ``problem_shape`` the constraint files are adapted to its dimensions (see
    `adapt_constraints_for_shape`), so they can be handed to Timeloop with that problem. The
    rendered spec is read back, so parameters that together make no valid architecture (a width
    that is not a multiple of the word) are an error naming ``source``.
    """
    manifest = _manifest(name)
    values = resolve_parameters(name, params, source)
    env = _environment()
    context = {"params": values, "banner": _banner(name, values)}
    files = {f"{name}.yaml": env.get_template(manifest["architecture"]).render(context)}
    for section in ("components", "constraints"):
        for template_file in manifest[section]:
            text = env.get_template(f"{section}/{template_file}").render(context)
            if section == "constraints" and problem_shape is not None:
                text = _adapted_text(text, problem_shape, template_file)
            files[f"{section}/{_output_name(template_file)}"] = text
    _check_rendered(files, source)
    return files


def _check_rendered(files: Mapping[str, str], source: str) -> None:
    """Read the rendered files back as QuantMap reads any spec; a failure is the parameters'."""
    data: dict[str, Any] = {}
    for rel, text in files.items():
        for key, value in (parse_yaml_text(text, rel) or {}).items():
            data.setdefault(key, value)
    try:
        arch_from_dict(data, source)
    except SpecError as exc:
        raise SpecError(f"the parameters give an invalid architecture: {exc.problem} "
                        f"(at {exc.field})", file=source, field="parameters", fix=exc.fix) from None


def _adapted_text(text: str, shape: ProblemShape, source: str) -> str:
    """Constraint YAML text adapted to ``shape``; unchanged text when nothing needed adapting."""
    data = parse_yaml_text(text, source)
    adapted = adapt_constraints_for_shape(data, shape)
    if adapted == data:
        return text
    header = (f"# Adapted for problem shape '{shape.name}' (dimensions {' '.join(shape.dimensions)})"
              f" by QuantMap from {source}:\n# dimensions the shape lacks are removed (where M was"
              " a free spatial fan-out dimension, C takes its place); G follows N's constraints.\n")
    return header + dump_yaml_text(adapted)


FORMATS = ("v0.3", "v0.4")


def as_v04(files: Mapping[str, str], name: str) -> dict[str, str]:
    """The rendered files with the architecture written as v0.4 ``nodes:``; the component and
    constraint files are target lists and class lists that both versions read unchanged."""
    out = dict(files)
    data = parse_yaml_text(files[f"{name}.yaml"], f"{name}.yaml")
    banner = "".join(line + "\n" for line in files[f"{name}.yaml"].splitlines()
                     if line.startswith("#"))
    out[f"{name}.yaml"] = banner + dump_yaml_text(
        {**data, "architecture": nodes_from_tree(data["architecture"])})
    return out


def write_arch(name: str, params: Mapping[str, Any] | None, out_dir: str | Path,
               problem_shape: ProblemShape | None = None, source: str = "--set",
               spec_format: str = "v0.3") -> list[Path]:
    """Render template ``name`` into ``out_dir`` (subfolders components/, constraints/), with
    the architecture in Timeloop's ``spec_format`` (v0.3 tree or v0.4 nodes)."""
    files = render_arch(name, params, problem_shape, source)
    if spec_format == "v0.4":
        files = as_v04(files, name)
    out = ensure_folder(out_dir, "-o")
    return [write_text_atomic(text, out / rel) for rel, text in files.items()]
