"""Greedy exact match on a run's eval sets, with per-fact correctness kept for the analyses.

Outcomes are those of decoding every answer greedily; ``probekit.exact_match`` decides most of them from one
teacher-forced pass and decodes only the rest (same outcomes, tested). θ0's outcomes can come from a
``BaseOutcomes`` cache shared by the runs of one base model: only the sets it lacks are evaluated."""
from __future__ import annotations

import torch

from probekit.entities import DEFAULT_PROMPT_FORMAT, Fact, build_prompt

from .base_outcomes import BaseOutcomes
from .config import EVAL_SETS
from probekit.exact_match import ExactMatch


@torch.inference_mode()
def evaluate(model, tokenizer, facts: dict[str, list[Fact]], limit: int | None, batch_size: int | None,
             prompt_format: str = DEFAULT_PROMPT_FORMAT,
             known: BaseOutcomes | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Greedy exact match on every eval set in `facts` (first `limit` facts of each), each question asked in the
    `prompt_format` the run trains on → (accuracy per set, per-fact correctness per set as a string of '0'/'1' in
    file order). With `known` (θ0 only), sets it holds are read from it and the others written to it."""
    model.eval()
    sets = {name: facts[name][:limit] for name in EVAL_SETS if facts.get(name)}
    prompts = {name: [build_prompt(f, prompt_format)[0] for f in subset] for name, subset in sets.items()}
    answers = {name: [list(f.answers) for f in subset] for name, subset in sets.items()}
    correct = {name: known.read(prompts[name], answers[name]) if known else None for name in sets}
    todo = [name for name in sets if correct[name] is None]
    hits = iter(ExactMatch(model, tokenizer, batch_size=batch_size).correct(
        [p for name in todo for p in prompts[name]], [a for name in todo for a in answers[name]]) if todo else [])
    for name in todo:
        correct[name] = "".join("1" if next(hits) else "0" for _ in sets[name])
        if known:
            known.write(prompts[name], answers[name], correct[name])
    return {name: bits.count("1") / len(bits) for name, bits in correct.items()}, correct
