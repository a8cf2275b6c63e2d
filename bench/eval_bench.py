"""Evaluation speed: greedy exact match decided by a teacher-forced pass (probekit.exact_match) vs decoding every
answer (the obvious baseline, what evaluation did before), on a run's own eval sets and checkpoints.

From the repository root with ``PYTHONPATH=.`` (it imports the checkout's ``training``, not installed):

    python bench/eval_bench.py RUN_DIR [RUN_DIR ...] [--batch-size N] [--out bench/results/eval_bench_cpu.json]

For each checkpoint kept in each run (θ0 and the last epoch in the quick profile), both sides judge every fact of
every eval set the run evaluates (the run's eval limit applies), one after the other on the same model. Reports
wall time per side, the speed-up, how each outcome was decided, and whether every per-fact outcome agrees.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from probekit.answers import is_correct
from probekit.entities import read_facts
from probekit.io import write_json
from probekit.models import load_causal_lm, load_tokenizer
from training.config import EVAL_SETS
from probekit.decoding import AnswerDecoder
from probekit.exact_match import ExactMatch
from training.run_dir import RunDir
from training.slick import qa_text


def eval_facts(run: RunDir) -> list:
    config = run.record()["config"]
    facts = []
    for name in EVAL_SETS:
        if config.get(name):
            facts += read_facts(config[name])[: config.get("eval_limit")]
    return facts


@torch.inference_mode()
def measure(path: Path, facts, batch_size: int | None, floor: bool = False, margin: float | None = None) -> dict:
    """Both sides on one checkpoint; with `floor`, decode-all once more at another batch size: how many outcomes
    decoding itself changes with the batch's padding (in 16-bit precision that is not zero)."""
    model, tokenizer = load_causal_lm(path), load_tokenizer(path)
    prompts, answers = [qa_text(f) for f in facts], [list(f.answers) for f in facts]
    start = time.perf_counter()
    decoded = AnswerDecoder(model, tokenizer, batch_size=batch_size).decode(prompts)
    baseline = [is_correct(t[0], a) for t, a in zip(decoded, answers)]
    t_base = time.perf_counter() - start
    judge = ExactMatch(model, tokenizer, batch_size=batch_size, margin=margin)
    start = time.perf_counter()
    ours = judge.correct(prompts, answers)
    t_ours = time.perf_counter() - start
    row = {"checkpoint": str(path), "facts": len(facts), "accuracy": sum(ours) / len(ours),
           "dtype": str(next(model.parameters()).dtype), "seconds_decode_all": t_base, "seconds_exact_match": t_ours,
           "margin": judge.margin, "speedup": t_base / t_ours, "decided": dict(judge.decided),
           "same_outcomes": ours == baseline, "differing_outcomes": sum(a != b for a, b in zip(ours, baseline))}
    if floor:
        other = max(1, judge.batch_size // 2)
        again = AnswerDecoder(model, tokenizer, batch_size=other).decode(prompts)
        row["decode_vs_decode_differing"] = sum(is_correct(t[0], a) != b for t, a, b in zip(again, answers, baseline))
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run directories written by python -m training run")
    ap.add_argument("--batch-size", type=int, help="prompts per forward, both sides (unset: 32 on CPU, 256 on a GPU)")
    ap.add_argument("--margin", type=float, help="exact match's trust margin (unset: its default; 16-bit: decode all)")
    ap.add_argument("--floor", action="store_true",
                    help="also decode-all at half the batch size: the outcomes decoding itself changes")
    ap.add_argument("--out", type=Path, default=Path("bench/results/eval_bench_cpu.json"), help="JSON results")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for run_path in args.runs:
        run = RunDir(run_path)
        facts = eval_facts(run)
        for ckpt in sorted(run.checkpoints.glob("epoch-*")):
            row = measure(ckpt, facts, args.batch_size, args.floor, args.margin)
            print(json.dumps(row), flush=True)
            rows.append(row)
    total_base = sum(r["seconds_decode_all"] for r in rows)
    total_ours = sum(r["seconds_exact_match"] for r in rows)
    summary = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "batch_size": args.batch_size, "rows": rows, "total_speedup": total_base / total_ours,
               "all_same_outcomes": all(r["same_outcomes"] for r in rows)}
    write_json(args.out, summary)
    print(f"decode-all {total_base:.1f} s, exact match {total_ours:.1f} s: {total_base / total_ours:.2f}×; "
          f"same outcomes: {summary['all_same_outcomes']}")


if __name__ == "__main__":
    main()
