"""Identity and sum-of-hinges matching losses."""

import pytest
import torch

from mia.training.objectives import image_negatives, sum_of_hinges


def brute_hinges(S, image_index, margin):
    B = S.shape[0]
    total = 0.0
    for a in range(B):
        for b in range(B):
            if image_index[a] == image_index[b]:
                continue
            total += max(0.0, margin - S[a, a] + S[a, b])  # caption a vs negative image b
            total += max(0.0, margin - S[a, a] + S[b, a])  # image a vs negative caption b
    return total / B


@pytest.mark.parametrize("seed", range(3))
def test_sum_of_hinges_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    S = torch.rand(6, 6, generator=gen) * 2 - 1
    image_index = torch.tensor([0, 1, 2, 3, 4, 5])
    got = sum_of_hinges(S, image_negatives(image_index), 0.2)
    want = brute_hinges(S.double().numpy(), image_index.tolist(), 0.2)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_two_captions_of_one_image_are_not_negatives_but_same_person_images_are():
    image_index = torch.tensor([3, 3, 4])
    neg = image_negatives(image_index)
    assert not neg[0, 1] and not neg[1, 0] and neg[0, 2]
    S = torch.eye(3)
    S[0, 1] = S[1, 0] = 1.0  # same image: no penalty even though it scores high
    assert float(sum_of_hinges(S, neg, 0.2)) == pytest.approx(0.0)


def test_hinge_is_zero_when_positives_beat_negatives_by_the_margin():
    S = torch.full((4, 4), 0.1) + torch.eye(4) * 0.5
    assert float(sum_of_hinges(S, image_negatives(torch.arange(4)), 0.2)) == 0.0
    assert float(sum_of_hinges(S, image_negatives(torch.arange(4)), 0.6)) > 0.0


def test_random_erasing_zeroes_one_rectangle_per_chosen_sample():
    from mia.training.step import random_erasing

    torch.manual_seed(0)
    x = torch.rand(64, 3, 16, 6) + 1  # no zeros before erasing
    out = random_erasing(x, p=0.5)
    erased = (out == 0).all(1)  # [B, H, W]: every channel of a cell is zero or none is
    assert ((out == 0).any(1) == erased).all()
    touched = erased.flatten(1).any(1)
    assert 16 < touched.sum() < 48  # about half of the batch
    for i in torch.nonzero(touched).flatten():
        rows, cols = torch.nonzero(erased[i], as_tuple=True)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == h * w  # one solid rectangle
        assert 0 < len(rows) <= 16 * 6 * 0.4 + 6  # at most 40% of the map (rounding)
    assert torch.equal(out[~touched], x[~touched])  # the others are untouched
    assert random_erasing(x, p=0.0) is x


def test_label_smoothing_softens_the_identity_loss():
    from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
    from mia.training.objectives import MatchingConfig, compute_losses

    classifier = torch.nn.Linear(4, 3, bias=False)
    classifier.weight.data = torch.eye(3, 4) * 20  # confident and right
    model = type("M", (), {"classifier": classifier})()
    feats = torch.eye(3, 4)
    empty = torch.zeros(3, 0, 4)
    img = ImageEmbeddings(feats, empty, empty, empty)
    txt = TextEmbeddings.__new__(TextEmbeddings)
    txt.global_ = feats
    labels = torch.arange(3)
    cfg = MatchingConfig("sum_hinge", 0.2, "image", 0.05)
    hard = compute_losses(model, img, txt, labels, labels, {"id": 1.0}, cfg)
    soft = compute_losses(model, img, txt, labels, labels, {"id": 1.0}, cfg, 0.1)
    assert hard["id_image"] < 1e-6
    # smoothed target: 0.9 + 0.1/3 on the true class, so a confident classifier pays
    assert soft["id_image"] > 1.0 and torch.isclose(soft["id_image"], soft["id_text"])


def _gc_batch(b=4, d=8, seed=0):
    from mia.model.embeddings import ImageEmbeddings, TextEmbeddings

    gen = torch.Generator().manual_seed(seed)
    empty, mask = torch.zeros(b, 0, d), torch.zeros(b, 0, dtype=torch.bool)
    img = ImageEmbeddings(torch.randn(b, d, generator=gen), empty, empty, empty)
    txt = TextEmbeddings(torch.randn(b, d, generator=gen), empty, mask, empty, empty)
    classifier = torch.nn.Linear(d, 3)
    return type("M", (), {"classifier": classifier})(), img, txt, torch.tensor([0, 1, 2, 0])


def test_pair_weights_scale_each_pairs_share_and_ones_are_the_paper():
    from mia.model.similarity import similarities
    from mia.training.objectives import (
        MatchingConfig,
        compute_losses,
        hinge_pairs,
        image_negatives,
        pair_weights,
    )

    model, img, txt, labels = _gc_batch()
    cfg, losses, index = MatchingConfig(), {"id": 1.0, "gc": 1.0}, torch.arange(4)
    weak = torch.tensor([True, False, False, True])
    assert pair_weights(weak, 1.0) is None and pair_weights(torch.zeros(4, dtype=bool), 0.3) is None
    w = pair_weights(weak, 0.25)
    assert w.tolist() == [0.25, 1.0, 1.0, 0.25]
    plain = compute_losses(model, img, txt, labels, index, losses, cfg)
    ones = compute_losses(model, img, txt, labels, index, losses, cfg, weight=torch.ones(4))
    for k in plain:
        torch.testing.assert_close(ones[k], plain[k])
    torch.testing.assert_close(plain["match_gc"],
                               sum_of_hinges(similarities(img, txt, ("g",))["sG"],
                                             image_negatives(index), 0.2))
    weighted = compute_losses(model, img, txt, labels, index, losses, cfg, weight=w)
    pairs = hinge_pairs(similarities(img, txt, ("g",))["sG"], image_negatives(index), 0.2)
    torch.testing.assert_close(weighted["match_gc"], (pairs * w).sum() / 4)
    ce = torch.nn.functional.cross_entropy(model.classifier(img.global_), labels,
                                           reduction="none")
    torch.testing.assert_close(weighted["id_image"], (ce * w).sum() / 4)


def test_drop_hardest_leaves_out_the_pairs_with_the_highest_matching_loss():
    from mia.model.similarity import similarities
    from mia.training.objectives import (
        MatchingConfig,
        compute_losses,
        hinge_pairs,
        image_negatives,
    )

    model, img, txt, labels = _gc_batch(seed=1)
    index = torch.arange(4)
    pairs = hinge_pairs(similarities(img, txt, ("g",))["sG"], image_negatives(index), 0.2)
    worst = int(pairs.argmax())
    got = compute_losses(model, img, txt, labels, index, {"gc": 1.0}, MatchingConfig(),
                         drop_fraction=0.25)
    keep = torch.ones(4, dtype=torch.bool)
    keep[worst] = False
    torch.testing.assert_close(got["match_gc"], pairs[keep].sum() / 4)
    none = compute_losses(model, img, txt, labels, index, {"gc": 1.0}, MatchingConfig(),
                          drop_fraction=0.1)  # 0.1 x 4 pairs rounds to none
    torch.testing.assert_close(none["match_gc"], pairs.mean())
