"""Shared fixtures: tiny datasets in every supported format, and a small synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

FORMAT_FILES = {"cuhk-pedes": ("reid_raw.json", "file_path"),
                "icfg-pedes": ("ICFG-PEDES.json", "file_path"),
                "rstpreid": ("data_captions.json", "img_path")}

CAPTIONS = [
    "A woman in a red t-shirt with a yellow bag over her shoulder, black trousers.",
    "The man wears a blue jacket, grey jeans and white sneakers.",
    "She has long brown hair and carries a black backpack.",
    "A man in a green hoodie and black shorts is walking.",
]


def write_image(path: Path, color=(120, 30, 30), size=(16, 48)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def make_entries(fmt: str, ids_per_split: dict[str, int], images_per_id: int = 2,
                 captions_per_image: int = 2) -> list[dict]:
    _, path_field = FORMAT_FILES[fmt]
    entries, pid = [], 0
    for split, n_ids in ids_per_split.items():
        for _ in range(n_ids):
            pid += 1
            for k in range(images_per_id):
                caps = [CAPTIONS[(pid + k + c) % len(CAPTIONS)] + f" id{pid}"
                        for c in range(captions_per_image)]
                entries.append({"split": split, "captions": caps, path_field:
                                f"cam{k}/{pid:04d}_{k}.jpg", "id": pid})
    return entries


def write_dataset(root: Path, fmt: str, entries: list[dict], images: bool = True) -> Path:
    """Write an annotation file in ``fmt`` and (optionally) every image it lists."""
    name, path_field = FORMAT_FILES[fmt]
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(entries), encoding="utf-8")
    if images:
        for e in entries:
            if isinstance(e, dict) and isinstance(e.get(path_field), str):
                write_image(root / "imgs" / e[path_field], color=(e["id"] * 40 % 255, 80, 120)
                            if isinstance(e.get("id"), int) else (0, 0, 0))
    return root


@pytest.fixture
def dataset_factory(tmp_path):
    def make(fmt="cuhk-pedes", splits=None, entries=None, images=True, name="ds"):
        splits = splits or ({"train": 3, "val": 2, "test": 2} if fmt != "icfg-pedes"
                            else {"train": 3, "test": 2})
        entries = entries if entries is not None else make_entries(fmt, splits)
        return write_dataset(tmp_path / name, fmt, entries, images)
    return make


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic pedestrian set (CUHK-PEDES format) shared by the slow tests."""
    from mia.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("synth") / "synth"
    generate_dataset(out, n_ids=30, seed=3, height=96, width=32, images_per_id=(2, 3))
    return out


# The one tiny model of the tests (small backbone): tests/test_model.py builds it as a
# ModelConfig, the rest train it through the --set overrides below.
TINY_MODEL = {"small_width": 8, "embed_dim": 32, "part_channels": 32, "word_dim": 16,
              "gru_hidden": 16, "mlp_hidden": 32}
TINY_MODEL_SETS = [f"model.{key}={value}" for key, value in TINY_MODEL.items()]
TINY = TINY_MODEL_SETS + [
    "train.batch_size=16", "data.text_workers=1", "eval.batch_size=64",
    "steps.step1.epochs=1", "steps.step2.epochs=2", "steps.step2.lr_step=1",
    "steps.step3.epochs=1"]


@pytest.fixture(scope="session")
def synth_train_pairs(synth_dir):
    """``make(**options) -> TrainPairs`` over the synthetic set's train split (seed 1, 96x32
    images), for the tests of per-caption augmentation."""
    from mia.data.loading import CaptionCorpus, ImageStore, TrainPairs
    from mia.data.reader import open_dataset
    from mia.data.records import label_map
    from mia.text.phrases import parse_caption
    from mia.text.vocab import Vocabulary

    ds = open_dataset(synth_dir)
    train = ds.split("train")
    parsed = {c: parse_caption(c) for r in train for c in r.captions}
    corpus = CaptionCorpus(parsed, Vocabulary.build(p.tokens for p in parsed.values()))
    store = ImageStore(ds.image_root, (96, 32))
    return lambda **options: TrainPairs(train, store, corpus, label_map(train), seed=1,
                                        **options)


def exec_markdown_block(page: Path, heading: str, name: str) -> None:
    """Run, as printed, the first ```python block after ``heading`` in a markdown page
    (in the current folder; the page names the file in tracebacks)."""
    import re

    section = page.read_text(encoding="utf-8").split(heading, 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, str(page), "exec"), {"__name__": name})


def tiny(*extra):
    """The demo config shrunk to a model that trains in seconds."""
    from mia.config import load_config

    return load_config("demo/mia", TINY + list(extra))


@pytest.fixture(scope="session")
def trained_run(synth_dir, tmp_path_factory):
    """A tiny MIA run trained through its three steps on the synthetic set."""
    from mia.training.launch import train

    out = tmp_path_factory.mktemp("runs") / "mia"
    summary = train(tiny(), synth_dir, out, progress=False)
    return out, summary


@pytest.fixture(scope="session")
def index_dir(trained_run, synth_dir, tmp_path_factory):
    """A gallery index of the synthetic test split, built by ``mia index build``."""
    from mia.cli.main import main

    out = tmp_path_factory.mktemp("idx") / "index"
    assert main(["index", "build", "--run", str(trained_run[0]), "--data", str(synth_dir),
                 "--out", str(out), "--no-progress"]) == 0
    return out
