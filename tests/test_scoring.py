"""Gallery-scale scoring equals the per-pair equations, whatever the chunking and dtype."""

import pytest
import torch

from mia.model.similarity import similarities
from mia.scoring.exact import ALL_KEYS, score_all
from tests.reference_mia import all_pairs, keyed
from tests.test_similarity import random_embeddings


def uneven(Q=13, G=11, m=7, seed=0):
    img, txt = random_embeddings(Q=7, G=G, m=m, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    counts = torch.randint(0, m + 1, (Q,), generator=gen)
    counts[0], counts[1] = 0, m  # a phrase-less caption and a full one
    mask = torch.zeros(Q, m, dtype=torch.bool)
    for q, c in enumerate(counts.tolist()):  # real phrases not always left-aligned
        slots = torch.randperm(m, generator=gen)[:c]
        mask[q, slots] = True
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    z = mask[..., None].float()
    from mia.model.embeddings import TextEmbeddings

    txt = TextEmbeddings(r(Q, 16), r(Q, m, 16) * z, mask, r(Q, m, 16) * z, r(Q, m, 16) * z)
    return img, txt


@pytest.mark.parametrize("block_elements,scale", [(7, 1.0), (97, 1.0), (1 << 21, 1.0),
                                                  (97, 10.0)])
def test_score_all_matches_the_reference_equations(block_elements, scale):
    img, txt = uneven()
    got = score_all(*keyed(img, txt, scale, scale), keys=ALL_KEYS,
                    block_elements=block_elements)
    keep = txt.phrase_mask.any(1)
    want = all_pairs(img, txt.select(keep), scale, scale)
    for key in ALL_KEYS:
        torch.testing.assert_close(got[key][keep].double(), want[key], atol=1e-4, rtol=1e-4,
                                   msg=lambda msg, k=key: f"{k}: {msg}")
    # a caption without phrases scores 0 on the phrase-based similarities, like the model
    assert torch.all(got["sT"][~keep] == 0) and torch.all(got["sP"][~keep] == 0)


def test_score_all_equals_the_model_similarities_on_padded_batches():
    img, txt = keyed(*uneven(seed=3))
    fast = score_all(img, txt, keys=ALL_KEYS, block_elements=50)
    slow = similarities(img, txt)
    for key in ALL_KEYS:
        torch.testing.assert_close(fast[key], slow[key], atol=1e-4, rtol=1e-4)


def test_tiny_memory_budget_still_exact():
    img, txt = keyed(*uneven(seed=5))
    a = score_all(img, txt, memory_mb=0.001)
    b = score_all(img, txt)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)


def test_bf16_products_stay_close():
    img, txt = keyed(*uneven(seed=2))
    a = score_all(img, txt, dtype=torch.bfloat16)
    b = score_all(img, txt)
    for key in a:
        assert a[key].dtype == torch.float32
        assert (a[key] - b[key]).abs().max() < 0.05


def test_unknown_key_is_an_error():
    img, txt = keyed(*uneven())
    with pytest.raises(ValueError, match="unknown similarity keys"):
        score_all(img, txt, keys=("s_x",))
