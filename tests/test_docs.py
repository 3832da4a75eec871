"""The notebook session of docs/API.md runs as printed."""

from pathlib import Path

import pytest

from tests.conftest import exec_markdown_block

DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


@pytest.mark.slow
def test_the_api_notebook_session_runs_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec_markdown_block(DOC, "## A notebook session, end to end", "notebook")
    out = capsys.readouterr().out
    assert "torch.Size([1, 8])" in out
    assert (tmp_path / "notebook" / "elsewhere" / "photos.index").is_dir()
    assert len([line for line in out.splitlines() if line.startswith(("1 ", "2 ", "3 "))]) == 3
