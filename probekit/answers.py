"""Answer matching, in one place: two normalisations for two jobs.

- ``squad_normalize``: SQuAD's rules (lower case, punctuation and the articles a/an/the dropped, whitespace
  collapsed). Decides whether a generated answer is correct (``is_correct``), as SLiCK and the evaluation do.
- ``answer_key``: case- and whitespace-insensitive only. Groups gold answers (the metrics' pairs P, the linear
  probe's classes), where "The Hague" and "Hague" are different answers.
"""
from __future__ import annotations

import re
import string

_PUNCTUATION = set(string.punctuation)


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
