"""docs/API.md: its notebook block runs as printed, every ``mia.NAME(...)`` call and
signature it shows binds to the real function, and no page speaks of how it was made."""

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import mia
from mia.config import ModelConfig
from tests.conftest import exec_markdown_block

DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


@pytest.mark.slow
def test_the_api_notebook_runs_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec_markdown_block(DOC, "## From a notebook, end to end", "notebook")
    out = capsys.readouterr().out
    assert "torch.Size([1, 8])" in out
    assert (tmp_path / "notebook" / "elsewhere" / "photos.index").is_dir()
    assert len([line for line in out.splitlines() if line.startswith(("1 ", "2 ", "3 "))]) == 3


def _calls_of_mia(tree: ast.AST):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "mia"):
            yield node.func.attr, len(node.args), [k.arg for k in node.keywords if k.arg]


def test_every_mia_call_in_the_api_page_binds_to_the_real_signature():
    text = DOC.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        found += list(_calls_of_mia(ast.parse(block)))
    for heading in re.findall(r"^## `(mia\.\w+\(.*\))[^`]*`", text, re.M):
        call = re.sub(r"\*, |\*\*\w+|, \.\.\.", "", heading).replace("(, ", "(")
        found += list(_calls_of_mia(ast.parse(call.replace("=...", "=None"))))
    assert len(found) >= 10
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for name, positional, keywords in found:
        signature = inspect.signature(getattr(mia, name))
        extra = set(keywords) - set(signature.parameters)
        # a function taking **overrides reads other keywords as config keys: they must be
        # section__key (or, for create_model, a bare model field), never a stray name
        # such as create_model(config=...)
        for key in extra:
            assert "__" in key or (name == "create_model" and key in model_fields), (
                f"mia.{name}({key}=...) is not a parameter nor a config key")
        signature.bind_partial(*range(positional), **{k: None for k in keywords})


def test_docs_say_what_was_measured_not_how_the_work_was_organised():
    root = DOC.parents[1]
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        hits = [n for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
                if re.search(r"\bsessions?\b", line, re.I)]
        assert not hits, f"{page.name} lines {hits} speak of sessions"
