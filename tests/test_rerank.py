"""Re-ranking with the gallery's image-image similarities: a no-op at BETA 0, a gain where a
person's images resemble each other, exact agreement with the evaluation that reports it."""

import pytest
import torch

from mia.cli.main import main
from mia.evaluation.metrics import rank_metrics
from mia.evaluation.rerank import expand, image_affinity, parse_rerank
from mia.evaluation.run_eval import evaluate_run
from mia.model.embeddings import ImageEmbeddings


def embeddings(person_of: list[int], dim=16, parts=3, noise=0.3, seed=0) -> ImageEmbeddings:
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(max(person_of) + 1, dim, generator=g)
    glob = centre[person_of] + noise * torch.randn(len(person_of), dim, generator=g)
    stripes = glob[:, None, :] + noise * torch.randn(len(person_of), parts, dim, generator=g)
    zeros = torch.zeros_like(stripes)
    return ImageEmbeddings(glob, stripes, zeros, zeros)


def test_affinity_is_symmetric_with_unit_diagonal():
    a = image_affinity(embeddings([0, 0, 1, 2]))
    assert torch.allclose(a, a.T, atol=1e-6)
    assert torch.allclose(a.diagonal(), torch.ones(4), atol=1e-6)


def test_beta_zero_keeps_every_ranking():
    torch.manual_seed(1)
    scores = torch.rand(7, 9)
    out = expand(scores, image_affinity(embeddings(list(range(9)))), k=3, beta=0.0, chunk=2)
    assert torch.equal(out.argsort(1, descending=True), scores.argsort(1, descending=True))


def test_expansion_finds_a_persons_other_images():
    people = [i // 3 for i in range(60)]  # 20 people, 3 images each
    img = embeddings(people, noise=0.2)
    q_pids = torch.arange(20)
    g_pids = torch.tensor(people)
    torch.manual_seed(2)
    truth = (q_pids[:, None] == g_pids[None, :]).float()
    first = torch.zeros_like(truth)
    first[torch.arange(20), torch.arange(20) * 3] = 1.0  # each caption sees one image well
    scores = 0.9 * first + torch.rand(20, 60)
    before = rank_metrics(scores, q_pids, g_pids)
    after = rank_metrics(expand(scores, image_affinity(img), k=1, beta=1.0), q_pids, g_pids)
    assert after["mAP"] > before["mAP"] + 10


def test_bad_parameters_are_named():
    assert parse_rerank("3:0.5") == (3, 0.5)
    for bad in ("3", "a:1", "0:1", "2:-1"):
        with pytest.raises(ValueError, match=rf"--rerank '{bad}'"):
            parse_rerank(bad)
    with pytest.raises(SystemExit):
        main(["evaluate", "--run", "x", "--data", "y", "--rerank", "0:1"])


def test_evaluate_reports_the_reranked_fusion_alongside(trained_run, synth_dir):
    plain = evaluate_run(trained_run[0], synth_dir, "test", progress=False, save=False,
                         rerank=(3, 0.0))
    assert plain["sF_rerank"] == pytest.approx(plain["sF"])
    assert plain["meta"]["rerank"] == {"k": 3, "beta": 0.0}
    moved = evaluate_run(trained_run[0], synth_dir, "test", progress=False, save=False,
                         rerank=(3, 1.0))
    assert moved["sF"] == plain["sF"] and moved["sF_rerank"] != plain["sF_rerank"]
