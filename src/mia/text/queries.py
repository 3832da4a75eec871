"""A user's description read as the model reads captions, with clear errors and warnings.

Shared by the Python API (:mod:`mia.api`), ``mia search`` and the web page: an empty
description, or one without a word in Latin letters, is an error; a description the model
can only partly read is searched, with warnings that say so.
"""

from __future__ import annotations

from mia.text.phrases import ParsedCaption, parse_caption
from mia.text.vocab import Vocabulary
from mia.utils.errors import MiaError

MAX_QUERY_WORDS = 120  # CUHK-PEDES captions have at most ~96 words
UNKNOWN_WORDS = "unknown words ignored by the model"


class QueryError(MiaError):
    """A description that cannot be searched (empty, or no readable words)."""


def read_query(text: str, phrase_mode: str, vocab: Vocabulary,
               wordpieces: bool = False) -> tuple[ParsedCaption, list[str]]:
    """(parsed description, warnings). ``wordpieces``: the model reads words by their
    WordPieces (the MiniLM word encoder), so words outside its vocabulary still count."""
    if not text or not text.strip():
        raise QueryError("the query is empty; describe the person, e.g. 'a woman in a "
                         "red t-shirt and black trousers'")
    warnings = []
    parsed = parse_caption(text, phrase_mode)
    if not parsed.tokens:
        raise QueryError("the query has no words the model can read (it reads "
                         "English words in Latin letters)")
    if len(parsed.tokens) > MAX_QUERY_WORDS:
        warnings.append(f"the query has {len(parsed.tokens)} words; only the first "
                        f"{MAX_QUERY_WORDS} are used")
        spans = [(a, min(b, MAX_QUERY_WORDS)) for a, b in parsed.spans if a < MAX_QUERY_WORDS]
        parsed = parsed._replace(tokens=parsed.tokens[:MAX_QUERY_WORDS], spans=spans)
    if wordpieces:
        return parsed, warnings
    unknown = [t for t in parsed.tokens if t not in vocab.index]
    if len(unknown) == len(parsed.tokens):
        warnings.append("none of the query's words is in the model's vocabulary; the "
                        "results are not meaningful")
    elif unknown:
        warnings.append(f"{UNKNOWN_WORDS}: {' '.join(unknown[:10])}")
    return parsed, warnings
