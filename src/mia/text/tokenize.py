"""Caption tokenisation.

NLTK's ``word_tokenize(..., preserve_line=True)`` (Treebank rules, no downloaded data) on
each sentence; sentences are split with a regular expression because NLTK's Punkt sentence
splitter needs downloaded data. Tokens keep their case for the POS tagger; the model sees
:func:`model_tokens` (lower case, punctuation dropped).
"""

from __future__ import annotations

import re

from nltk.tokenize import word_tokenize

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[a-z][.!?])(?=[A-Z])")
_WORD = re.compile(r"[0-9a-z]")


def split_sentences(text: str) -> list[str]:
    """Split a caption into sentences on . ! ? ; followed by a space (or a capital letter)."""
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def tokenize(text: str) -> list[str]:
    """Case-preserving word tokens of a caption, punctuation kept as separate tokens."""
    tokens: list[str] = []
    for sentence in split_sentences(text):
        for token in word_tokenize(sentence, preserve_line=True):
            if len(token) > 1 and token[-1] == "." and token[:-1].isalpha():
                tokens.extend((token[:-1], "."))  # "underneath." left by preserve_line
            else:
                tokens.append(token)
    return tokens


def is_word(token: str) -> bool:
    """True for tokens the model embeds (anything with a letter or a digit)."""
    return bool(_WORD.search(token.lower()))


def model_tokens(tokens: list[str]) -> list[str]:
    """Lower-cased word tokens, punctuation dropped: the sequence the text encoder reads."""
    return [token.lower() for token in tokens if is_word(token)]
