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
