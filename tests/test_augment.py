"""Phrase cutout (data.phrase_dropout): phrases leave whole, the rest of a caption stays,
spans and WordPiece indices still point at the same words, and it is deterministic."""

import random

import pytest

from mia.data.augment import drop_phrases
from mia.data.loading import EncodedCaption

# words 0..11: [a woman] wearing [a red shirt] and [black pants] carrying [a bag]
TOKENS = [10, 11, 20, 30, 31, 32, 40, 50, 51, 60, 70, 71]
SPANS = [(0, 2), (3, 6), (7, 9), (10, 12)]
PHRASE_WORDS = {tuple(TOKENS[a:b]) for a, b in SPANS}


def caption(pieces: bool = False) -> EncodedCaption:
    if not pieces:
        return EncodedCaption(TOKENS, SPANS)
    # two pieces for word 4 to check that many pieces of one word move together
    words = [-1, *range(4), 4, 4, *range(5, len(TOKENS)), -1]
    ids = [101] + [TOKENS[w] * 100 + i for i, w in enumerate(words[1:-1])] + [102]
    return EncodedCaption(TOKENS, SPANS, ids, words)


def test_each_phrase_goes_whole_and_the_words_between_stay():
    seen = set()
    for seed in range(50):
        out = drop_phrases(caption(), 0.5, random.Random(seed))
        phrases = [tuple(out.tokens[a:b]) for a, b in out.spans]
        assert 1 <= len(phrases) <= len(SPANS) and set(phrases) <= PHRASE_WORDS
        in_phrases = {w for a, b in out.spans for w in range(a, b)}
        between = [t for w, t in enumerate(out.tokens) if w not in in_phrases]
        assert between == [20, 40, 60]  # wearing, and, carrying
        assert out.spans == sorted(out.spans)
        seen.add(len(phrases))
    assert seen == {1, 2, 3, 4}


def test_at_least_one_phrase_stays_and_zero_or_one_phrase_is_unchanged():
    for seed in range(20):
        out = drop_phrases(caption(), 0.99, random.Random(seed))
        assert len(out.spans) == 1 and tuple(out.tokens[slice(*out.spans[0])]) in PHRASE_WORDS
    assert drop_phrases(caption(), 0.0, random.Random(0)) == caption()
    single = EncodedCaption([1, 2, 3], [(0, 3)])
    assert drop_phrases(single, 0.9, random.Random(0)) == single


def test_wordpieces_follow_their_words():
    for seed in range(30):
        out = drop_phrases(caption(pieces=True), 0.5, random.Random(seed))
        assert out.pieces[0] == 101 and out.pieces[-1] == 102
        assert out.piece_words[0] == out.piece_words[-1] == -1
        inner = list(zip(out.pieces[1:-1], out.piece_words[1:-1]))
        assert all(piece // 100 == out.tokens[w] for piece, w in inner)
        assert sorted({w for _, w in inner}) == list(range(len(out.tokens)))


@pytest.fixture
def pairs_of(synth_train_pairs):
    def make(p, epoch=0):
        pairs = synth_train_pairs(phrase_dropout=p)
        pairs.set_epoch(0, epoch)
        return [pairs[i]["caption"] for i in range(40)]
    return make


def test_train_pairs_drop_phrases_deterministically_per_epoch(pairs_of):
    plain, dropped = pairs_of(0.0), pairs_of(0.3)
    n_plain = sum(len(c.spans) for c in plain)
    n_dropped = sum(len(c.spans) for c in dropped)
    assert 0.55 * n_plain < n_dropped < 0.85 * n_plain
    for before, after in zip(plain, dropped):
        phrases = {tuple(before.tokens[a:b]) for a, b in before.spans}
        assert {tuple(after.tokens[a:b]) for a, b in after.spans} <= phrases
    assert dropped == pairs_of(0.3)
    assert dropped != pairs_of(0.3, epoch=1)
