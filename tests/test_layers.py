"""The package's parts form layers: a part imports only parts below it (lazy imports inside
functions count too), so no import cycle can form between them; and a part uses only what
another part exports (no cross-part imports of private names)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mia"

# Lowest first. A part is a subpackage or a top-level module of mia; the package's own
# __init__ (the lazy facade ``mia.load`` etc.) sits on top.
LAYERS = ["_version", "utils", "synth", "text", "model", "config", "data", "scoring",
          "artifacts", "retrieval", "evaluation", "training", "viz", "serving", "demo", "api",
          "cli", "__main__", "__init__"]


def part_of(module: str) -> str:
    """'mia.retrieval.index' -> 'retrieval'; 'mia' -> '__init__'."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "__init__"


def imports() -> list[tuple[str, int, str, list[str]]]:
    """(file, line, imported module, imported names) of every mia import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(module, node.lineno, a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    package = module.split(".")
                    if path.name != "__init__.py":
                        package = package[:-1]
                    package = package[: len(package) - node.level + 1]
                    target = ".".join(package + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [a.name for a in node.names]
                if target == "mia":  # from mia import api -> the part 'api'
                    found += [(module, node.lineno, f"mia.{n}", []) for n in names
                              if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").is_file()]
                    continue
                found.append((module, node.lineno, target, names))
    return [f for f in found if f[2] == "mia" or f[2].startswith("mia.")]


def test_every_part_is_in_the_declared_layers():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file() or p.is_dir())
             and p.name not in ("configs", "__pycache__") and not p.name.endswith(".html")}
    assert parts - set(LAYERS) == set(), "declare the new part's layer in LAYERS"


def test_no_part_imports_a_part_above_it():
    upward = []
    for module, line, target, _ in imports():
        src, dst = part_of(module), part_of(target)
        if src != dst and LAYERS.index(dst) > LAYERS.index(src):
            upward.append(f"{module}:{line} ({src}) imports {target} ({dst})")
    assert upward == []


def test_parts_use_only_what_other_parts_export():
    private = [f"{module}:{line} imports {target}.{name}"
               for module, line, target, names in imports() for name in names
               if name.startswith("_") and not name.startswith("__")
               and part_of(module) != part_of(target)]
    assert private == []


def test_the_check_sees_an_upward_import():
    # the scan itself must be able to fail: a module importing a higher part is reported
    tree = ast.parse("def f():\n    from mia.api import load\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert LAYERS.index(part_of(node.module)) > LAYERS.index(part_of("mia.retrieval.search"))


def test_the_architecture_page_lists_exactly_the_parts_in_their_order():
    page = (PACKAGE.parents[1] / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = page.split("## The parts, lowest first", 1)[1].split("\n## ", 1)[0]
    listed = [row.split("`")[1].rstrip("/") for row in table.splitlines()
              if row.startswith("| `")]
    assert listed == LAYERS


def test_each_part_says_its_concern_and_lists_its_public_modules_importing_nothing():
    for part in (p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        tree = ast.parse((part / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{part.name}/__init__.py: no docstring"
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], (
            f"{part.name}/__init__.py imports")
        declared = next(ast.literal_eval(n.value) for n in tree.body
                        if isinstance(n, ast.Assign) and n.targets[0].id == "__all__")
        public = sorted([p.stem for p in part.glob("*.py") if not p.name.startswith("_")]
                        + [p.name for p in part.iterdir() if (p / "__init__.py").is_file()])
        assert sorted(declared) == public, part.name
