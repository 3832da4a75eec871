"""Step training end to end on a tiny synthetic set: what trains in which step, resume,
divergence, checkpoint safety and compatibility checks, and the evaluate command."""

import json

import pytest
import torch

from mia.artifacts.checkpoint import load_checkpoint
from mia.artifacts.run import RunDir, load_trained
from mia.cli.main import main
from mia.model.mia import MIA, PARAMETER_GROUPS
from mia.training.launch import train
from mia.utils.errors import CheckpointError, DatasetError, MiaError
from tests.conftest import tiny


def group_state(state: dict, group: str) -> dict:
    prefixes = PARAMETER_GROUPS[group]
    return {k: v for k, v in state.items() if k.startswith(prefixes)}


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_holds_everything(trained_run):
    out, summary = trained_run
    run = RunDir(out)
    for path in (run.config, run.vocab, run.meta, run.log, run.last, run.best,
                 run.checkpoints / "step1.pt", run.checkpoints / "step3.pt", out / "summary.json"):
        assert path.is_file(), path
    records = [json.loads(line) for line in run.log.read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [(r["step"], r["epoch"]) for r in epochs] == [("step1", 1), ("step2", 1),
                                                         ("step2", 2), ("step3", 1)]
    assert set(epochs[0]["losses"]) == {"id_image", "id_text"}
    assert set(epochs[1]["losses"]) == {"id_image", "id_text", "match_gc", "match_rga_it",
                                        "match_rga_ti"}
    assert set(epochs[3]["losses"]) == {"match_bfm_pn", "match_bfm_np"}
    assert all("val" in r and set(r["val"]) == {"sG", "sR", "sL", "sF"} for r in epochs)
    assert summary["best"]["step"] == "step3"
    assert run.load_config().to_dict() == tiny().to_dict()


def test_each_step_trains_exactly_its_groups(trained_run):
    out, _ = trained_run
    cfg = tiny()
    meta = RunDir(out).load_meta()
    torch.manual_seed(cfg.train.seed)
    init = MIA(cfg.model, meta["vocab_size"], meta["num_classes"]).state_dict()
    ckpt = {s: load_checkpoint(out / "checkpoints" / f"{s}.pt")["model"]
            for s in ("step1", "step2", "step3")}
    before = {"step1": init, "step2": ckpt["step1"], "step3": ckpt["step2"]}
    for step_name, step in cfg.steps.items():
        for group in PARAMETER_GROUPS:
            a = group_state(before[step_name], group)
            b = group_state(ckpt[step_name], group)
            changed = not same(a, b)
            assert changed == (group in step.train), (step_name, group, changed)


def train_until_killed(monkeypatch, hook, cfg, data, out) -> None:
    """Train until ``hook`` has run after the second epoch (step 2's first), then kill
    the run there, as a session's end would."""
    original = hook.after_epoch
    calls = {"n": 0}

    def crash_after_second_epoch(self, trainer, record):
        original(self, trainer, record)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(hook, "after_epoch", crash_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, out, progress=False)
    monkeypatch.setattr(hook, "after_epoch", original)


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(trained_run, synth_dir,
                                                                   tmp_path, monkeypatch):
    out, _ = trained_run
    from mia.training import hooks

    train_until_killed(monkeypatch, hooks.Checkpointer, tiny(), synth_dir, tmp_path / "r")
    assert load_checkpoint(tmp_path / "r/checkpoints/last.pt")["position"] == {"step": 1,
                                                                               "epoch": 1}
    with open(tmp_path / "r/log.jsonl", "a") as log:  # a process stopped mid-epoch wrote
        log.write(json.dumps({"type": "iteration", "global_iteration": 10 ** 6}) + "\n")
        log.write('{"type": "iter')  # and was killed in the middle of a line
    train(None, synth_dir, tmp_path / "r", resume=True, progress=False)
    want = load_checkpoint(out / "checkpoints/last.pt")["model"]
    got = load_checkpoint(tmp_path / "r/checkpoints/last.pt")["model"]
    assert same(want, got)

    def logged(run):  # the records, without their times
        records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        return [(r["type"], r.get("global_iteration"), r.get("global_epoch"))
                for r in records]

    assert logged(tmp_path / "r") == logged(out)  # each record once, none stale


def test_a_resumed_run_erases_what_an_uninterrupted_one_does(trained_run, synth_dir,
                                                             tmp_path, monkeypatch):
    """Random erasing draws from torch's generator, which a checkpoint does not hold: it is
    keyed by the epoch, so a resumed run ends with the same weights."""
    from mia.training import hooks

    cfg = tiny("train.erasing=0.5")
    train(cfg, synth_dir, tmp_path / "whole", progress=False)
    train_until_killed(monkeypatch, hooks.Checkpointer, cfg, synth_dir, tmp_path / "r")
    torch.manual_seed(12345)  # whatever the new process's generator holds
    train(None, synth_dir, tmp_path / "r", resume=True, progress=False)
    want = load_checkpoint(tmp_path / "whole/checkpoints/last.pt")["model"]
    got = load_checkpoint(tmp_path / "r/checkpoints/last.pt")["model"]
    assert same(want, got)
    plain = load_checkpoint(trained_run[0] / "checkpoints/last.pt")["model"]
    assert not same(want, plain)  # erasing did change what was trained


def test_a_checkpoint_keeps_the_fp16_loss_scale(trained_run, tmp_path):
    """fp16 training (CUDA) scales its loss; a resumed run continues with the scale it had,
    not GradScaler's initial 2**16. (Built on CPU, where GradScaler works as well.)"""
    from mia.training.hooks import Checkpointer
    from mia.training.trainer import Trainer

    trained = load_trained(trained_run[0])
    cpu = torch.device("cpu")

    def trainer():
        return Trainer(trained.config, trained.model, None, None, [], num_classes=3,
                       vocab_fingerprint="f", device=cpu, precision="fp16")

    before = trainer()
    before.scaler.scale(torch.ones(()))  # as an iteration does before update()
    before.scaler.update(new_scale=128.0)
    run = RunDir(tmp_path / "run")
    run.last.parent.mkdir(parents=True)
    Checkpointer(run)._save(before, run.last)
    after = trainer()
    assert after.scaler.get_scale() == 2.0 ** 16
    after.restore(load_checkpoint(run.last))
    assert after.scaler.get_scale() == 128.0


def test_a_resumed_run_reads_the_frozen_stages_cache_from_disk_and_ends_the_same(
        synth_dir, tmp_path, monkeypatch, caplog):
    from mia.training.feature_cache import FeatureCacheKeeper

    cfg = tiny("model.frozen_stages=2", "train.feature_cache_mb=64")
    train(cfg, synth_dir, tmp_path / "whole", progress=False)
    assert not (tmp_path / "whole/cache/frozen-stages-0.pt").exists()  # finished: removed
    train_until_killed(monkeypatch, FeatureCacheKeeper, cfg, synth_dir, tmp_path / "r")
    cache = tmp_path / "r/cache/frozen-stages-0.pt"
    saved = torch.load(cache, weights_only=True)
    images = RunDir(tmp_path / "r").load_meta()["train_data"]["images"]
    assert images <= len(saved["keys"]) <= 2 * images  # each image in one or two mirrorings
    with caplog.at_level("INFO", logger="mia.training.launch"):
        train(None, synth_dir, tmp_path / "r", resume=True, progress=False)
    assert f"feature cache: {len(saved['keys'])} entries" in caplog.text
    assert not cache.exists()
    want = load_checkpoint(tmp_path / "whole/checkpoints/last.pt")["model"]
    got = load_checkpoint(tmp_path / "r/checkpoints/last.pt")["model"]
    assert same(want, got)


def test_resume_trains_on_the_device_the_run_was_saved_with(trained_run, tmp_path,
                                                             monkeypatch):
    import shutil

    import yaml

    from mia.training import launch

    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["train"]["device"] = "cpu"
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    asked = []

    class Stop(Exception):
        pass

    def record(name):
        asked.append(name)
        raise Stop

    monkeypatch.setattr(launch, "resolve_device", record)
    with pytest.raises(Stop):
        train(None, "unused", run, resume=True, progress=False)
    with pytest.raises(Stop):  # --device still wins over the saved value
        train(None, "unused", run, resume=True, progress=False, device="auto")
    assert asked == ["cpu", "auto"]


def test_existing_run_is_never_overwritten(trained_run, synth_dir):
    out, _ = trained_run
    before = (out / "checkpoints/last.pt").read_bytes()
    with pytest.raises(MiaError, match="already holds a trained run.*use --resume"):
        train(tiny(), synth_dir, out, progress=False)
    with pytest.raises(MiaError, match="differs from the given config"):
        train(tiny("train.seed=5"), synth_dir, out, resume=True, progress=False)
    assert (out / "checkpoints/last.pt").read_bytes() == before


def test_a_run_without_last_pt_still_keeps_its_other_checkpoints(trained_run, synth_dir,
                                                                  tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    (run / "checkpoints/last.pt").unlink()
    config = (run / "config.yaml").read_bytes()
    with pytest.raises(MiaError, match=r"already holds a trained run \(.*\.pt\); choose"):
        train(tiny("train.seed=5"), synth_dir, run, progress=False)
    assert (run / "config.yaml").read_bytes() == config


def test_resume_refuses_other_training_data(trained_run, synth_dir, tmp_path):
    """--resume --data OTHER with as many people would train on OTHER with the saved
    vocabulary, unnoticed: it names the run's data instead."""
    import shutil

    run, other = tmp_path / "run", tmp_path / "other"
    shutil.copytree(trained_run[0], run)
    shutil.copytree(synth_dir, other)
    entries = json.loads((other / "reid_raw.json").read_text())
    first = next(e for e in entries if e["split"] == "train")
    first["captions"][0] = "a man in a red coat and black trousers"
    (other / "reid_raw.json").write_text(json.dumps(entries))
    with pytest.raises(MiaError, match=r"--resume: the training split .* is not the one"):
        train(None, other, run, resume=True, progress=False)
    train(None, synth_dir, run, resume=True, progress=False)  # its own data: accepted


def test_resume_with_missing_or_corrupt_checkpoint(synth_dir, tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(None, synth_dir, tmp_path / "none", resume=True, progress=False)
    run = tmp_path / "corrupt"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints/last.pt").write_bytes(b"PK\x03\x04 truncated")
    (run / "config.yaml").write_text(json.dumps(tiny().to_dict()))
    with pytest.raises(CheckpointError, match="unreadable or corrupt checkpoint"):
        train(None, synth_dir, run, resume=True, progress=False)
    assert (run / "checkpoints/last.pt").read_bytes() == b"PK\x03\x04 truncated"


def test_nan_loss_stops_naming_step_epoch_and_term(synth_dir, tmp_path, monkeypatch):
    from mia.training import step as step_module

    real = step_module.compute_losses

    def poisoned(*args):
        terms = real(*args)
        losses = args[5]
        if "gc" in losses:
            terms["match_gc"] = terms["match_gc"] * float("nan")
        return terms

    monkeypatch.setattr(step_module, "compute_losses", poisoned)
    with pytest.raises(MiaError, match="diverged at step 'step2', epoch 1, iteration 1: loss "
                                      "term 'match_gc' is nan; the last good checkpoint is kept"):
        train(tiny(), synth_dir, tmp_path / "nan", progress=False)
    state = load_checkpoint(tmp_path / "nan/checkpoints/last.pt")
    assert state["position"] == {"step": 0, "epoch": 1}  # the end of step 1, intact


def test_checkpoint_from_another_config_or_vocabulary(trained_run, tmp_path):
    import shutil

    out, _ = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cfg = (copy / "config.yaml").read_text().replace("embed_dim: 32", "embed_dim: 64")
    (copy / "config.yaml").write_text(cfg)
    with pytest.raises(CheckpointError, match="model.embed_dim: checkpoint 32, config 64"):
        load_trained(copy)
    shutil.copy(out / "config.yaml", copy / "config.yaml")
    vocab = json.loads((copy / "vocab.json").read_text())
    vocab["words"].append("zebra")
    (copy / "vocab.json").write_text(json.dumps(vocab))
    with pytest.raises(CheckpointError, match="another configuration or vocabulary: vocabulary"):
        load_trained(copy)


def test_evaluate_json_is_the_documented_shape(trained_run, synth_dir, capsys):
    out, _ = trained_run
    assert main(["evaluate", "--run", str(out), "--data", str(synth_dir), "--json",
                 "--sweep"]) == 0
    result = json.loads(capsys.readouterr().out)
    for gran in ("sG", "sR", "sL", "sF"):
        assert {"R1", "R5", "R10", "total", "mAP", "mINP"} <= set(result[gran])
        assert 0 <= result[gran]["R1"] <= result[gran]["R5"] <= result[gran]["R10"] <= 100
    assert [r["lambda1"] for r in result["sweep"]["lambda1"]][:2] == [0.0, 0.25]
    assert result["sweep"]["lambda1"][0]["R1"] == result["sG"]["R1"]  # lambda = 0 -> sG
    assert set(result["subsets"]) <= {"CUHK01", "CUHK03", "Market", "SSM", "VIPER"}
    assert (out / "eval" / "test-best.json").is_file()


def test_evaluate_empty_split_is_a_clear_error(trained_run, synth_dir):
    from mia.evaluation.run_eval import evaluate_run

    with pytest.raises(DatasetError, match="split 'query' is empty or absent"):
        evaluate_run(trained_run[0], synth_dir, "query", progress=False)


def test_cli_reports_config_errors_with_exit_code_2(synth_dir, tmp_path, capsys):
    code = main(["train", "--config", "demo/mia", "--data", str(synth_dir), "--out",
                 str(tmp_path / "x"), "--set", "train.batchsize=4"])
    assert code == 2
    assert "unknown key(s) 'batchsize'; valid keys: batch_size" in capsys.readouterr().err


def test_evaluate_with_distractors_grows_the_gallery_not_the_queries(trained_run, synth_dir):
    from mia.evaluation.run_eval import evaluate_run

    plain = evaluate_run(trained_run[0], synth_dir, "test", progress=False, save=False)
    harder = evaluate_run(trained_run[0], synth_dir, "test", progress=False, save=False,
                          distractors="val")
    assert harder["meta"]["queries"] == plain["meta"]["queries"]
    assert harder["meta"]["images"] > plain["meta"]["images"]
    assert harder["sF"]["R10"] <= plain["sF"]["R10"]  # more images can only push hits down
    with pytest.raises(MiaError, match="distractors must be other people"):
        evaluate_run(trained_run[0], synth_dir, "test", progress=False, save=False,
                     distractors="test")


def test_data_check_reports_the_unknown_word_rate_per_split(synth_dir, capsys):
    assert main(["data", "check", str(synth_dir), "--json", "--no-decode"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert splits["train"]["unknown_word_rate"] == 0.0
    assert 0.0 <= splits["test"]["unknown_word_rate"] < 1.0


@pytest.mark.slow
def test_real_world_images_and_captions_neither_crash_training_nor_evaluation(synth_dir,
                                                                               tmp_path,
                                                                               capsys):
    """Greyscale, palette, RGBA, BMP and oddly shaped images, and captions with typos, odd
    punctuation, non-ASCII characters and unseen words train and evaluate (issue 9)."""
    import shutil

    from PIL import Image

    data = tmp_path / "wild"
    shutil.copytree(synth_dir, data, ignore=shutil.ignore_patterns(".mia_cache"))
    entries = json.loads((data / "reid_raw.json").read_text())
    odd_captions = ["A   man,,wearing a blak shirt!!! & jeans;; (carrying) a bag...",
                    "Café-coloured coat — with “quoted” zippers, and 2 shoes/boots?",
                    "xqzv plorf wibble 123"]
    for split in ("train", "test"):
        chosen = [e for e in entries if e["split"] == split][:5]
        for k, entry in enumerate(chosen):
            path = data / "imgs" / entry["file_path"]
            img = Image.open(path)
            if k == 0:
                img.convert("L").save(path, format="JPEG")  # greyscale JPEG
            elif k == 1:  # BMP, renamed in the annotations
                entry["file_path"] = entry["file_path"].rsplit(".", 1)[0] + ".bmp"
                img.save(data / "imgs" / entry["file_path"], format="BMP")
            elif k == 2:  # palette PNG, very wide
                entry["file_path"] = entry["file_path"].rsplit(".", 1)[0] + ".png"
                img.resize((300, 40)).convert("P").save(data / "imgs" / entry["file_path"])
            elif k == 3:  # RGBA PNG, tiny and tall
                entry["file_path"] = entry["file_path"].rsplit(".", 1)[0] + "_a.png"
                img.resize((7, 90)).convert("RGBA").save(data / "imgs" / entry["file_path"])
            entry["captions"] = [odd_captions[k % 3], entry["captions"][-1]]
            entry.pop("processed_tokens", None)
    (data / "reid_raw.json").write_text(json.dumps(entries))
    run = tmp_path / "run"
    train(tiny(), data, run, progress=False)
    assert main(["evaluate", "--run", str(run), "--data", str(data), "--split", "test",
                 "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the odd images and captions are scored as the API scores them, photo by photo
    import mia
    from mia.data.reader import open_dataset
    from mia.evaluation.metrics import rank_metrics

    ds = open_dataset(data)
    records = ds.split("test")
    model = mia.load(run, "cpu")
    scores = model.score(model.encode_images([ds.image_path(r) for r in records]),
                         model.encode_texts([c for r in records for c in r.captions]))
    q_pids = [r.person_id for r in records for _ in r.captions]
    for g in ("sG", "sR", "sL", "sF"):
        ours = rank_metrics(scores[g], q_pids, [r.person_id for r in records])
        assert ours["R1"] == pytest.approx(result[g]["R1"], abs=1e-4), g
        assert ours["mAP"] == pytest.approx(result[g]["mAP"], abs=1e-4), g
    test_captions = sum(len(e["captions"]) for e in entries if e["split"] == "test")
    assert result["meta"]["queries"] == test_captions  # no caption was dropped
    assert result["meta"]["unknown_word_fraction"] > 0  # "xqzv plorf wibble" never seen


def test_weak_pairs_reach_the_losses_with_their_weight(synth_dir, tmp_path, monkeypatch):
    import shutil

    from mia.training import step as step_module

    data = tmp_path / "weak"
    shutil.copytree(synth_dir, data)
    entries = json.loads((data / "reid_raw.json").read_text())
    for e in entries:
        e["weak"] = e["split"] == "train"
    (data / "reid_raw.json").write_text(json.dumps(entries))
    real, seen = step_module.compute_losses, []

    def spy(*args):
        terms = real(*args)
        seen.append((args[8], {k: float(v.detach()) for k, v in terms.items()}))
        return terms

    monkeypatch.setattr(step_module, "compute_losses", spy)
    only_step1 = ["steps.step2.epochs=1", "steps.step3.epochs=1"]
    train(tiny(*only_step1, "train.weak_weight=0"), data, tmp_path / "w0", progress=False)
    assert seen and all(w is not None and float(w.abs().sum()) == 0 for w, _ in seen)
    assert all(v == 0 for _, terms in seen for v in terms.values())
    seen.clear()
    train(tiny(*only_step1, "train.weak_weight=0.5"), data, tmp_path / "w5", progress=False)
    assert all(w.tolist() == [0.5] * len(w) for w, _ in seen)
    assert any(v > 0 for _, terms in seen for v in terms.values())
