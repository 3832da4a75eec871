"""The README and docs say what is true: the front page stays short, its tour runs as
printed, every relative link resolves, no table is copied into a second page, and no file
points at a path outside the repository. Also `mia search --figure` (the README picture)."""

import os
import re
import struct
from pathlib import Path

import pytest

from mia.cli.main import main
from tests.conftest import TINY, exec_markdown_block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
SKIP_TOP = {"build", "runs", "dist", "data"}  # generated or git-ignored at the top level
SKIP_DIRS = {".venv", ".git", "__pycache__", ".ruff_cache", ".pytest_cache", ".mia_cache"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cff", ".txt", ".html", ".cfg",
                 ".json", ".sh", ".ini"}
# built from pieces, so that this file does not contain what it looks for
OUTSIDE = ["..".join(["", "/shared"]), "shared" + "/tools", "make_cuhk_" + "dev.py",
           "make_cuhk_" + "weak.py", "DEVELOPERS" + ".md"]


def test_readme_is_a_front_page_of_at_most_200_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"


def repository_files():
    for folder, dirs, files in os.walk(ROOT):
        here = Path(folder)
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                   and not (here == ROOT and d in SKIP_TOP)]
        for name in files:
            path = here / name
            if path.suffix in TEXT_SUFFIXES or name == "Makefile":
                yield path


def test_no_file_points_outside_the_repository():
    hits = []
    for path in repository_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in OUTSIDE:
            if needle in text:
                line = text[:text.index(needle)].count("\n") + 1
                hits.append(f"{path.relative_to(ROOT)}:{line}: {needle}")
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


@pytest.mark.slow
def test_the_readme_tour_runs_as_printed_on_the_demo_output(tmp_path, monkeypatch, capsys):
    both = [s for s in TINY if not s.startswith("steps.step3")]  # the demo's GC has no step 3
    sets = [a for s in both for a in ("--set", s)]
    assert main(["demo", "--out", str(tmp_path / "runs" / "demo"), "--ids", "24",
                 "--no-progress", *sets]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    exec_markdown_block(README, "## A 10-minute tour", "readme")
    out = capsys.readouterr().out
    assert "torch.Size([1, 4])" in out
    assert (tmp_path / "runs" / "demo" / "photos.index" / "manifest.json").is_file()
    ranked = [line for line in out.splitlines() if re.match(r"[123] \S+\.jpg -?\d", line)]
    assert len(ranked) == 3, out


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def test_every_relative_link_in_the_readme_and_docs_exists():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # http:, https:, mailto:, an anchor in the same page
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def anchors(page: Path) -> set[str]:
    """GitHub's anchor of each heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def table_headers(text: str) -> set[str]:
    """The header row of each markdown table, cells stripped and lower-cased."""
    lines = text.splitlines()
    headers = set()
    for line, below in zip(lines, lines[1:]):
        if line.lstrip().startswith("|") and re.fullmatch(r"\s*\|(\s*:?-{3,}:?\s*\|)+\s*",
                                                           below):
            headers.add("|".join(c.strip().lower() for c in line.strip().strip("|").split("|")))
    return headers


def test_no_table_appears_in_two_pages():
    seen: dict[str, str] = {}
    copies = []
    for page in PAGES:
        for header in table_headers(page.read_text(encoding="utf-8")):
            if header in seen:
                copies.append(f"{header!r} in {seen[header]} and {page.name}")
            seen.setdefault(header, page.name)
    assert not copies, "tables in two pages:\n" + "\n".join(copies)


def png_size(path: Path) -> tuple[int, int]:
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and blob[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", blob[16:24])


def test_search_figure_writes_a_png_of_the_top_results(index_dir, tmp_path, capsys):
    out = tmp_path / "fig" / "search.png"
    assert main(["search", str(index_dir), "a woman in a red t-shirt and black trousers",
                 "--top", "3", "--json", "--figure", str(out)]) == 0
    assert out.is_file() and not list(out.parent.glob(".*.tmp"))  # written atomically
    width, height = png_size(out)
    assert 500 <= width <= 3000 and 300 <= height <= 2000
    assert 5_000 < out.stat().st_size < 1_000_000
    import json

    answer = json.loads(capsys.readouterr().out)  # --json stays clean: the note is on stderr
    assert len(answer["results"]) == 3


def test_search_figure_draws_any_answer_and_missing_images(tmp_path):
    from mia.viz.search_figure import search_figure

    answer = {"query": "a man in a blue jacket", "phrases": ["a man", "a blue jacket"],
              "results": [{"rank": 1, "image": "gone.jpg", "score": 0.5, "sG": 0.3, "sR": 0.2,
                           "sL": 0.1, "person_id": 7, "stripes": [1 / 6] * 6,
                           "phrase_to_stripe": {"a man": 0, "a blue jacket": 2}}]}
    out = search_figure(answer, tmp_path, tmp_path / "one.png", target_id=7)
    assert png_size(out)[0] > 0
    empty = search_figure({"query": "x", "phrases": [], "results": []}, tmp_path,
                          tmp_path / "none.png")
    assert empty.is_file()


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_pages_name_no_removed_recipe(page):
    text = (ROOT / ("README.md" if page == "README.md" else f"docs/{page}")).read_text()
    for gone in ("cuhk_pedes_resnet50", "cuhk_pedes_vgg16", "rstpreid_resnet50",
                 "rstpreid_vgg16"):
        assert gone not in text, f"{page} names the removed recipe {gone}"
