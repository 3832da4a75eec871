"""A model you can hand over: ``mia export`` writes one file that loads alone, anywhere a
run directory is taken, with the same numbers; damaged or foreign files are refused."""

import json
import shutil

import pytest
import torch

import mia
from mia.artifacts.model_file import EXPORT_VERSION, read_model_file
from mia.cli.main import main
from mia.data.reader import open_dataset
from mia.utils.errors import CheckpointError

METRICS = ("R1", "R5", "R10", "total", "mAP", "mINP")


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The trained run exported, then copied alone into a folder of its own."""
    made = tmp_path_factory.mktemp("export") / "made.pt"
    info = mia.export(trained_run[0], made)
    alone = tmp_path_factory.mktemp("elsewhere") / "model.pt"
    shutil.copy(made, alone)
    made.unlink()
    return alone, info


def test_export_is_one_small_file_without_training_state(exported, trained_run):
    path, info = exported
    state = torch.load(path, weights_only=True)  # nothing but tensors and plain data
    assert state["format"] == "mia-export" and state["format_version"] == EXPORT_VERSION
    assert not any(k.startswith("classifier.") for k in state["weights"])
    assert "optimizer" not in state and "scheduler" not in state
    best = trained_run[0] / "checkpoints" / "best.pt"
    assert info["checkpoint"] == str(best)
    # smaller by the optimizer state and the identity classifier, nothing else
    ckpt = torch.load(best, weights_only=True)
    left_out = sum(t.numel() * t.element_size() for k, t in ckpt["model"].items()
                   if k.startswith("classifier."))
    left_out += sum(t.numel() * t.element_size() for s in ckpt["optimizer"]["state"].values()
                    for t in s.values() if t.dim() > 0)
    assert 0 < left_out and info["bytes"] < best.stat().st_size - 0.9 * left_out
    meta = state["meta"]
    assert meta["mia_version"] == mia.__version__
    assert meta["train_data"]["name"] == "synth" and len(meta["train_data"]["sha256"]) == 64
    assert meta["validation"]["sF"]["R1"] == pytest.approx(
        torch.load(best, weights_only=True)["best"]["value"])
    assert meta["preprocessing"]["height"] == state["config"]["data"]["height"]
    assert (meta["lambda1"], meta["lambda2"]) == (state["config"]["eval"]["lambda1"],
                                                  state["config"]["eval"]["lambda2"])


def test_exported_file_alone_scores_exactly_as_its_run(exported, trained_run, synth_dir):
    ds = open_dataset(synth_dir)
    records = ds.split("test")
    photos = [ds.image_path(r) for r in records]
    texts = [c for r in records for c in r.captions]
    from_run, from_file = mia.load(trained_run[0], "cpu"), mia.load(exported[0], "cpu")
    assert from_file.lambdas == from_run.lambdas and from_file.image_size == from_run.image_size
    a = from_run.score(from_run.encode_images(photos), from_run.encode_texts(texts))
    b = from_file.score(from_file.encode_images(photos), from_file.encode_texts(texts))
    for name in ("sG", "sR", "sL", "sF"):
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=0)


def test_evaluate_takes_the_file_and_equals_the_python_call(exported, trained_run, synth_dir,
                                                            capsys):
    path = exported[0]
    assert main(["evaluate", "--run", str(path), "--data", str(synth_dir), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (path.parent / "model.pt.eval" / "test-model.json").is_file()
    assert main(["evaluate", "--run", str(trained_run[0]), "--data", str(synth_dir),
                 "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    for gran in ("sG", "sR", "sL", "sF"):
        for key in METRICS:
            assert printed[gran][key] == pytest.approx(from_run[gran][key], abs=1e-6)
    called = mia.evaluate(path, synth_dir, "test", save=False)
    timing = ("encode_seconds", "score_seconds")
    strip = [{**r, "meta": {k: v for k, v in r["meta"].items() if k not in timing}}
             for r in (called, printed)]
    assert json.loads(json.dumps(strip[0])) == strip[1]


def test_index_build_and_search_with_the_file(exported, trained_run, synth_dir, tmp_path,
                                              capsys):
    path = exported[0]
    index = tmp_path / "photos.index"
    assert main(["index", "build", "--run", str(path), "--images", str(synth_dir / "imgs"),
                 "--out", str(index), "--no-progress"]) == 0
    capsys.readouterr()
    query = open_dataset(synth_dir).split("test")[0].captions[0]
    assert main(["search", str(index), query, "--top", "3", "--json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    # the same weights: the run answers over the file's index, with the same ranking
    assert main(["search", str(index), query, "--top", "3", "--run", str(trained_run[0]),
                 "--json"]) == 0
    by_run = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in by_file["results"]] == [r["image"] for r in by_run["results"]]
    assert len(by_file["results"]) == 3


def test_damaged_newer_and_foreign_files_are_refused_in_one_line(exported, tmp_path, capsys):
    good = exported[0].read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        mia.load(truncated)
    newer = tmp_path / "newer.pt"
    state = torch.load(exported[0], weights_only=True)
    torch.save({**state, "format_version": EXPORT_VERSION + 1}, newer)
    with pytest.raises(CheckpointError, match="newer mia"):
        read_model_file(newer)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": state["weights"]}, foreign)
    with pytest.raises(CheckpointError, match="not a MIA export"):
        mia.load(foreign)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for bad in (truncated, newer, foreign, text):
        assert main(["evaluate", "--run", str(bad), "--data", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {bad}") and err.count("\n") == 1, err


def test_export_cli_picks_the_checkpoint_and_never_writes_over_it(trained_run, tmp_path,
                                                                  capsys):
    run = trained_run[0]
    out = tmp_path / "last.pt"
    assert main(["export", str(run), "--out", str(out), "--checkpoint", "last",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checkpoint"] == str(run / "checkpoints" / "last.pt")
    assert torch.load(out, weights_only=True)["meta"]["source_checkpoint"] == "last.pt"
    before = (run / "checkpoints" / "last.pt").read_bytes()
    assert main(["export", str(run), "--out", str(run / "checkpoints" / "last.pt"),
                 "--checkpoint", "last"]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    step1 = (run / "checkpoints" / "step1.pt").read_bytes()  # another of the run's files
    assert main(["export", str(run), "--out", str(run / "checkpoints" / "step1.pt"),
                 "--checkpoint", "last"]) == 2
    assert "is not an export" in capsys.readouterr().err
    assert (run / "checkpoints" / "step1.pt").read_bytes() == step1
    assert main(["export", str(run), "--out", str(out), "--checkpoint",
                 str(run / "checkpoints" / "step1.pt")]) == 0  # over an export: replaced
    assert torch.load(out, weights_only=True)["meta"]["source_checkpoint"] == "step1.pt"


def test_create_model_and_list_configs():
    names = mia.list_configs()
    assert {"mia", "demo/mia", "ablations/gc", "recipes/cuhk_small_cpu"} <= set(names)
    model = mia.create_model("demo/mia", vocab_size=50, num_classes=7, embed_dim=48,
                             train__batch_size=4)
    assert isinstance(model, torch.nn.Module)
    assert model.config.embed_dim == 48 and model.classifier.out_features == 7
    assert model.text_encoder.vocab_size == 50
    with pytest.raises(mia.MiaError, match="vocab_size"):
        mia.create_model("demo/mia", vocab_size=0)
    with pytest.raises(mia.MiaError, match="no_such_field"):
        mia.create_model("demo/mia", no_such_field=1)


@pytest.mark.slow
def test_train_returns_the_run_that_load_and_evaluate_take(synth_dir, tmp_path):
    from tests.conftest import TINY

    sets = {s.split("=")[0]: s.split("=")[1] for s in TINY if not s.startswith("steps.")}
    sets = {k: (v if not v.lstrip("-").isdigit() else int(v)) for k, v in sets.items()}
    run = mia.train("demo/gc", synth_dir, tmp_path / "gc", progress=False,
                    **{"steps.step1.epochs": 1, "steps.step2.epochs": 1, **sets})
    assert run.path == tmp_path / "gc" and run.summary["epochs"] == 2
    assert (tmp_path / "gc" / "summary.json").is_file()
    result = mia.evaluate(run, synth_dir, "val", save=False)
    assert result["meta"]["queries"] > 0
    assert mia.load(run).config.name == "demo_gc"
