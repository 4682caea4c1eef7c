"""The package's imports, read with ast: no cycles between modules, layers import one way
(spec <- engine, timeloop <- backends <- explore; qat beside them; wrapper.commands and the
``python -m`` aliases on top),
command-line code only in command-line modules, and no import inside a function except of heavy
optional packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wrapper"

# Command-line modules: the wrapper.commands package (one module per ``quantmap`` verb) and the
# ``python -m wrapper.X`` aliases (``__main__`` modules). No library module imports them.
COMMANDS = "wrapper.commands"


def _is_command(module: str) -> bool:
    return module == COMMANDS or module.startswith(COMMANDS + ".") or module.endswith(".__main__")


# What each library layer may import (besides itself and wrapper.errors).
ALLOWED = {
    "wrapper.spec": set(),
    "wrapper.engine": {"wrapper.spec"},
    # Stock mode reprices the counts of an unpatched Timeloop with the engine's pricing.
    "wrapper.timeloop": {"wrapper.spec", "wrapper.engine"},
    "wrapper.network": {"wrapper.spec"},
    "wrapper.qat": {"wrapper.spec", "wrapper.network"},
    "wrapper.backends": {"wrapper.spec", "wrapper.engine", "wrapper.timeloop"},
    # The search reaches engines only through the backends registry.
    "wrapper.explore": {"wrapper.spec", "wrapper.timeloop", "wrapper.network", "wrapper.qat",
                        "wrapper.backends"},
}
# Imports allowed inside functions: heavy optional packages loaded only when a job needs them.
# wrapper.network and wrapper.qat import torch at module level.
LAZY_OK = ("torch", "ray", "matplotlib", "sklearn", "PIL", "wrapper.qat", "wrapper.network")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module imported, inside a function) for every import in a file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), str(path))
    nested: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested.update(id(inner) for inner in ast.walk(node) if inner is not node)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in nested) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, id(node) in nested))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _ in _imports(path):
            while target and target not in modules:  # "from pkg import module" -> module
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != name and target.startswith("wrapper"):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        layer = None if _is_command(module) else _layer(module)  # commands sit on top of all
        for target in targets:
            if _is_command(target) and not _is_command(module):
                wrong.append(f"{module} imports the command-line module {target}")
            elif layer is not None and target != "wrapper.errors" \
                    and _layer(target) not in ALLOWED[layer] | {layer}:
                wrong.append(f"{module} ({layer}) imports {target}")
    assert wrong == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: _module_name(p))
def test_imports_inside_functions_are_only_heavy_optional_packages(path: Path) -> None:
    lazy = [target for target, inside in _imports(path) if inside]
    assert [t for t in lazy if not t.startswith(LAZY_OK)] == []


def test_library_modules_have_no_main() -> None:
    with_main = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        tree = ast.parse(path.read_text())
        defines_main = any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)
        if defines_main and not _is_command(name):
            with_main.append(name)
    assert with_main == []


def test_the_commands_package_and_the_aliases_are_command_modules() -> None:
    graph = _graph()
    commands = {name for name in graph if _is_command(name)}
    assert {"wrapper.commands.main", "wrapper.commands.explore", "wrapper.commands.cli",
            "wrapper.explore.__main__", "wrapper.evaluate.__main__",
            "wrapper.map.__main__"} <= commands
    assert not any(_is_command(name) for name in graph if name.startswith("wrapper.spec"))
