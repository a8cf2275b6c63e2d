"""Greedy exact match on a run's eval sets, with per-fact correctness kept for the analyses."""
from __future__ import annotations

import torch

from probekit.answers import is_correct
from probekit.entities import Fact

from .config import EVAL_SETS
from .decoding import AnswerDecoder
from .slick import qa_text


@torch.inference_mode()
def evaluate(model, tokenizer, facts: dict[str, list[Fact]], limit: int | None, batch_size: int
             ) -> tuple[dict[str, float], dict[str, str]]:
    """Greedy exact match on every eval set in `facts` (first `limit` facts of each) → (accuracy per set,
    per-fact correctness per set as a string of '0'/'1' in file order)."""
    model.eval()
    decoder = AnswerDecoder(model, tokenizer, batch_size=batch_size)
    acc, correct = {}, {}
    for name in EVAL_SETS:
        subset = facts.get(name, [])[:limit]
        if subset:
            answers = decoder.decode([qa_text(f) for f in subset])
            hits = [is_correct(a[0], f.answers) for a, f in zip(answers, subset)]
            acc[name] = sum(hits) / len(subset)
            correct[name] = "".join("1" if h else "0" for h in hits)
    return acc, correct
