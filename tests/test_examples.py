"""The scripts under examples/ run as documented in docs/API.md."""

import importlib.util
from pathlib import Path

import pytest

from mia.data.reader import open_dataset

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_score_photos_ranks_every_photo_by_its_fused_score(trained_run, synth_dir, capsys):
    import mia

    ds = open_dataset(synth_dir)
    records = ds.split("test")[:6]
    photos = [str(ds.image_path(r)) for r in records]
    text = records[0].captions[0]
    ranked = load("score_photos").main(["--run", str(trained_run[0]), "--text", text, *photos])
    model = mia.load(trained_run[0], "cpu")
    s_f = model.score(model.encode_images(photos), model.encode_texts([text]))["sF"][0]
    want = sorted(zip(photos, s_f.tolist()), key=lambda p: -p[1])
    assert [p for p, _ in ranked] == [p for p, _ in want]
    assert [s for _, s in ranked] == pytest.approx([s for _, s in want], abs=1e-5)
    why = model.explain(want[0][0], text)
    stripe = max(range(len(why["stripes"])), key=lambda k: why["stripes"][k]) + 1
    out = capsys.readouterr().out
    assert f"best match: the sentence weighs stripe {stripe} (of {len(why['stripes'])}" in out


def test_index_a_folder_then_search_it_twice(trained_run, synth_dir, tmp_path, capsys):
    folder = synth_dir / "imgs"
    argv = ["--run", str(trained_run[0]), "--photos", str(folder), "--index",
            str(tmp_path / "photos.index"), "--top", "3", "a man in a blue jacket"]
    example = load("index_and_search")
    first = example.main(argv)
    assert "indexed" in capsys.readouterr().out
    second = example.main(argv)  # the index is reused, not rebuilt
    assert "indexed" not in capsys.readouterr().out
    assert first[0]["results"] == second[0]["results"]
    assert len(first[0]["results"]) == 3
