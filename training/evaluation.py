"""Greedy exact match on a run's eval sets, with per-fact correctness kept for the analyses.

Outcomes are those of decoding every answer greedily; ``training.exact_match`` decides most of them from one
teacher-forced pass and decodes only the rest (same outcomes, tested)."""
from __future__ import annotations

import torch

from probekit.entities import DEFAULT_PROMPT_FORMAT, Fact, build_prompt

from .config import EVAL_SETS
from .exact_match import ExactMatch


@torch.inference_mode()
def evaluate(model, tokenizer, facts: dict[str, list[Fact]], limit: int | None, batch_size: int | None,
             prompt_format: str = DEFAULT_PROMPT_FORMAT) -> tuple[dict[str, float], dict[str, str]]:
    """Greedy exact match on every eval set in `facts` (first `limit` facts of each), each question asked in the
    `prompt_format` the run trains on → (accuracy per set, per-fact correctness per set as a string of '0'/'1' in
    file order)."""
    model.eval()
    sets = {name: facts[name][:limit] for name in EVAL_SETS if facts.get(name)}
    flat = [f for subset in sets.values() for f in subset]
    prompts = [build_prompt(f, prompt_format)[0] for f in flat]
    hits = iter(ExactMatch(model, tokenizer, batch_size=batch_size).correct(prompts,
                                                                          [list(f.answers) for f in flat]))
    acc, correct = {}, {}
    for name, subset in sets.items():
        bits = [next(hits) for _ in subset]
        acc[name] = sum(bits) / len(subset)
        correct[name] = "".join("1" if h else "0" for h in bits)
    return acc, correct
