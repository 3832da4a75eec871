"""``mia train --start-from``: a new run that begins at the end of another run's step."""

import pytest
import torch

from mia.artifacts.checkpoint import load_checkpoint
from mia.artifacts.run import RunDir
from mia.cli.main import main
from mia.training.launch import train
from mia.utils.errors import MiaError
from tests.conftest import TINY, tiny

pytestmark = pytest.mark.slow


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("step", [1, 2])
def test_a_run_started_from_a_step_ends_as_the_run_it_started_from(trained_run, synth_dir,
                                                                   tmp_path, step):
    out, _ = trained_run
    start = out / f"checkpoints/step{step}.pt"
    train(tiny(), synth_dir, tmp_path / "b", progress=False, start_from=start)
    want = load_checkpoint(out / "checkpoints/last.pt")["model"]
    got = load_checkpoint(tmp_path / "b/checkpoints/last.pt")
    assert same(want, got["model"])  # the later steps trained as in the uninterrupted run
    assert [h["step"] for h in got["history"]] == ["step1", "step2", "step2", "step3"]
    meta = RunDir(tmp_path / "b").load_meta()
    assert meta["started_from"]["steps_done"] == step
    assert meta["started_from"]["checkpoint"] == str(start.resolve())
    assert len(meta["started_from"]["sha256"]) == 64
    assert (tmp_path / "b/vocab.json").read_text() == (out / "vocab.json").read_text()


def test_a_config_that_ends_where_the_checkpoint_ends_is_complete_at_once(trained_run,
                                                                          synth_dir, tmp_path):
    """GC + RGA is MIA's steps 1-2: started from MIA's step2.pt it trains nothing, and its
    evaluation is that of the checkpoint under its own lambda2 = 0."""
    out, _ = trained_run
    cfg = tiny("steps.step3=null", "eval.lambda2=0")
    summary = train(cfg, synth_dir, tmp_path / "g", progress=False,
                    start_from=out / "checkpoints/step2.pt")
    assert summary["epochs"] == 3  # the source's, none of its own
    assert same(load_checkpoint(out / "checkpoints/step2.pt")["model"],
                load_checkpoint(tmp_path / "g/checkpoints/last.pt")["model"])
    assert main(["evaluate", "--run", str(tmp_path / "g"), "--data", str(synth_dir),
                 "--split", "val", "--json", "--no-progress"]) == 0


@pytest.mark.parametrize("change, named", [
    (["train.seed=3"], "train.seed is 3 here and 0 in the source run"),
    (["steps.step1.lr=0.5"], "step 'step1' differs"),
    (["model.embed_dim=16"], "model.embed_dim is 16 here and 32"),
])
def test_a_config_that_would_train_the_shared_steps_otherwise_is_refused(
        trained_run, synth_dir, tmp_path, change, named):
    out, _ = trained_run
    with pytest.raises(MiaError, match=named):
        train(tiny(*change), synth_dir, tmp_path / "x", progress=False,
              start_from=out / "checkpoints/step1.pt")
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_settings_that_change_no_result_and_later_steps_may_differ(trained_run, synth_dir,
                                                                   tmp_path):
    out, _ = trained_run
    cfg = tiny("train.feature_cache_mb=0", "train.validate=false", "steps.step3.epochs=2",
               "eval.lambda1=2")
    summary = train(cfg, synth_dir, tmp_path / "ok", progress=False,
                    start_from=out / "checkpoints/step1.pt")
    assert summary["epochs"] == 1 + 2 + 2


def test_matching_settings_may_differ_after_a_step_of_identity_loss_alone(
        trained_run, synth_dir, tmp_path):
    """Step 1 trains L_I + L_T only, so a run with other negatives or small-loss selection
    may start from its step1.pt, and ends as that run trained from scratch; a step-2
    checkpoint, trained with the matching losses, refuses them."""
    out, _ = trained_run
    change = ("train.negatives=identity", "train.drop_hardest=0.25")
    train(tiny(*change), synth_dir, tmp_path / "started", progress=False,
          start_from=out / "checkpoints/step1.pt")
    train(tiny(*change), synth_dir, tmp_path / "scratch", progress=False)
    got = load_checkpoint(tmp_path / "started/checkpoints/last.pt")["model"]
    assert same(load_checkpoint(tmp_path / "scratch/checkpoints/last.pt")["model"], got)
    assert not same(load_checkpoint(out / "checkpoints/last.pt")["model"], got)
    with pytest.raises(MiaError, match="train.drop_hardest is 0.25 here and 0.0"):
        train(tiny(*change), synth_dir, tmp_path / "x", progress=False,
              start_from=out / "checkpoints/step2.pt")


def test_pairs_are_dropped_only_after_the_warm_up_epochs(trained_run, synth_dir, tmp_path):
    """``train.drop_hardest_warmup=1``: step 2's first epoch trains as the source run did
    (which drops nothing), its second drops the hardest half of each batch."""
    out, _ = trained_run
    train(tiny("train.drop_hardest=0.5", "train.drop_hardest_warmup=1"), synth_dir,
          tmp_path / "w", progress=False, start_from=out / "checkpoints/step1.pt")

    def step2(run):
        history = load_checkpoint(run / "checkpoints/last.pt")["history"]
        return [h["losses"] for h in history if h["step"] == "step2"]

    plain, warm = step2(out), step2(tmp_path / "w")
    assert warm[0] == plain[0]
    assert warm[1]["match_gc"] < plain[1]["match_gc"]


def test_a_mid_step_checkpoint_or_other_data_is_refused(trained_run, synth_dir,
                                                        dataset_factory, tmp_path, capsys):
    out, _ = trained_run
    mid = tmp_path / "mid/checkpoints/last.pt"
    mid.parent.mkdir(parents=True)
    state = load_checkpoint(out / "checkpoints/last.pt")
    torch.save({**state, "position": {"step": 1, "epoch": 1}}, mid)
    with pytest.raises(MiaError, match="not the end of a step .*step 2, epoch 1"):
        train(tiny(), synth_dir, tmp_path / "a", progress=False, start_from=mid)
    with pytest.raises(MiaError, match="not a checkpoint inside a run's checkpoints/"):
        train(tiny(), synth_dir, tmp_path / "a", progress=False, start_from=tmp_path / "x.pt")

    other = dataset_factory(splits={"train": 4, "val": 2, "test": 2})
    code = main(["train", "--config", "demo/mia", *sum((["--set", s] for s in TINY), []),
                 "--data", str(other), "--out", str(tmp_path / "c"), "--no-progress",
                 "--start-from", str(out / "checkpoints/step1.pt")])
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if " INFO " not in line]  # the log lines of the work done before the check
    assert code == 2 and len(err) == 1, err
    assert "is not the one" in err[0] and "content hash differs" in err[0]
    assert not (tmp_path / "c/checkpoints/last.pt").exists()


def test_resume_and_start_from_do_not_mix(trained_run, synth_dir, tmp_path):
    with pytest.raises(MiaError, match="--start-from starts a new run"):
        train(None, synth_dir, tmp_path / "r", resume=True, progress=False,
              start_from=trained_run[0] / "checkpoints/step1.pt")
