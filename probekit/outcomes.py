"""Behaviour beside drift: does each checkpoint still answer the facts, and which held-out facts did it lose?

``correct(model, tokenizer, facts)`` is greedy exact match per fact (probekit.exact_match: SQuAD-normalised, any
gold alias; the trainer's own evaluation). A probed series keeps it per fact and checkpoint; from it come
``outcome_table`` (one row per checkpoint × fact set × fact, θ0 first), ``held_forgetting`` (ΔD_Held = peak −
last D_Held accuracy over θ0 and the checkpoints, in percentage points, with its fact-bootstrap interval, the peak
found inside each resample as in the study) and ``lost_facts`` (the held-out facts θ0 or the peak answered and the
last checkpoint does not).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .entities import DEFAULT_PROMPT_FORMAT, Fact, build_prompt
from .exact_match import ExactMatch
from .io import atomic_write, write_json
from .stats import accuracy_ci, forgetting_ci

#: fact set → the key of its per-fact outcomes in a capture (uint8 [N]: 1 = the greedy answer is correct)
OUTCOME_KEYS = {"held": "held_correct", "unknown": "unk_correct", "new": "new_correct"}


def outcomes_of(states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The per-fact outcomes among a capture's tensors."""
    return {k: v for k, v in states.items() if k in OUTCOME_KEYS.values()}


@torch.inference_mode()
def correct(model, tokenizer, facts: list[Fact], prompt_format: str = DEFAULT_PROMPT_FORMAT,
            batch_size: int | None = None) -> torch.Tensor:
    """Greedy exact match of each fact's question in `prompt_format` → uint8 [N] (1: correct)."""
    prompts = [build_prompt(f, prompt_format)[0] for f in facts]
    hits = ExactMatch(model, tokenizer, batch_size=batch_size).correct(prompts, [list(f.answers) for f in facts])
    return torch.tensor(hits, dtype=torch.uint8)


def outcome_table(run: str, names: list[str], indices: list[int], outcomes: list[dict[str, torch.Tensor]],
                  facts: dict[str, list[Fact] | None]) -> pd.DataFrame:
    """One row per model × fact set × fact: run, name, index, set, fact (its position in the set), question,
    answer (the first gold alias), correct. `names` / `indices` / `outcomes`: θ0 first, then the checkpoints."""
    rows = []
    for name, index, got in zip(names, indices, outcomes):
        for which, key in OUTCOME_KEYS.items():
            if key in got and facts.get(which):
                rows += [[run, name, index, which, i, f.question, f.answers[0], int(c)]
                         for i, (f, c) in enumerate(zip(facts[which], got[key].tolist()))]
    return pd.DataFrame(rows, columns=["run", "name", "index", "set", "fact", "question", "answer", "correct"])


def held_matrix(outcomes: list[dict[str, torch.Tensor]]) -> np.ndarray:
    """D_Held outcomes [E, N] (θ0 first) from the per-model outcome dicts."""
    return np.stack([o[OUTCOME_KEYS["held"]].numpy().astype(float) for o in outcomes])


def held_forgetting(correct: np.ndarray, names: list[str]) -> dict:
    """ΔD_Held of correct [E, N] (θ0 first): accuracy per model with intervals, the peak, ΔD_Held in pp with its
    95% interval, and how many facts were lost since θ0 and since the peak."""
    acc = accuracy_ci(correct)
    peak = int(correct.mean(1).argmax())
    delta = forgetting_ci(correct)
    lost_since = {ref: int(((correct[i] == 1) & (correct[-1] == 0)).sum())
                  for ref, i in (("theta0", 0), ("peak", peak))}
    return {
        "accuracy": {n: [float(v), float(lo), float(hi)] for n, v, lo, hi in zip(names, acc.value, acc.lo, acc.hi)},
        "peak": names[peak], "last": names[-1], "facts": int(correct.shape[1]),
        "delta_pp": [float(delta.value), float(delta.lo), float(delta.hi)],
        "lost_since_theta0": lost_since["theta0"], "lost_since_peak": lost_since["peak"],
    }


def lost_facts(correct: np.ndarray, names: list[str], held: list[Fact]) -> pd.DataFrame:
    """The held-out facts answered by θ0 or at the peak and not by the last model, with where each was answered."""
    peak = int(correct.mean(1).argmax())
    lost = np.flatnonzero(((correct[0] == 1) | (correct[peak] == 1)) & (correct[-1] == 0))
    return pd.DataFrame({
        "fact": lost, "question": [held[i].question for i in lost], "answer": [held[i].answers[0] for i in lost],
        "at_theta0": correct[0, lost].astype(int), f"at_peak ({names[peak]})": correct[peak, lost].astype(int),
        "last_answered": [names[int(np.flatnonzero(correct[:, i])[-1])] for i in lost],
    })


def summary_line(s: dict) -> str:
    """One line for the command line: D_Held at θ0, the peak and the last model, ΔD_Held with its interval."""
    acc = s["accuracy"]
    first = next(iter(acc))
    d, lo, hi = s["delta_pp"]
    return (f"D_Held accuracy: {first} {100 * acc[first][0]:.1f}%, peak {s['peak']} {100 * acc[s['peak']][0]:.1f}%, "
            f"last {s['last']} {100 * acc[s['last']][0]:.1f}% of {s['facts']} facts; ΔD_Held {d:.1f} pp "
            f"[{lo:.1f}, {hi:.1f}] (95% fact bootstrap); lost since θ0: {s['lost_since_theta0']}, since the peak: "
            f"{s['lost_since_peak']}")


def write_outcomes(out: Path | None, run: str, names: list[str], indices: list[int],
                   outcomes: list[dict[str, torch.Tensor]], facts: dict[str, list[Fact] | None]) -> dict | None:
    """The ΔD_Held summary of a probed series (``held_forgetting``; None without held outcomes); under `out` also
    ``outcomes.parquet`` (``outcome_table``), ``lost.csv`` (``lost_facts``) and ``held_forgetting.json``.
    `names` / `indices` / `outcomes`: θ0 first, then the checkpoints in series order."""
    if not outcomes or any(OUTCOME_KEYS["held"] not in o for o in outcomes):
        return None
    correct_ = held_matrix(outcomes)
    summary = held_forgetting(correct_, names)
    if out is not None:
        with atomic_write(Path(out) / "outcomes.parquet") as tmp:
            outcome_table(run, names, indices, outcomes, facts).to_parquet(tmp, index=False)
        with atomic_write(Path(out) / "lost.csv") as tmp:
            lost_facts(correct_, names, facts["held"]).to_csv(tmp, index=False)
        write_json(Path(out) / "held_forgetting.json", summary)
    return summary
