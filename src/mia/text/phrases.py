"""Noun-phrase extraction as in the paper: NLTK tokenisation, POS tagging, regexp chunking.

The paper tags with NLTK, whose tagger models are downloaded at run time. To run offline on
a fresh machine we tag with the Penn-tagset lexicon and Brill rules that ship inside the
``textblob`` wheel (the ``pattern`` tagger), extended by a small lexicon of pedestrian words
(garments, colours) that the general lexicon lacks or mis-tags. Chunking is NLTK's
``RegexpParser`` with :data:`NP_GRAMMAR`.

A caption with no noun phrase still yields one phrase: all of its words (flagged
``fallback``), so every caption has ``m >= 1`` phrases for RGA and BFM.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from nltk import RegexpParser

from mia.text.tokenize import is_word, model_tokens, tokenize

EXTRACTOR_VERSION = "np-v2"
PHRASE_MODES = ("noun_phrases", "words")

# Optional determiner/possessive/number, then adjectives (with "black and white"-style
# coordinations) and nouns, ending in one or more nouns.
NP_GRAMMAR = r"NP: {<DT|PRP\$|CD>?<RB.*>?(<JJ.*|VBN>(<CC><JJ.*|VBN>)?|<NN.*|CD>)*<NN.*>+}"

_NOUNS = (
    "t-shirt tshirt tee shirt top blouse tank jersey sweater sweatshirt hoodie jacket coat "
    "blazer cardigan vest parka windbreaker uniform dress gown skirt jeans pants trousers "
    "slacks shorts leggings capris khakis tights jumpsuit overalls sneakers trainers shoes "
    "boots sandals heels flats loafers slippers socks backpack bag handbag purse tote satchel "
    "suitcase luggage briefcase umbrella phone cellphone scarf cap hat beanie hood helmet "
    "glasses sunglasses ponytail bun hair belt watch bottle"
).split()
_ADJECTIVES = (
    "red orange yellow green blue purple pink brown black white grey gray beige navy khaki "
    "maroon teal tan burgundy turquoise violet cyan dark light bright pale striped plaid "
    "checked checkered floral patterned printed sleeveless short-sleeved long-sleeved "
    "short-sleeve long-sleeve knee-length ankle-length denim leather"
).split()
DOMAIN_LEXICON = {
    **{w: "NN" for w in _NOUNS},
    **{w: "NNS" for w in ("jeans", "pants", "trousers", "slacks", "shorts", "leggings", "capris",
                          "khakis", "tights", "sneakers", "trainers", "shoes", "boots",
                          "sandals", "heels", "flats", "loafers", "slippers", "socks",
                          "glasses", "sunglasses", "overalls")},
    **{w: "JJ" for w in _ADJECTIVES},
}


class ParsedCaption(NamedTuple):
    """What the model sees of a caption: word tokens, and phrases as ``[start, end)`` spans
    of those tokens (a phrase is always a contiguous run of words)."""

    tokens: list[str]
    spans: list[tuple[int, int]]
    fallback: bool  # True when no noun phrase was found and the whole caption is the phrase

    @property
    def phrases(self) -> list[list[str]]:
        return [self.tokens[a:b] for a, b in self.spans]


@lru_cache(maxsize=1)
def _tagger():
    """(find_tags, lexicon): textblob's pattern tagger with the domain lexicon merged in."""
    import textblob._text as pattern_text
    import textblob.en as textblob_en

    base = textblob_en.parser.lexicon
    lexicon = pattern_text.Lexicon(
        path="", morphology=None, context=None, entities=None, language="en"
    )
    dict.update(lexicon, dict(base.items()))  # .items() loads the lazy lexicon
    dict.update(lexicon, DOMAIN_LEXICON)
    lexicon.morphology, lexicon.context = base.morphology, base.context
    return pattern_text.find_tags, lexicon


@lru_cache(maxsize=1)
def _chunker() -> RegexpParser:
    return RegexpParser(NP_GRAMMAR)


def pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
    """Penn Treebank tags for case-preserving tokens (no downloads)."""
    if not tokens:
        return []
    find_tags, lexicon = _tagger()
    tagged = find_tags(
        tokens, lexicon=lexicon, morphology=lexicon.morphology, context=lexicon.context,
        language="en",
    )
    return [(word, tag) for word, tag in tagged]


def noun_phrase_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """Noun phrases of a case-preserving token list, as ``[start, end)`` spans of its word
    tokens (:func:`mia.text.tokenize.model_tokens`), in caption order."""
    spans, position = [], 0  # position: index among word tokens
    for node in _chunker().parse(pos_tag(tokens)):
        if isinstance(node, tuple):  # a token outside any chunk
            position += is_word(node[0])
            continue
        n_words = sum(is_word(word) for word, _ in node.leaves())
        if n_words:
            spans.append((position, position + n_words))
        position += n_words
    return spans


def noun_phrases(tokens: list[str]) -> list[list[str]]:
    """Noun phrases of a token list, each as lower-cased word tokens, in caption order."""
    words = model_tokens(tokens)
    return [words[a:b] for a, b in noun_phrase_spans(tokens)]


def parse_caption(text: str, mode: str = "noun_phrases") -> ParsedCaption:
    """Tokens and phrases of one caption.

    ``mode="noun_phrases"`` is the paper's method; ``mode="words"`` makes every word its own
    phrase (the paper's Table VII ablation).
    """
    if mode not in PHRASE_MODES:
        raise ValueError(f"unknown phrase mode {mode!r} (valid: {', '.join(PHRASE_MODES)})")
    raw = tokenize(text)
    words = model_tokens(raw)
    if mode == "words":
        return ParsedCaption(words, [(i, i + 1) for i in range(len(words))], fallback=False)
    spans = noun_phrase_spans(raw)
    if not spans:
        return ParsedCaption(words, [(0, len(words))] if words else [], fallback=True)
    return ParsedCaption(words, spans, fallback=False)
