"""The package's files form no import cycle, and its functions stay short.

Both read src/mia with ``ast``. Imports inside functions count (a lazy import is still a
dependency, it only runs later); imports under ``if TYPE_CHECKING:`` do not (they never
run). ``from X import Y`` depends on the module X.Y when there is one, else on X."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mia"
MAX_LINES = 60  # from ``def`` to the function's last line, decorators excluded


def module_name(path: Path) -> str:
    """src/mia/retrieval/index.py -> 'mia.retrieval.index'; a package's __init__.py -> the
    package."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST):
    """Every Import / ImportFrom below ``node``, at any depth, except those that only run
    for a type checker (the body of ``if TYPE_CHECKING:``; its ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    yield sub
                yield from _import_nodes(sub)
        else:
            yield from _import_nodes(child)


def imported_modules(tree: ast.AST, module: str, is_package: bool,
                     known: set[str]) -> set[str]:
    """The modules of ``known`` that the parsed ``module`` imports."""
    found = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
            continue
        if node.level:  # relative: resolve against this module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        for alias in node.names:
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found & known


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    known = set(modules)
    return {name: imported_modules(ast.parse(path.read_text(encoding="utf-8")), name,
                                   path.name == "__init__.py", known) - {name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def function_lengths(tree: ast.AST, module: str) -> dict[str, int]:
    """Qualified name ('mia.x.Class.method', nested functions under their parent) -> lines
    from ``def`` to the last line."""
    lengths = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                lengths[name] = child.end_lineno - child.lineno + 1
                walk(child, name)
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}.{child.name}")
            else:
                walk(child, prefix)

    walk(tree, module)
    return lengths


def package_function_lengths() -> dict[str, int]:
    lengths = {}
    for name, path in package_modules().items():
        lengths.update(function_lengths(ast.parse(path.read_text(encoding="utf-8")), name))
    return lengths


# --- import cycles ---------------------------------------------------------------------------

def test_no_import_cycle_between_files():
    assert cycles(import_graph()) == []


def test_the_cycle_check_sees_lazy_and_from_imports_but_not_type_checking_ones():
    known = {"mia.a", "mia.b", "mia.c", "mia.pkg", "mia.pkg.d"}
    lazy = ast.parse("def f():\n    from mia.b import thing\n")
    submodule = ast.parse("from mia.pkg import d\nfrom . import c\n")
    typed = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from mia.a import A\nelse:\n    import mia.c\n")
    assert imported_modules(lazy, "mia.a", False, known) == {"mia.b"}
    assert imported_modules(submodule, "mia.b", False, known) == {"mia.pkg.d", "mia.c"}
    assert imported_modules(typed, "mia.b", False, known) == {"mia.c"}
    assert cycles({"mia.a": {"mia.b"}, "mia.b": {"mia.pkg.d"}, "mia.pkg.d": {"mia.a"},
                   "mia.c": {"mia.a"}}) == [["mia.a", "mia.b", "mia.pkg.d"]]


# --- function length -------------------------------------------------------------------------

def test_no_function_over_max_lines():
    long = {name: n for name, n in package_function_lengths().items()
            if n > MAX_LINES}
    assert long == {}, f"split these into helpers of at most {MAX_LINES} lines"


def test_function_length_counts_from_def_and_names_methods():
    tree = ast.parse("@decorator\ndef f():\n    def inner():\n        pass\n    return 1\n\n"
                     "class C:\n    def m(self):\n\n        return 2\n")
    assert function_lengths(tree, "mia.x") == {"mia.x.f": 4, "mia.x.f.inner": 2,
                                               "mia.x.C.m": 3}
