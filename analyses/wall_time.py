"""A dry run's wall-time estimate on the 2-core CPU machine, from throughputs measured there.

Rates are those of the embedded SmolLM2-135M in fp32 (``--precision bf16-mixed``: times the speed-ups measured
there in bf16) on the 2-core x86_64 CPU (torch 2.13.0+cpu, 2026-11-27):
training tokens/s are the medians of the quick-profile runs' recorded ``tokens_per_s`` (non-padded tokens, batch 16);
evaluation facts/s are ``bench/eval_bench.py`` on a trained checkpoint and on θ0; probe prompts/s are
``bench/probe_bench.py`` (states + answer logits); SLiCK prompts/s are ``bench/slick_bench.py`` per exemplar mode,
before the early stop's savings (4% of the quick profile's prompts). Another model's time scales with its parameter
count. Loading, saving, teacher caches and an analysis's own passes (recall's probe of every layer) are not counted.
These rates give the time from scratch; ``analyses.dry_run`` also subtracts what --runs-dir already holds.
"""
from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

from training import entityquestions
from training.config import RunConfig

from .profiles import Profile

REFERENCE_PARAMS = 134.5e6  # SmolLM2-135M, whose rates these are
KNOWN_PARAMS = {"embedded": REFERENCE_PARAMS, "smollm2-135m": REFERENCE_PARAMS, "gemma3-270m": 268.1e6}
TOKENS_PER_FACT = 24
MAYBE_KNOWN_SHARE, WEAKLY_KNOWN_SHARE = 0.38, 0.06  # of dev questions (bench/RESULTS.md, SLiCK categories)
NO_GREEDY_HIT_SHARE = 0.6  # questions no greedy run gets right, which SLiCK then samples (quick profile: 0.63)


@dataclass(frozen=True)
class Rates:
    """Throughputs of the reference model: training (non-padded tokens/s per condition, or per variant of
    self-distillation), evaluation (facts/s), the probe (prompts/s) and SLiCK (prompts/s per exemplar mode)."""

    train_tokens_per_s: dict[str, float] = field(default_factory=lambda: {
        "sft": 150.0, "freeze": 150.0, "l2": 125.0, "full": 90.0, "topk": 135.0, "randomk": 135.0})
    eval_facts_per_s: float = 41.0  # a trained checkpoint: outcomes mostly decided by the forced pass
    base_eval_facts_per_s: float = 18.0  # θ0: mostly decoded; once per base model (training.base_outcomes)
    probe_prompts_per_s: float = 40.0
    slick_prompts_per_s: dict[str, float] = field(default_factory=lambda: {"independent": 7.1, "shared": 23.8})


CPU = Rates()
# --precision bf16-mixed on the same CPU (AMX): fp32's rates times the speed-ups measured there (bench/RESULTS.md):
# training by bench/train_bench.py (SFT 1.07×, full distillation 1.40×; the others unmeasured, taken at SFT's), the
# rest by bench/cpu_bf16_bench.py; a bf16-mixed run evaluates by decoding every answer under autocast (θ0's rate)
BF16_TRAIN_SPEEDUP = {"full": 1.40}  # the other kinds at SFT's
BF16_SPEEDUP = {"sft": 1.07, "eval": 1.48, "probe": 1.87, "slick": 2.42}
CPU_BF16 = Rates(
    train_tokens_per_s={kind: rate * BF16_TRAIN_SPEEDUP.get(kind, BF16_SPEEDUP["sft"])
                        for kind, rate in CPU.train_tokens_per_s.items()},
    eval_facts_per_s=CPU.base_eval_facts_per_s * BF16_SPEEDUP["eval"],
    base_eval_facts_per_s=CPU.base_eval_facts_per_s * BF16_SPEEDUP["eval"],
    probe_prompts_per_s=CPU.probe_prompts_per_s * BF16_SPEEDUP["probe"],
    slick_prompts_per_s={k: v * BF16_SPEEDUP["slick"] for k, v in CPU.slick_prompts_per_s.items()})


def rates(precision: str | None) -> Rates:
    """The measured rates of a precision: bf16 ones for bf16-mixed / bf16, else fp32's (auto is fp32 on the CPU)."""
    return CPU_BF16 if precision in ("bf16-mixed", "bf16") else CPU


def parameters(model: str) -> float:
    """A model's parameter count, from its safetensors headers (nothing loaded), or the packaged models' known
    counts; the reference model's if neither is at hand."""
    if model in KNOWN_PARAMS:
        return KNOWN_PARAMS[model]
    total = 0
    for f in Path(model).glob("*.safetensors"):
        with f.open("rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        total += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    return float(total) or REFERENCE_PARAMS


def dev_questions(profile: Profile) -> int:
    """The dev questions the profile gives SLiCK, over its relations."""
    return sum(len(entityquestions.load_relation(r, "dev")[: profile.dev_questions]) for r in profile.relations)


def slick_seconds(profile: Profile) -> float:
    """SLiCK over the profile's train and dev questions: `runs` greedy prompts per question, and `runs × samples`
    more for those no greedy run gets right (the early stop's few percent are not counted)."""
    if not profile.use_slick:
        return 0.0
    train = sum(len(entityquestions.load_relation(r, "train")[: profile.train_questions]) for r in profile.relations)
    per_question = profile.slick.runs * (1 + NO_GREEDY_HIT_SHARE * profile.slick.samples)
    prompts = (train + dev_questions(profile)) * per_question
    speed = rates(profile.run.precision).slick_prompts_per_s[profile.slick.exemplars]
    return prompts / speed * parameters(profile.model) / REFERENCE_PARAMS


def eval_facts(profile: Profile, unknown: int, held: int, dev: int) -> int:
    """Facts evaluated per checkpoint: every eval set, each cut at the eval limit; held-out MaybeKnown and
    WeaklyKnown as their shares of the `dev` questions SLiCK classifies (0 without SLiCK)."""
    sets = [profile.splits.known_size, unknown, held, round(MAYBE_KNOWN_SHARE * dev), round(WEAKLY_KNOWN_SHARE * dev)]
    return sum(min(n, profile.run.eval_limit or n) for n in sets)


def run_seconds(config: RunConfig, n_train: int, n_eval: int, n_held: int, profile: Profile) -> float:
    """One run: its epochs of training (the snapshot epochs of a recipe teacher on D_Known at SFT's rate), an
    evaluation after each epoch, and the probe at every checkpoint when it probes."""
    condition, epochs = config.condition, config.epochs
    kind = config.variant if condition == "self_distill" else condition
    snapshot = min(config.snapshot_epoch, epochs) if condition in ("self_distill", "l2") else 0
    r = rates(config.precision)
    train = ((epochs - snapshot) * n_train / r.train_tokens_per_s[kind]
             + snapshot * profile.splits.known_size / r.train_tokens_per_s["sft"]) * TOKENS_PER_FACT
    evaluation = epochs * n_eval / r.eval_facts_per_s
    probe = (epochs + 1) * 2 * n_held / r.probe_prompts_per_s if config.probe else 0.0
    return (train + evaluation + probe) * parameters(config.model) / REFERENCE_PARAMS


def base_eval_seconds(model: str, n_eval: int, precision: str | None = None) -> float:
    """θ0's evaluation: once per base model and eval sets (runs beside each other share it)."""
    return n_eval / rates(precision).base_eval_facts_per_s * parameters(model) / REFERENCE_PARAMS
