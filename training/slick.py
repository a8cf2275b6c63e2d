"""SLiCK knowledge categories (Gekhman et al., 2024): does the model already know a fact?

Each question is asked in ``runs`` few-shot prompts (``shots`` exemplars from the same relation's train split,
never the question itself), answered greedily; for the WeaklyKnown test it is also answered with ``samples``
temperature samples per prompt (T=0.5, top-40). With P_greedy and P_sampled the shares of correct answers:

- HighlyKnown: P_greedy = 1          - MaybeKnown: 0 < P_greedy < 1
- WeaklyKnown: P_greedy = 0 and P_sampled > 0                - Unknown: P_greedy = 0 and P_sampled = 0

An answer is correct if, after SQuAD normalisation (lower case, punctuation and the articles a/an/the removed,
whitespace collapsed), it equals any gold alias. Sampling only changes the category of a question no greedy run
got right, so by default only those are sampled (P_sampled is then null for the others); ``sample_all`` samples
every question. A question with one right and one wrong greedy answer is MaybeKnown whatever its other runs say,
so it leaves the later runs (``greedy_runs`` records how many it was asked, and P_greedy is over those): the same
categories at a fraction of the prompts. ``sample_all`` asks every question every run.

Exemplar modes: ``independent`` draws a fresh exemplar set per question and run (Gekhman's setting);
``shared`` draws one set per relation and run, so all its questions share the few-shot prefix and its KV cache is
computed once. Results are cached per question in JSONL and a run resumes after interruption.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from probekit.answers import is_correct
from probekit.config import option
from probekit.entities import Fact, fact_to_record
from probekit.errors import ProbekitError
from probekit.io import write_json

from probekit.decoding import AnswerDecoder

CATEGORIES = ("HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown")
EXEMPLAR_MODES = ("independent", "shared")


@dataclass(frozen=True)
class SlickConfig:
    """SLiCK settings; defaults are the study's (20 runs × 3 exemplars). PRESETS['gekhman']: 10 × 4-shot, 16 samples."""

    runs: int = option(20, "few-shot prompts (runs) per question")
    shots: int = option(3, "exemplars per prompt")
    samples: int = option(1, "temperature samples per prompt")
    temperature: float = option(0.5, "sampling temperature")
    top_k: int = option(40, "sampling: the top-k tokens")
    exemplars: str = option("independent", "independent: exemplars drawn for each question and prompt; shared: for "
                            "each relation and prompt, so its questions share the few-shot prefix (KV reuse)",
                            choices=EXEMPLAR_MODES)
    sample_all: bool = option(False, "sample every question, not only those no greedy prompt got right")
    max_new_tokens: int = option(16, "answer tokens decoded at most")
    seed: int = option(0, "exemplar and sampling seed")

    def __post_init__(self):
        if self.exemplars not in EXEMPLAR_MODES:
            raise ProbekitError(f"exemplar mode must be 'independent' or 'shared', not {self.exemplars!r}")
        if self.runs < 1 or self.shots < 0 or self.samples < 0:
            raise ProbekitError("runs must be ≥ 1, shots and samples ≥ 0")


PRESETS = {"study": SlickConfig(), "gekhman": SlickConfig(runs=10, shots=4, samples=16)}


def categorize(p_greedy: float, p_sampled: float | None) -> str:
    """SLiCK category from the share of correct greedy answers and of correct samples."""
    if p_greedy >= 1.0:
        return "HighlyKnown"
    if p_greedy > 0.0:
        return "MaybeKnown"
    return "WeaklyKnown" if (p_sampled or 0.0) > 0.0 else "Unknown"


def qa_text(fact: Fact) -> str:
    return f"Q: {fact.question}\nA:"


def exemplar_prefix(exemplars: list[Fact]) -> str:
    return "".join(f"{qa_text(e)} {e.answer}\n\n" for e in exemplars)


def choose_exemplars(fact: Fact, pool: list[Fact], run: int, config: SlickConfig) -> list[Fact]:
    """The exemplars of `fact` in `run`: seeded, from its relation's pool, never the question itself."""
    others = [e for e in pool if e.question != fact.question]
    if len(others) < config.shots:
        raise ProbekitError(f"relation {fact.relation} has only {len(others)} exemplars; {config.shots} shots needed")
    if config.exemplars == "shared":
        rng = random.Random(f"{config.seed}:{fact.relation}:{run}")
        chosen = rng.sample(pool, config.shots)
        if all(e.question != fact.question for e in chosen):
            return chosen
    rng = random.Random(f"{config.seed}:{fact.relation}:{run}:{fact.question}")
    return rng.sample(others, config.shots)


