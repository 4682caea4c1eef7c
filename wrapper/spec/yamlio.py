"""YAML input/output with the project's error conventions and atomic writes.

Every spec reader goes through here, so a malformed file always produces the same kind of
message: the file, the line, and what to fix, never a parser traceback.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import SpecError


class _SpecDumper(yaml.SafeDumper):
    """Block style YAML that keeps key order (Timeloop reads the order of dimensions)."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_SpecDumper.add_representer(str, _str_presenter)


TAG_KEY = "!"


class _SpecLoader(yaml.SafeLoader):
    """Safe loading that keeps the node tags of Timeloop v0.4 specs (``!Container`` ...) under
    the ``TAG_KEY`` key of the mapping instead of refusing them."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {TAG_KEY: suffix, **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_SpecLoader.add_multi_constructor("!", _tagged)


def parse_yaml_text(text: str, source: str | None = None) -> Any:
    """Parse YAML text; a syntax error becomes a SpecError naming the source and line."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"malformed YAML at {where}: {problem}", file=source, field="(syntax)",
                        fix="fix the YAML syntax (indentation, colons, brackets) at that line") from None


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse one YAML file (SpecError when missing, unreadable or malformed)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path), fix="check the path") from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", file=str(path),
                        fix="check the path and its permissions") from None
    return parse_yaml_text(text, str(path))


def dump_yaml_text(data: Any) -> str:
    """Serialize to block-style YAML, keys in insertion order."""
    return yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write a file via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def dump_yaml_file(data: Any, path: str | Path) -> Path:
    """Write data as YAML atomically."""
    return write_text_atomic(dump_yaml_text(data), path)


def load_specs(paths: Iterable[str | Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge the top-level keys of several YAML files, as timeloop-model does with its inputs.

    Returns the merged data and, per top-level key, the file it came from (for error messages).
    A key given twice is an error: silently taking one would hide a user's mistake.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in paths:
        data = load_yaml_file(path)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise SpecError("top level must be a map of sections (architecture:, problem:, ...)",
                            file=str(path), fix="start the file with a key such as 'architecture:'")
        for key, value in data.items():
            if key in merged and key not in ("compound_components",):
                raise SpecError(f"top-level key '{key}' is also given in {origin[key]}",
                                file=str(path), field=key, fix="give each section in one file only")
            if key == "compound_components" and key in merged:
                merged[key] = _merge_components(merged[key], value)
            else:
                merged[key] = value
            origin.setdefault(key, str(path))
    return merged, origin


def _merge_components(first: Any, second: Any) -> dict[str, Any]:
    """Component class files each carry a ``compound_components.classes`` list: concatenate."""
    classes = list((first or {}).get("classes") or []) + list((second or {}).get("classes") or [])
    return {"version": (first or {}).get("version", (second or {}).get("version")), "classes": classes}
