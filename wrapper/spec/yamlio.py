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

TAG_KEY = "!"  # a v0.4 node's tag (!Container, ...) as the loader keeps it and the dumper writes it


def _dict_presenter(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    tag = data.get(TAG_KEY)
    if isinstance(tag, str):
        return dumper.represent_mapping(f"!{tag}", {k: v for k, v in data.items() if k != TAG_KEY})
    return dumper.represent_dict(data)


_SpecDumper.add_representer(dict, _dict_presenter)


# Bounds on what one input may be: far above any real spec (the largest Accelergy tables are
# about 20 kB with a few thousand nodes), low enough that the pure-Python parser refuses a
# hostile file within seconds. Aliases count as often as they are expanded, because every
# reader that walks the data (comparisons, copies, JSON) expands them.
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 100
MAX_EXPANDED_NODES = 50_000


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys, nesting deeper than `MAX_DEPTH` and
    documents whose aliases expand to more than `MAX_EXPANDED_NODES` nodes (or to a cycle)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark)
            if self._nodes > MAX_EXPANDED_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_EXPANDED_NODES} nodes",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _expanded_size(node, 0, {}, set())
        return self.construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' is given twice in the same map", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, depth: int, sizes: dict[int, tuple[int, int]],
                   open_nodes: set[int]) -> tuple[int, int]:
    """(nodes, height) of ``node`` with every alias expanded; raises for cycles and for sizes
    beyond the bounds. Shared (aliased) nodes are measured once, so this is linear."""
    known = sizes.get(id(node))
    if known is None:
        if id(node) in open_nodes:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that "
                                              "contains it (a cycle)", node.start_mark)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        open_nodes.add(id(node))
        size, height = 1, 1
        for child in children:
            child_size, child_height = _expanded_size(child, depth + 1, sizes, open_nodes)
            size += child_size
            height = max(height, child_height + 1)
            if size > MAX_EXPANDED_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"aliases expand to more than {MAX_EXPANDED_NODES} nodes",
                    node.start_mark)
        open_nodes.discard(id(node))
        known = sizes[id(node)] = (size, height)
    if depth + known[1] > MAX_DEPTH:
        raise yaml.composer.ComposerError(None, None, f"aliases nest deeper than {MAX_DEPTH} "
                                          "levels", node.start_mark)
    return known


class _SpecLoader(_BoundedLoader):
    """Safe loading that keeps the node tags of Timeloop v0.4 specs (``!Container`` ...) under
    the ``TAG_KEY`` key of the mapping instead of refusing them."""


def _tagged(loader: _BoundedLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return {TAG_KEY: suffix, **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_SpecLoader.add_multi_constructor("!", _tagged)


def parse_yaml_text(text: str, source: str | None = None) -> Any:
    """Parse YAML text; a syntax error, a duplicate key or a document too large or too deeply
    nested once aliases are expanded becomes a SpecError naming the source and line."""
    try:
        return yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}"
        elif getattr(exc, "position", None) is not None:
            where = f"character {exc.position + 1}"
        else:
            where = "unknown position"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) \
            or str(exc).splitlines()[0]
        raise SpecError(f"malformed YAML at {where}: {problem}", file=source, field="(syntax)",
                        fix=_syntax_fix(str(problem))) from None


def _syntax_fix(problem: str) -> str:
    if "twice" in problem:
        return "give each key once (a later one would silently replace the first)"
    if "alias" in problem or "deeper" in problem or "nodes" in problem:
        return "write the data out without self-referencing or exponentially repeated aliases"
    return "fix the YAML syntax (indentation, colons, brackets) at that line"


