"""SLiCK speed: our batched, prefix-sharing implementation vs the obvious baseline (one `generate` per prompt).

From the repository root with ``PYTHONPATH=.`` (it imports the checkout's ``training``, not installed):

    python bench/slick_bench.py [--n 200] [--runs 5] [--modes shared independent]
    python bench/slick_bench.py --arch qwen2.5-1.5b --device cuda --dtype bfloat16 --n 64 --runs 2   # random weights

200 EntityQuestions P36 dev questions, embedded SmolLM2-135M, `runs` × 3-shot greedy (no samples), in each exemplar
mode. Both sides see identical prompts (same exemplars) and stop at the first newline or after 16 tokens; the
baseline calls `model.generate` once per prompt. Ours is timed as it runs (a question settled as MaybeKnown leaves
the later runs) and asking every question every run. Reports wall times, ratios, the prompts asked, and whether
every greedy answer and category agrees.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from archs import ARCHS, random_model
from probekit.io import write_json
from probekit.models import load_model
from probekit.decoding import DEFAULT_MAX_NEW_TOKENS, AnswerDecoder
from training.entityquestions import load_relation
from probekit.answers import is_correct
from training.slick import Slick, SlickConfig, categorize, choose_exemplars, exemplar_prefix, qa_text


@torch.inference_mode()
def baseline(model, tokenizer, facts, pool, config, stop_ids):
    """One HF `generate` call per (question, run) prompt."""
    answers = []
    for f in facts:
        per_run = []
        for run in range(config.runs):
            prompt = exemplar_prefix(choose_exemplars(f, pool, run, config)) + qa_text(f)
            enc = tokenizer(prompt, return_tensors="pt").to(model.device)
            out = model.generate(**enc, max_new_tokens=DEFAULT_MAX_NEW_TOKENS, do_sample=False,
                                 eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True)
            per_run.append(text.split("\n", 1)[0].strip())
        answers.append(per_run)
    return answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, help="ours: prompts per decoding batch (unset: 32 on CPU, 256 on a GPU)")
    ap.add_argument("--modes", nargs="+", default=["shared", "independent"])
    ap.add_argument("--arch", choices=["embedded", *ARCHS], default="embedded", help="others: random weights")
    ap.add_argument("--layers", type=int, help="override the layer count of --arch")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    if args.arch == "embedded":
        model, tokenizer = load_model("embedded", dtype=dtype, device=args.device)
    else:
        model, tokenizer = random_model(args.arch, args.layers, dtype, args.device)
    pool = load_relation("P36", "train")
    facts = load_relation("P36", "dev")[: args.n]
    stop_ids = AnswerDecoder(model, tokenizer).stop_ids.tolist()
    results = {"arch": args.arch, "device": args.device, "dtype": args.dtype, "n": args.n, "runs": args.runs,
               "shots": 3, "torch": torch.__version__,
               "threads": torch.get_num_threads(), "machine": platform.platform(), "modes": {}}
    for mode in args.modes:
        config = SlickConfig(runs=args.runs, shots=3, samples=0, exemplars=mode)
        slick = Slick(model, tokenizer, {"P36": pool}, config, batch_size=args.batch_size)
        every_run = Slick(model, tokenizer, {"P36": pool}, config, batch_size=args.batch_size, stop_early=False)
        slick.classify(facts[:4])  # warm-up: the first calls pay for kernel selection and caches
        baseline(model, tokenizer, facts[:1], pool, config, stop_ids)
        t = time.perf_counter()
        ours = slick.classify(facts)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        full = every_run.classify(facts)
        t_full = time.perf_counter() - t
        t = time.perf_counter()
        base = baseline(model, tokenizer, facts, pool, config, stop_ids)
        t_base = time.perf_counter() - t
        base_cat = [categorize(sum(is_correct(a, f.answers) for a in b) / args.runs, None) for f, b in zip(facts, base)]
        results["modes"][mode] = {
            "seconds_ours": t_ours, "seconds_baseline": t_base, "speedup": t_base / t_ours,
            "seconds_ours_every_run": t_full, "speedup_every_run": t_base / t_full,
            "prompts_asked": sum(o["greedy_runs"] for o in ours), "prompts_every_run": len(facts) * args.runs,
            "same_answers": sum(o["greedy"] == b for o, b in zip(full, base)),
            "same_answers_asked": sum(o["greedy"] == b[: o["greedy_runs"]] for o, b in zip(ours, base)),
            "same_categories": sum(o["category"] == c for o, c in zip(ours, base_cat)),
            "questions": len(facts),
            "shares": {c: sum(o["category"] == c for o in ours) / len(ours)
                       for c in ("HighlyKnown", "MaybeKnown", "Unknown")},
        }
        print(mode, json.dumps(results["modes"][mode]), flush=True)
        if args.out:  # after each mode: a run stopped later keeps what it measured
            write_json(args.out, results)


if __name__ == "__main__":
    main()
