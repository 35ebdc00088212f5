"""Static import closure of the built functions: which ``autojoin`` modules a handler can ever load.

Walks every import statement (module level and inside functions: the handlers and the composition root
import lazily), except those under ``if TYPE_CHECKING:``, starting from each function's ``app.py`` and
following ``autojoin.*`` modules found in the given package root (the built layer's python/ folder).
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Dotted names a module imports (``from a import b`` yields a and a.b: b may be a module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def closure(entry_files: list[Path], root: Path) -> tuple[set[str], set[str]]:
    """(autojoin modules reached, autojoin names imported that have no file under ``root``)."""
    reached: set[str] = set()
    missing: set[str] = set()
    todo: list[tuple[Path, str]] = [(f, "") for f in entry_files]
    while todo:
        path, package = todo.pop()
        for name in _imports(ast.parse(path.read_text(), str(path)), package):
            if name.split(".")[0] != "autojoin":
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a submodule's import runs its packages' __init__ too
                prefix = ".".join(parts[:i])
                if prefix in reached:
                    continue
                found = module_file(root, prefix)
                if found is None:
                    if i == len(parts) and module_file(root, ".".join(parts[:-1])) is None:
                        missing.add(prefix)
                    continue
                reached.add(prefix)
                is_package = found.name == "__init__.py"
                todo.append((found, prefix if is_package else prefix.rpartition(".")[0]))
    return reached, missing
