"""The notebook session of docs/API.md runs as printed."""

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


@pytest.mark.slow
def test_the_api_notebook_session_runs_as_printed(tmp_path, monkeypatch, capsys):
    text = DOC.read_text(encoding="utf-8")
    session = text.split("## A notebook session, end to end", 1)[1]
    code = re.search(r"```python\n(.*?)```", session, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {"__name__": "notebook"})
    out = capsys.readouterr().out
    assert "torch.Size([1, 8])" in out
    assert (tmp_path / "notebook" / "elsewhere" / "photos.index").is_dir()
    assert len([line for line in out.splitlines() if line.startswith(("1 ", "2 ", "3 "))]) == 3
