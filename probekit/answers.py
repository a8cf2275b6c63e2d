"""Answer matching, in one place: two normalisations for two jobs.

- ``squad_normalize``: SQuAD's rules (lower case, punctuation and the articles a/an/the dropped, whitespace
  collapsed). Decides whether a generated answer is correct (``is_correct``), as SLiCK and the evaluation do.
- ``answer_key``: case- and whitespace-insensitive only. Groups gold answers (the metrics' pairs P, the linear
  probe's classes), where "The Hague" and "Hague" are different answers.
- ``first_word_piece``: the prefix that every SQuAD-normalised answer starting with a given token keeps, when that
  can be guaranteed (what lets ``probekit.exact_match`` rule an answer out from its first token).
"""
from __future__ import annotations

import re
import string

_PUNCTUATION = set(string.punctuation)
_ARTICLE_PIECES = {"a", "an", "t", "th", "the"}  # what may still grow into an article that SQuAD drops


def squad_normalize(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def is_correct(prediction: str, answers: tuple[str, ...] | list[str]) -> bool:
    """A generated answer is correct when, SQuAD-normalised, it equals some normalised gold alias."""
    pred = squad_normalize(prediction)
    return bool(pred) and pred in {squad_normalize(a) for a in answers}


def answer_key(text: str) -> str:
    """A gold answer's identity: case-folded, whitespace collapsed."""
    return " ".join(text.casefold().split())


def first_word_piece(text: str) -> str | None:
    """SQuAD-normalised text of a first answer token when it is one alphanumeric word piece that every answer
    starting with this token keeps as its normalised prefix; None when that cannot be guaranteed."""
    if "\ufffd" in text or "Σ" in text:  # a split multi-byte character; context-dependent lower case
        return None
    w = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION).strip()
    return w if w.isalnum() and w not in _ARTICLE_PIECES else None
