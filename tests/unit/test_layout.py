"""The code's layout keeps its promises: imports between engine's stages run one way, no module
of engine/ or modules/ is part of an import cycle, and none hides one behind a function-level import.

Imports under `if TYPE_CHECKING:` are type hints only and do not count.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# engine's groups, lowest first: a group may import from groups before it, never after.
# The top-level modules (errors, secrets, registry, process) are the foundation every group uses.
ENGINE_ORDER = ["foundation", "console", "cache", "leftovers", "recipe", "remote", "build", "artifacts", "cluster",
                "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for top in ("engine", "modules") for p in (REPO / top).rglob("*.py")}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, int, bool]]:
    """(imported project module, line, at module level) for each import that runs, TYPE_CHECKING ones left out."""
    found: list[tuple[str, int, bool]] = []
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child):
                for other in child.orelse:
                    visit(other, top)
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names if a.name.split(".")[0] in ("engine", "modules"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + ([base] if base else []))
                if base.split(".")[0] in ("engine", "modules"):
                    for alias in child.names:
                        sub = f"{base}.{alias.name}"
                        found.append((sub if sub in modules else base, child.lineno, top))
            visit(child, inner)

    visit(ast.parse(path.read_text()), True)
    return found


def graph() -> dict[str, set[str]]:
    modules = source_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in imports(path, modules):
            if target in modules and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return found


def group_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "engine" or len(parts) < 2:
        return ""
    return parts[1] if len(parts) > 2 or (REPO / "engine" / parts[1]).is_dir() else "foundation"


def test_no_import_cycles_in_engine_or_modules():
    assert cycles(graph()) == []


def test_no_function_level_imports_of_project_modules():
    modules = source_modules()
    hidden = [f"{path.relative_to(REPO)}:{line} imports {target}"
              for name, path in modules.items() for target, line, top in imports(path, modules) if not top]
    assert hidden == []


def test_engine_groups_import_one_way():
    wrong = []
    for source, targets in graph().items():
        mine = group_of(source)
        if not mine:
            continue
        for target in targets:
            theirs = group_of(target)
            if target.startswith("modules"):
                wrong.append(f"{source} imports the plug-in {target}")
            elif theirs and mine != theirs and ENGINE_ORDER.index(theirs) > ENGINE_ORDER.index(mine):
                wrong.append(f"{source} ({mine}) imports {target} ({theirs})")
    assert sorted(wrong) == []


def test_every_engine_group_is_in_the_order_and_the_readme():
    groups = sorted(p.name for p in (REPO / "engine").iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert sorted(set(ENGINE_ORDER) - {"foundation"}) == groups
    readme = (REPO / "README.md").read_text()
    section = readme.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    for group in groups:
        assert f"engine/{group}/" in section


@pytest.mark.parametrize("top", ["engine", "modules"])
def test_unit_tests_mirror_the_source_folders(top):
    """Every folder of tests/unit names a folder of the source it tests."""
    for folder in (REPO / "tests" / "unit" / top).rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            assert (REPO / top / folder.relative_to(REPO / "tests" / "unit" / top)).is_dir(), folder


def test_plug_ins_do_not_import_each_other():
    """A platform imports no export and no other platform; an export no platform; task modules neither."""
    wrong = []
    for source, targets in graph().items():
        parts = source.split(".")
        if parts[0] != "modules" or len(parts) < 3:
            continue
        kind, own = parts[1], parts[2]
        for target in targets:
            other = target.split(".")
            if len(other) >= 3 and other[1] in ("platforms", "exports", "tasks") and \
                    (other[1] != kind or (kind == "platforms" and other[2] != own)):
                wrong.append(f"{source} imports {target}")
    assert wrong == []
