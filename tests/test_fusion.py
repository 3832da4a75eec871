"""Fusion weights chosen on validation: the grid search, RUN/fusion.json, and who scores
with it (the checkpoint it was chosen for, its export) and who does not (another
checkpoint, a test split)."""

import shutil

import pytest
import torch

from mia.artifacts.export import export_run
from mia.artifacts.model_file import load_export
from mia.artifacts.run import load_trained
from mia.evaluation.evaluate import EvalInputs, evaluate_scores
from mia.evaluation.fusion import choose_lambdas
from mia.evaluation.run_eval import evaluate_run
from mia.utils.errors import CheckpointError, MiaError


def inputs_for(pids_q, pids_g) -> EvalInputs:
    return EvalInputs([], [str(i) for i in range(len(pids_q))], torch.tensor(pids_q),
                      torch.tensor(pids_g), [None] * len(pids_q))


def test_the_choice_is_at_least_every_single_granularity():
    torch.manual_seed(0)
    q, g = 40, 60
    pids_q, pids_g = list(range(q)), [i % q for i in range(g)]
    truth = torch.tensor([[float(a == b) for b in pids_g] for a in pids_q])
    scores = {"sG": 0.3 * truth + torch.rand(q, g),  # weak
              "sR": 0.8 * truth + torch.rand(q, g),  # strong
              "sL": 0.2 * truth + torch.rand(q, g)}
    inputs = inputs_for(pids_q, pids_g)
    choice = choose_lambdas(scores, inputs)
    alone = evaluate_scores(scores, inputs, 1.0, 0.5)
    assert choice["value"] >= max(alone[g]["R1"] for g in ("sG", "sR", "sL"))
    assert choice["value"] >= choice["default"]["sF"]["R1"]
    assert choice["lambda1"] > 1.0  # the strong granularity gets the weight
    fused = evaluate_scores(scores, inputs, choice["lambda1"], choice["lambda2"])["sF"]
    assert fused["R1"] == choice["value"]


def test_ties_keep_the_default():
    scores = {k: torch.eye(4) for k in ("sG", "sR", "sL")}  # every point ranks perfectly
    choice = choose_lambdas(scores, inputs_for([0, 1, 2, 3], [0, 1, 2, 3]),
                            default=(1.0, 0.5))
    assert (choice["lambda1"], choice["lambda2"]) == (1.0, 0.5)


@pytest.fixture
def run_copy(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run[0], out)
    return out


def test_chosen_lambdas_score_their_checkpoint_and_its_export_only(run_copy, synth_dir,
                                                                   tmp_path):
    result = evaluate_run(run_copy, synth_dir, "val", choose_lambdas=True, progress=False)
    chosen = (result["fusion"]["lambda1"], result["fusion"]["lambda2"])
    assert (run_copy / "fusion.json").is_file()
    assert (result["meta"]["lambda1"], result["meta"]["lambda2"]) == chosen
    assert result["meta"]["lambdas_from"] == "fusion.json"
    assert result["sF"]["R1"] == result["fusion"]["value"]
    assert result["sF"]["R1"] >= max(result[g]["R1"] for g in ("sG", "sR")) - 1e-9
    trained = load_trained(run_copy)
    assert trained.lambdas() == chosen and trained.lambdas(2.0, 0.0) == (2.0, 0.0)
    other = load_trained(run_copy, run_copy / "checkpoints" / "step1.pt")
    assert other.lambdas() == (other.config.eval.lambda1, other.config.eval.lambda2)
    export_run(run_copy, tmp_path / "m.pt")
    assert load_export(tmp_path / "m.pt").lambdas() == chosen
    again = evaluate_run(run_copy, synth_dir, "test", progress=False, save=False)
    assert again["meta"]["lambdas_from"] == "fusion.json"


def test_choosing_is_refused_on_test_with_given_lambdas_or_on_an_export(run_copy, synth_dir,
                                                                        tmp_path):
    with pytest.raises(MiaError, match="never on test"):
        evaluate_run(run_copy, synth_dir, "test", choose_lambdas=True, progress=False)
    with pytest.raises(MiaError, match="give neither"):
        evaluate_run(run_copy, synth_dir, "val", choose_lambdas=True, lambda1=1.0,
                     progress=False)
    export_run(run_copy, tmp_path / "m.pt")
    with pytest.raises(MiaError, match="is not a run directory"):
        evaluate_run(tmp_path / "m.pt", synth_dir, "val", choose_lambdas=True,
                     progress=False)
    assert not (run_copy / "fusion.json").exists()


def test_a_corrupt_fusion_file_is_named(run_copy):
    (run_copy / "fusion.json").write_text("{\"lambda1\": 1")
    with pytest.raises(CheckpointError, match=r"fusion.json: corrupt fusion weights"):
        load_trained(run_copy)


def test_a_weight_the_ablation_leaves_out_stays_zero():
    torch.manual_seed(3)
    pids = list(range(10))
    truth = torch.eye(10)
    scores = {"sG": torch.rand(10, 10), "sR": torch.rand(10, 10),
              "sL": truth + 0.1 * torch.rand(10, 10)}
    inputs = inputs_for(pids, pids)
    assert choose_lambdas(scores, inputs, default=(1.0, 0.5))["lambda2"] > 0  # sL is perfect
    gc_rga = choose_lambdas(scores, inputs, default=(1.0, 0.0))
    assert gc_rga["lambda2"] == 0.0 and len(gc_rga["grid"]) == 13
    gc = choose_lambdas(scores, inputs, default=(0.0, 0.0))
    assert (gc["lambda1"], gc["lambda2"], len(gc["grid"])) == (0.0, 0.0, 1)
