"""The ``distractors`` split: gallery-only people that make a validation gallery as large as
a test split's, read in every format, checked before training, used by training's validation
(``eval.distractors``) exactly as ``mia evaluate --distractors`` uses them."""

import json
import shutil

import pytest

from mia.artifacts.checkpoint import load_checkpoint
from mia.data.reader import open_dataset
from mia.evaluation.run_eval import evaluate_run
from mia.training.launch import train
from mia.utils.errors import ConfigError, DatasetError
from tests.conftest import FORMAT_FILES, make_entries, tiny


@pytest.mark.parametrize("fmt", list(FORMAT_FILES))
def test_every_format_reads_a_distractors_split(dataset_factory, fmt):
    root = dataset_factory(fmt, splits={"train": 3, "test": 2, "distractors": 2})
    ds = open_dataset(root)
    assert len({r.person_id for r in ds.split("distractors")}) == 2


def test_an_unknown_split_names_distractors_among_the_valid_ones(dataset_factory):
    entries = make_entries("cuhk-pedes", {"train": 2, "gallery": 1})
    with pytest.raises(DatasetError, match=r"unknown split 'gallery' \(valid for cuhk-pedes: "
                                           r"train, val, test, distractors\)"):
        open_dataset(dataset_factory(entries=entries))


def test_a_distractor_person_who_is_also_queried_is_named(dataset_factory):
    entries = make_entries("cuhk-pedes", {"train": 2, "val": 2, "distractors": 2})
    val = next(e for e in entries if e["split"] == "val")
    leaked = next(i for i, e in enumerate(entries) if e["split"] == "distractors")
    entries[leaked]["id"] = val["id"]
    with pytest.raises(DatasetError, match=rf"entry {leaked} \(id {val['id']}\): field 'id': "
                                           rf"person {val['id']} is in split 'distractors' "
                                           "and in 'val'"):
        open_dataset(dataset_factory(entries=entries))


@pytest.mark.parametrize("value", ["val", "train", ""])
def test_eval_distractors_must_name_another_split(value):
    with pytest.raises(ConfigError, match="eval.distractors: must be null or the name of a "
                                          "split other than train and val"):
        tiny(f"eval.distractors={value!r}" if value else "eval.distractors=''")


def test_training_without_the_named_split_stops_before_reading_images(dataset_factory,
                                                                      tmp_path, monkeypatch):
    def decoded(*args):
        raise AssertionError("images were decoded before the splits were checked")

    monkeypatch.setattr("mia.data.pipeline.drop_unreadable", decoded)
    root = dataset_factory()
    with pytest.raises(DatasetError, match=r"reid_raw.json: split 'distractors' is empty or "
                                           r"absent \(splits present: train, val, test\)"):
        train(tiny("eval.distractors=distractors"), root, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.fixture(scope="module")
def with_distractors(synth_dir, tmp_path_factory):
    """The synthetic set with its test people relabelled as distractors."""
    root = tmp_path_factory.mktemp("distr") / "synth"
    root.mkdir()
    entries = json.loads((synth_dir / "reid_raw.json").read_text())
    for e in entries:
        e["split"] = "distractors" if e["split"] == "test" else e["split"]
    (root / "reid_raw.json").write_text(json.dumps(entries))
    shutil.copytree(synth_dir / "imgs", root / "imgs")
    return root


@pytest.mark.slow
def test_training_validates_on_val_plus_distractors_as_evaluate_does(with_distractors,
                                                                     tmp_path):
    config = tiny("eval.distractors=distractors", "eval.choose_lambdas=true",
                  "train.precision=fp32", "steps.step2.epochs=1", "steps.step2.lr_step=null")
    out = tmp_path / "run"
    summary = train(config, with_distractors, out, progress=False)
    chosen = json.loads((out / "fusion.json").read_text())
    assert (chosen["chosen_on"]["split"], chosen["chosen_on"]["distractors"]) == (
        "val", "distractors")
    assert summary["fusion"]["lambda1"] == chosen["lambda1"]
    logged = load_checkpoint(out / "checkpoints" / "last.pt")["history"][-1]["val"]
    harder = evaluate_run(out, with_distractors, "val", distractors="distractors",
                          checkpoint=out / "checkpoints" / "last.pt", progress=False,
                          save=False)
    plain = evaluate_run(out, with_distractors, "val", checkpoint=out / "checkpoints" /
                         "last.pt", progress=False, save=False)
    assert harder["meta"]["images"] > plain["meta"]["images"]
    assert harder["meta"]["images"] == chosen["chosen_on"]["images"]
    assert harder["meta"]["lambdas_from"] == "fusion.json"
    assert harder["sF"]["R1"] == pytest.approx(chosen["value"])
    for gran in ("sG", "sR", "sL"):
        assert logged[gran]["R1"] == pytest.approx(harder[gran]["R1"], abs=1e-6)
        assert logged[gran]["mAP"] == pytest.approx(harder[gran]["mAP"], abs=1e-6)
    assert harder["sF"]["R10"] <= plain["sF"]["R10"]
