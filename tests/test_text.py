"""Tokenisation, noun phrases (offline), the phrase cache and the vocabulary."""

import json

import pytest

from mia.text.cache import cache_path, load_or_parse
from mia.text.phrases import parse_caption
from mia.text.tokenize import model_tokens, tokenize
from mia.text.vocab import PAD_ID, UNK_ID, Vocabulary
from mia.utils.errors import CheckpointError


def test_tokenize_splits_sentences_and_attached_periods():
    tokens = tokenize("He wears a shirt underneath.She has a bag. Walking!")
    assert tokens == ["He", "wears", "a", "shirt", "underneath", ".", "She", "has", "a", "bag",
                      ".", "Walking", "!"]
    assert model_tokens(tokens) == ["he", "wears", "a", "shirt", "underneath", "she", "has",
                                    "a", "bag", "walking"]


@pytest.mark.parametrize("text, expected", [
    ("A woman in a red t-shirt with a yellow bag over her shoulder, black trousers.",
     [["a", "woman"], ["a", "red", "t-shirt"], ["a", "yellow", "bag"], ["her", "shoulder"],
      ["black", "trousers"]]),
    ("The man has short black hair and is wearing a dark grey jacket with a white shirt "
     "underneath. He is wearing blue jeans and carrying a black backpack.",
     [["the", "man"], ["short", "black", "hair"], ["a", "dark", "grey", "jacket"],
      ["a", "white", "shirt"], ["blue", "jeans"], ["a", "black", "backpack"]]),
    ("a man in a black and white striped shirt with khaki shorts and brown sandals",
     [["a", "man"], ["a", "black", "and", "white", "striped", "shirt"], ["khaki", "shorts"],
      ["brown", "sandals"]]),
])
def test_noun_phrases_of_pedestrian_descriptions(text, expected):
    assert parse_caption(text).phrases == expected


def test_caption_without_noun_phrase_still_yields_one_phrase():
    parsed = parse_caption("walking quickly")
    assert parsed.fallback and parsed.phrases == [["walking", "quickly"]]


def test_words_mode_makes_every_word_a_phrase():
    parsed = parse_caption("A red bag.", mode="words")
    assert parsed.phrases == [["a"], ["red"], ["bag"]]
    with pytest.raises(ValueError, match="unknown phrase mode"):
        parse_caption("x", mode="chunks")


def test_phrase_cache_is_written_reused_and_invalidated_by_edits(tmp_path, monkeypatch):
    ann = tmp_path / "reid_raw.json"
    ann.write_text(json.dumps([{"captions": ["a red bag"]}]))
    texts = ["a red bag", "a man in blue jeans"]
    first = load_or_parse(ann, texts)
    path = cache_path(ann, "noun_phrases")
    assert path.is_file() and path.parent.name == ".mia_cache"

    import mia.text.cache as cache_module

    def boom(*a, **k):
        raise AssertionError("recomputed although the cache is valid")

    monkeypatch.setattr(cache_module, "parse_many", boom)
    assert load_or_parse(ann, texts) == first  # from cache
    ann.write_text(json.dumps([{"captions": ["edited"]}]))
    assert cache_path(ann, "noun_phrases") != path  # the edit changes the key
    with pytest.raises(AssertionError, match="recomputed"):
        load_or_parse(ann, texts)


def test_parallel_parsing_equals_serial():
    from mia.text.cache import parse_many

    texts = [f"a man in a {c} jacket and black shoes" for c in ("red", "blue", "grey")] * 5
    assert parse_many(texts, workers=2, chunk=4) == parse_many(texts, workers=1)


def test_vocabulary_min_count_unknown_and_round_trip(tmp_path):
    vocab = Vocabulary.build([["a", "red", "bag"], ["a", "blue", "bag"]], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "a", "bag"]
    assert vocab.encode(["a", "red", "bag"]) == [2, UNK_ID, 3]
    assert PAD_ID == 0
    vocab.save(tmp_path / "v.json")
    again = Vocabulary.load(tmp_path / "v.json")
    assert again.words == vocab.words and again.fingerprint == vocab.fingerprint
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a vocabulary file"):
        Vocabulary.load(tmp_path / "bad.json")
