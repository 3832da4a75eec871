"""Bad configs, arguments, images, run and index files: one clear line before any long
work, or skipped and counted with --skip-bad."""

import json
import re
import shutil

import pytest

from mia.cli.main import main
from mia.config import load_config
from mia.data.reader import open_dataset
from mia.retrieval.index import GalleryIndex, IndexFileError
from mia.utils.errors import ConfigError, DatasetError
from tests.conftest import TINY


@pytest.mark.parametrize("override, message", [
    ("eval.select=sF.R2", r"eval.select: 'sF.R2' is not <sG\|sR\|sL\|sF>.<R1\|R5"),
    ("data.height=64", r"stripes need at least 6 rows: height >= 96"),
    ("steps.step2.lr_gamma=0", r"steps.step2.lr_gamma: must be in \(0, 1\], got 0.0"),
    ("steps.step1.lr_step=0", r"steps.step1.lr_step: must be null or >= 1 epoch"),
    ("model.embed_dim=0", r"model.embed_dim: must be positive, got 0"),
    ("model.last_stride=3", r"model.last_stride: 3 is not one of 1, 2"),
    ("train.sampler=pk", r"train.pk: sampler 'pk' needs pk: \[P, K\] with P >= 2"),
    ("steps.step2.losses.gc=-1", r"steps.step2.losses.gc: must be >= 0"),
    ("eval.batch_size=0", r"eval.batch_size: must be positive"),
    ("model.frozen_stages=9", r"model.frozen_stages: must be between 0 and 5"),
])
def test_bad_config_values_name_the_key_and_the_range(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo/mia", [override])


def test_missing_start_files_fail_before_any_data_work(synth_dir, tmp_path, capsys):
    code = main(["train", "--config", "demo/mia", "--data", str(tmp_path / "no-such-data"),
                 "--out", str(tmp_path / "run"), "--pretrained", str(tmp_path / "w.pt")])
    assert code == 2
    assert "model.pretrained: " in capsys.readouterr().err  # before the missing dataset


@pytest.mark.parametrize("argv, message", [
    (["search", "INDEX", "q", "--top", "0"], "argument --top: must be >= 1, got 0"),
    (["search", "INDEX", "q", "--candidates", "-1"], "argument --candidates: must be >= 0"),
    (["index", "build", "--run", "R", "--images", "I", "--out", "O", "--batch-size", "0"],
     "argument --batch-size: must be >= 1"),
    (["serve", "--index", "I", "--port", "70000"], "must be between 1 and 65535"),
    (["data", "synth", "--out", "O", "--ids", "many"], "argument --ids: expected an integer"),
    (["evaluate", "--run", "R", "--data", "D", "--lambda1", "-1"], "argument --lambda1: must"),
])
def test_out_of_range_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def copy_run(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    return run


@pytest.mark.parametrize("name, content, message", [
    ("config.yaml", "model: [unclosed", "config.yaml: corrupt run configuration"),
    ("config.yaml", "model: {backbone: nope}", "config.yaml: model.backbone: 'nope' is not"),
    ("meta.json", "{not json", "meta.json: corrupt run metadata"),
    ("meta.json", "{}", "meta.json: corrupt run metadata (no 'num_classes')"),
    ("vocab.json", "[]", "vocab.json: not a vocabulary file"),
])
def test_corrupt_run_files_are_one_line(trained_run, synth_dir, tmp_path, capsys, name,
                                        content, message):
    run = copy_run(trained_run, tmp_path)
    (run / name).write_text(content)
    code = main(["evaluate", "--run", str(run), "--data", str(synth_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("name, edit, message", [
    ("manifest.json", lambda m: m.pop("count"), "manifest.json: corrupt index file, missing "
                                                "field(s) count"),
    ("manifest.json", lambda m: m.update(format="mia-index-v1"), "not a complete mia-index-v4"),
    ("manifest.json", lambda m: m["segments"].append({"folder": "segments/seg-x", "start": 99,
                                                      "count": 3}),
     "seg-x/images.json: missing"),
    ("manifest.json", lambda m: m.update(count=m["count"] + 1), "images in its segments"),
    ("images.json", None, "images.json: unreadable or corrupt"),
])
def test_corrupt_index_files_are_one_line(index_dir, tmp_path, name, edit, message):
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    if edit is None:
        (copy / name).write_text("{truncated")
    else:
        data = json.loads((copy / name).read_text())
        edit(data)
        (copy / name).write_text(json.dumps(data))
    with pytest.raises(IndexFileError, match=re.escape(message)):
        GalleryIndex.open(copy)


def corrupt_first(dataset_dir, split):
    ds = open_dataset(dataset_dir)
    record = ds.split(split)[0]
    ds.image_path(record).write_bytes(b"\xff\xd8 truncated jpeg")
    return record


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_unreadable_image_stops_training_before_it_starts(synth_dir, tmp_path, split):
    from mia.training.launch import train

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns(".mia_cache"))
    record = corrupt_first(data, split)
    with pytest.raises(DatasetError, match=rf"entry {record.entry} \(id {record.person_id}\): "
                                           rf".*{record.file_path}: unreadable image .*--skip-bad"):
        train(load_config("demo/mia", TINY), data, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_skip_bad_drops_unreadable_images_and_remembers_the_check(synth_dir, tmp_path,
                                                                  monkeypatch):
    from mia.data import images
    from mia.data.pipeline import load_run_data

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns(".mia_cache"))
    corrupt_first(data, "train")
    cfg = load_config("demo/mia", TINY)
    loaded = load_run_data(cfg.data, data, skip_bad=True, progress=False)
    assert loaded.dataset.skipped["image unreadable"] == 1
    assert list((data / ".mia_cache").glob("images-*.json"))
    calls = []
    monkeypatch.setattr(images, "load_image", lambda p: calls.append(p))
    again = load_run_data(cfg.data, data, skip_bad=True, progress=False)
    assert calls == [] and again.dataset.skipped["image unreadable"] == 1


def test_index_build_from_a_folder_skips_unreadable_images(trained_run, synth_dir, tmp_path,
                                                           capsys):
    folder = tmp_path / "photos"
    for src in sorted((synth_dir / "imgs").rglob("*.jpg"))[:5]:
        shutil.copy(src, folder / src.name) if folder.exists() else (
            folder.mkdir(), shutil.copy(src, folder / src.name))
    (folder / "broken.jpg").write_bytes(b"nope")
    argv = ["index", "build", "--run", str(trained_run[0]), "--images", str(folder),
            "--no-progress", "--out"]
    assert main(argv + [str(tmp_path / "a")]) == 2
    assert "broken.jpg: unreadable image file" in capsys.readouterr().err
    assert main(argv + [str(tmp_path / "b"), "--skip-bad"]) == 0
    assert "skipped 1 unreadable image(s), first: broken.jpg" in capsys.readouterr().out
    index = GalleryIndex.open(tmp_path / "b")
    assert len(index) == 5 and "broken.jpg" not in index.images


def test_moved_photo_folder_is_found_or_given(trained_run, synth_dir, tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is part of make test")
    from fastapi.testclient import TestClient

    from mia.serving.app import create_app

    home = tmp_path / "home"
    (home / "photos").mkdir(parents=True)
    for src in sorted((synth_dir / "imgs").rglob("*.jpg"))[:4]:
        shutil.copy(src, home / "photos" / src.name)
    assert main(["index", "build", "--run", str(trained_run[0]), "--images",
                 str(home / "photos"), "--out", str(home / "index"), "--no-progress"]) == 0
    moved = tmp_path / "moved"
    shutil.move(home, moved)  # index and photos moved together
    assert GalleryIndex.open(moved / "index").image_path(0).is_file()
    elsewhere = tmp_path / "elsewhere"
    shutil.move(moved / "photos", elsewhere)  # photos moved alone: give the new root
    client = TestClient(create_app(moved / "index", image_root=elsewhere))
    assert client.get("/image/0").status_code == 200
    with pytest.raises(IndexFileError, match="image folder not found"):
        GalleryIndex.open(moved / "index", image_root=tmp_path / "nowhere")


def test_an_image_broken_after_the_check_stops_training_in_one_line(synth_dir, tmp_path,
                                                                   monkeypatch, capsys):
    from mia.data import pipeline

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns(".mia_cache"))
    record = corrupt_first(data, "train")
    monkeypatch.setattr(pipeline, "drop_unreadable", lambda *a, **k: None)  # file "changed"
    code = main(["train", "--config", "demo/mia", "--data", str(data), "--out",
                 str(tmp_path / "run"), "--no-progress", "--set", "data.workers=1",
                 *[a for s in TINY for a in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2 and f"{record.file_path}: unreadable image file" in err
    assert "Traceback" not in err and "did the file change after the decode check?" in err


def test_nproc_relaunches_the_same_command_under_torchrun(monkeypatch):
    import subprocess
    import sys

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    argv = ["-q", "train", "--config", "demo/mia", "--data", "D", "--out", "O", "--nproc", "2"]
    # the command is what main() was given, not the host process's own argv (here pytest's)
    monkeypatch.setattr(sys, "argv", ["pytest", "tests", "-k", "other"])
    assert main(argv) == 0
    (cmd,) = calls
    assert cmd[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node", "2"]
    assert cmd[6:] == ["-m", "mia", "-q", "train", "--config", "demo/mia", "--data", "D",
                       "--out", "O"]


def test_a_weak_caption_without_words_is_named_or_dropped(dataset_factory):
    from mia.data.pipeline import load_run_data
    from tests.conftest import make_entries

    entries = make_entries("cuhk-pedes", {"train": 3, "val": 2, "test": 2})
    entries[1].update(weak=True, captions=["... !!"])  # not empty, but no word to encode
    root = dataset_factory(entries=entries, name="wordless")
    cfg = load_config("demo/mia", TINY)
    with pytest.raises(DatasetError, match=r"reid_raw.json: entry 1 \(id \d+\): field "
                                           r"'captions': a caption has no words "
                                           r"\(use --skip-bad"):
        load_run_data(cfg.data, root, progress=False)
    loaded = load_run_data(cfg.data, root, skip_bad=True, progress=False)
    assert loaded.dataset.skipped["caption without words"] == 1
    assert len(loaded.dataset.records) == len(entries) - 1