def read_text_file(path: str | Path) -> str:
    """The UTF-8 text of an input file (SpecError when missing, unreadable, too large, a
    folder, or not UTF-8 text)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path), fix="check the path") from None
    except IsADirectoryError:
        raise SpecError("is a folder, not a file", file=str(path),
                        fix="give the path of a YAML file") from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", file=str(path),
                        fix="check the path and its permissions") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", file=str(path),
                        fix="give the spec file itself, not a data or log file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                        file=str(path), fix="save the file as UTF-8 text") from None


_JINJA_MARKS = ("{{", "{%")


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse one YAML file (SpecError when missing, unreadable or malformed).

    A Jinja2 top-level file of the v0.4 front-end (``{{include(...)}}``, ``{% if ... %}``) is
    refused with one line: its output depends on variables the front-end's caller passes
    (``architecture``, ``problem``), which a plain list of files cannot supply."""
    text = read_text_file(path)
    if str(path).endswith((".jinja2", ".j2")) or any(
            line.lstrip().startswith(_JINJA_MARKS) for line in text.splitlines()):
        raise SpecError("Jinja2 templates (include, include_all, include_text, cwd, "
                        "path_exists, add_to_path) are not supported", file=str(path),
                        fix="give the files the template includes instead: the arch.yaml, "
                            "the problem, the _components/*.yaml files and the mapper file")
    return parse_yaml_text(text, str(path))


def dump_yaml_text(data: Any) -> str:
    """Serialize to block-style YAML, keys in insertion order."""
    return yaml.dump(data, Dumper=_SpecDumper, sort_keys=False, default_flow_style=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_folder_path(path: str | Path, option: str | None = None) -> Path:
    """An output folder path that can be created (SpecError naming a file that blocks it)."""
    path = Path(path)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SpecError(f"cannot create folder: {blocker} is a file", file=str(path),
                        field=option, fix="give a folder path, or move the file away")
    return path


def check_file_path(path: str | Path, option: str | None = None) -> Path:
    """An output file path that can be written (SpecError when it is a folder or a file blocks
    its folder): checked before long work, so a typo in ``-o`` costs nothing."""
    path = Path(path)
    if path.is_dir():
        raise SpecError("is a folder, not a file", file=str(path), field=option,
                        fix="give a file path for this output")
    check_folder_path(path.parent, option)
    return path


def ensure_folder(path: str | Path, option: str | None = None) -> Path:
    """Create an output folder; a path blocked by a file is a SpecError naming it."""
    path = check_folder_path(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"cannot create folder: {exc.strerror}", file=str(path), field=option,
                        fix="check the path and its permissions") from None
    return path


def write_text_atomic(text: str, path: str | Path, option: str | None = None) -> Path:
    """Write a file via a temporary file and rename, so readers never see half a file; the file
    gets the permissions the umask gives new files. Unwritable paths are SpecErrors (naming
    ``option``, the command-line option that gave the path, if any)."""
    path = check_file_path(path, option)
    ensure_folder(path.parent, option)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=str(path), field=option,
                        fix="check the path and its permissions") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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
            raise SpecError("file is empty", file=str(path),
                            fix="give a file with a top-level section such as 'architecture:'")
        if not isinstance(data, dict):
            raise SpecError("top level must be a map of sections (architecture:, problem:, ...)",
                            file=str(path), fix="start the file with a key such as 'architecture:'")
        for key, value in data.items():
            if key in merged and key not in ("compound_components",):
                raise SpecError(f"top-level key '{key}' is also given in {origin[key]}",
                                file=str(path), field=key, fix="give each section in one file only")
            if key == "compound_components" and key in merged:
                merged[key] = _merge_components(merged[key], value, str(path))
            else:
                merged[key] = value
            origin.setdefault(key, str(path))
    return merged, origin


def _merge_components(first: Any, second: Any, source: str) -> dict[str, Any]:
    """Component class files each carry a ``compound_components.classes`` list: concatenate."""
    parts = [part or {} for part in (first, second)]
    if not all(isinstance(p, dict) and isinstance(p.get("classes") or [], list) for p in parts):
        raise SpecError("compound_components must be a map with a 'classes' list", file=source,
                        field="compound_components",
                        fix="write 'compound_components: {version: 0.3, classes: [...]}'")
    classes = list(parts[0].get("classes") or []) + list(parts[1].get("classes") or [])
    return {"version": parts[0].get("version", parts[1].get("version")), "classes": classes}
