"""The test tiers: every marker the tests use is declared in pyproject.toml (pytest also
refuses undeclared ones, --strict-markers), `make test-fast` leaves out exactly the declared
tiers, and the tests that need a browser, a vector database or several processes carry
their tier's marker."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
TIERS = {"slow", "browser", "vectordb", "multiprocess"}
BUILTIN = {"parametrize", "skip", "skipif", "xfail", "usefixtures", "filterwarnings"}
MARK = re.compile(r"pytest\.mark\.([A-Za-z_]\w*)")


def declared(config) -> set[str]:
    return {line.split(":", 1)[0].strip() for line in config.getini("markers")}


def test_every_marker_used_in_the_tests_is_declared(pytestconfig):
    assert pytestconfig.inipath == ROOT / "pyproject.toml"
    assert "--strict-markers" in pytestconfig.getini("addopts")
    assert TIERS <= declared(pytestconfig)
    used = {(m, path.name) for path in TESTS.glob("*.py")
            for m in MARK.findall(path.read_text(encoding="utf-8")) if m not in BUILTIN}
    undeclared = sorted((m, f) for m, f in used if m not in declared(pytestconfig))
    assert not undeclared, f"markers used but not declared in pyproject.toml: {undeclared}"


def test_make_test_fast_leaves_out_every_tier_and_make_test_none():
    makefile = (ROOT / "Makefile").read_text()
    fast = re.search(r"^FAST_MARKERS :=(.*)$", makefile, re.M).group(1)
    assert set(re.findall(r"not (\w+)", fast)) == TIERS
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    (pytest_args,) = [line.split("-m pytest", 1)[1] for line in recipe.splitlines()
                      if "-m pytest" in line]
    assert " -m " not in pytest_args and "-k " not in pytest_args  # make test runs every tier
    assert "browser-deps" in re.search(r"^test:(.*)$", makefile, re.M).group(1)


def marks_of_each_test(path: Path):
    """(test name, its body, the markers on it or on its module) for each test function."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    module = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark"
                                                for t in node.targets):
            module |= set(MARK.findall(ast.get_source_segment(source, node)))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            marks = {m for d in node.decorator_list
                     for m in MARK.findall(ast.get_source_segment(source, d))}
            body = "\n".join(source.splitlines()[node.body[0].lineno - 1:node.end_lineno])
            yield node.name, body, module | marks


def test_tests_needing_a_browser_a_database_or_processes_are_marked():
    needs = {"multiprocess": "torchrun(", "vectordb": "pymilvus"}
    found = {tier: [] for tier in needs}
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == "test_tiers.py":
            continue
        for name, body, marks in marks_of_each_test(path):
            for tier, sign in needs.items():
                if sign in body:
                    found[tier].append(name)
                    assert tier in marks, f"{path.name}::{name} uses {sign!r}: mark it {tier}"
    for name, _, marks in marks_of_each_test(TESTS / "test_browser.py"):
        assert "browser" in marks, name
    for name, _, marks in marks_of_each_test(TESTS / "test_wheel.py"):
        assert "slow" in marks, name
    assert found["multiprocess"] and found["vectordb"]
