"""The all-pairs similarities equal a literal per-pair implementation of the equations."""

import pytest
import torch

from mia.model.embeddings import ImageEmbeddings, TextEmbeddings
from mia.model.similarity import fuse, paired_attention, similarities
from tests.reference_mia import all_pairs, keyed


def random_embeddings(Q=5, G=4, n=6, m=5, D=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    img = ImageEmbeddings(r(G, D), r(G, n, D), r(G, n, D), r(G, n, D))
    counts = torch.tensor([1, m, 2, 3, m, 1, 4][:Q])
    mask = torch.arange(m)[None] < counts[:, None]
    phrases = r(Q, m, D) * mask[..., None]
    txt = TextEmbeddings(r(Q, D), phrases, mask, r(Q, m, D) * mask[..., None],
                         r(Q, m, D) * mask[..., None])
    return img, txt


@pytest.mark.parametrize("seed,s_rga,s_bfm", [(0, 1.0, 1.0), (1, 1.0, 1.0), (2, 8.0, 20.0)])
def test_all_pairs_equal_per_pair_equations(seed, s_rga, s_bfm):
    img, txt = random_embeddings(seed=seed)
    fast = similarities(*keyed(img, txt, s_rga, s_bfm))
    slow = all_pairs(img, txt, s_rga, s_bfm)
    for key in ("sG", "sI", "sT", "sR", "sP", "sN", "sL"):
        torch.testing.assert_close(fast[key].double(), slow[key], atol=1e-5, rtol=1e-5,
                                   msg=lambda m, k=key: f"{k}: {m}")


def test_padding_phrases_do_not_change_scores():
    img, txt = keyed(*random_embeddings())
    pad = 3
    wide = TextEmbeddings(
        txt.global_,
        torch.nn.functional.pad(txt.phrases, (0, 0, 0, pad), value=7.0),  # garbage in padding
        torch.nn.functional.pad(txt.phrase_mask, (0, pad), value=False),
        torch.nn.functional.pad(txt.rga_keys, (0, 0, 0, pad), value=-3.0),
        torch.nn.functional.pad(txt.bfm_keys, (0, 0, 0, pad), value=5.0),
    )
    a, b = similarities(img, txt), similarities(img, wide)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)


def test_caption_without_phrases_scores_zero_not_nan():
    img, txt = keyed(*random_embeddings())
    txt.phrase_mask[0] = False
    out = similarities(img, txt)
    for key in ("sT", "sP"):
        assert torch.isfinite(out[key]).all()
        assert torch.all(out[key][0] == 0)


def test_fuse_is_equation_18():
    s_g, s_r, s_l = torch.rand(3, 4, 5).unbind(0)
    scores = {"sG": s_g, "sR": s_r, "sL": s_l}
    torch.testing.assert_close(fuse(scores, 1.5, 0.7), s_g + 1.5 * s_r + 0.7 * s_l)
    torch.testing.assert_close(fuse(scores, 0.0, 0.0), s_g)
    torch.testing.assert_close(fuse({"sG": s_g, "sR": s_r}, 1.0, 0.5), s_g + s_r)


def test_paired_attention_is_the_diagonal_of_the_pair_weights():
    img, txt = keyed(*random_embeddings(Q=4, G=4))
    att = paired_attention(img, txt)
    assert att["v"].shape == (4, 6) and att["a"].shape == (4, 5, 6)
    torch.testing.assert_close(att["v"].sum(-1), torch.ones(4))
    torch.testing.assert_close(att["c"].sum(-1), torch.ones(4))
    # b sums to one over the caption's real phrases only
    torch.testing.assert_close(att["b"].sum(-1), torch.ones(4, 6))
    assert torch.all(att["b"][~txt.phrase_mask[:, None, :].expand(-1, 6, -1)] == 0)