class Slick:
    """Runs SLiCK for one model; ``pools`` maps relation → exemplar facts (its train split)."""

    def __init__(self, model, tokenizer, pools: dict[str, list[Fact]], config: SlickConfig = SlickConfig(),
                 batch_size: int | None = None, stop_early: bool = True):
        """`stop_early`: a question whose category is settled (MaybeKnown) leaves the later greedy runs."""
        self.config, self.pools, self.stop_early = config, pools, stop_early and not config.sample_all
        self.decoder = AnswerDecoder(model, tokenizer, max_new_tokens=config.max_new_tokens, batch_size=batch_size)

    def _answers(self, facts: list[Fact], run: int, temperature: float, samples: int,
                 generator: torch.Generator | None) -> list[list[str]]:
        """Answers of every fact in one run, grouping facts that share a few-shot prefix."""
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(facts):
            if f.relation not in self.pools:
                raise ProbekitError(f"no exemplar pool for relation {f.relation!r} (question {f.question!r})")
            groups.setdefault(exemplar_prefix(choose_exemplars(f, self.pools[f.relation], run, self.config)),
                              []).append(i)
        out: list[list[str]] = [[] for _ in facts]
        if self.config.exemplars == "shared":
            for prefix, idx in groups.items():
                got = self.decoder.decode([qa_text(facts[i]) for i in idx], prefix=prefix, temperature=temperature,
                                          top_k=self.config.top_k, num_samples=samples, generator=generator)
                for i, a in zip(idx, got):
                    out[i] = a
        else:  # every prompt whole, batched across questions
            prompts = [""] * len(facts)
            for prefix, idx in groups.items():
                for i in idx:
                    prompts[i] = prefix + qa_text(facts[i])
            out = self.decoder.decode(prompts, temperature=temperature, top_k=self.config.top_k,
                                      num_samples=samples, generator=generator)
        return out

    def classify(self, facts: list[Fact], chunk_seed: int = 0) -> list[dict]:
        """SLiCK records (category, P_greedy, P_sampled, greedy answers) for `facts`."""
        c = self.config
        greedy: list[list[str]] = [[] for _ in facts]
        right = [[] for _ in facts]
        active = list(range(len(facts)))
        for run in range(c.runs):
            for i, a in zip(active, self._answers([facts[i] for i in active], run, 0.0, 1, None)):
                greedy[i].append(a[0])
                right[i].append(is_correct(a[0], facts[i].answers))
            if self.stop_early:  # right once and wrong once: MaybeKnown, settled
                active = [i for i in active if all(right[i]) or not any(right[i])]
        p_greedy = [sum(r) / len(r) for r in right]
        p_sampled: list[float | None] = [None] * len(facts)
        need = [i for i, p in enumerate(p_greedy) if c.samples and (c.sample_all or p == 0.0)]
        if need:
            gen = torch.Generator().manual_seed(c.seed * 1_000_003 + chunk_seed)
            hits = [0] * len(need)
            sub = [facts[i] for i in need]
            for run in range(c.runs):
                for j, answers in enumerate(self._answers(sub, run, c.temperature, c.samples, gen)):
                    hits[j] += sum(is_correct(a, sub[j].answers) for a in answers)
            for j, i in enumerate(need):
                p_sampled[i] = hits[j] / (c.runs * c.samples)
        return [
            {**fact_to_record(f), "category": categorize(pg, ps), "p_greedy": pg, "p_sampled": ps, "greedy": g,
             "greedy_runs": len(g)}
            for f, pg, ps, g in zip(facts, p_greedy, p_sampled, greedy)
        ]


def settings_record(config: SlickConfig, model: str) -> dict:
    return {"model": model, **asdict(config)}


def run_slick(slick: Slick, facts: list[Fact], out_file: Path, model_name: str, chunk: int = 64,
              progress: bool = True) -> list[dict]:
    """Classify `facts`, appending records to `out_file` (JSONL) chunk by chunk; resume from what is there.

    ``out_file.with_suffix('.settings.json')`` records the model and settings; results of other settings in the
    same file are an error, never silently mixed.
    """
    out_file = Path(out_file)
    settings = settings_record(slick.config, model_name)
    settings_file = out_file.with_suffix(".settings.json")
    if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        raise ProbekitError(f"{out_file} holds SLiCK results of other settings; choose another output")
    write_json(settings_file, settings)
    done: dict[tuple, dict] = {}
    text = out_file.read_text(encoding="utf-8") if out_file.exists() else ""
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by an interruption
            continue
        done[(rec.get("relation"), rec["question"])] = rec
    chunks = [facts[s : s + chunk] for s in range(0, len(facts), chunk)]
    with out_file.open("a", encoding="utf-8") as fh:
        if text and not text.endswith("\n"):
            fh.write("\n")  # end the cut line, so the next record starts a line of its own
        for n, part in enumerate(tqdm(chunks, desc=f"SLiCK {out_file.stem}", disable=not progress)):
            if all((f.relation, f.question) in done for f in part):
                continue
            seed = int(hashlib.sha256(f"{n}".encode()).hexdigest()[:8], 16)
            for rec in slick.classify(part, chunk_seed=seed):
                done[(rec.get("relation"), rec["question"])] = rec
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
    return [done[(f.relation, f.question)] for f in facts]


def category_shares(records: list[dict]) -> dict[str, float]:
    n = len(records) or 1
    return {c: sum(r["category"] == c for r in records) / n for c in CATEGORIES}

