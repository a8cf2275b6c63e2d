"""bf16 on the CPU: SLiCK, evaluation and the probe in fp32 (the obvious baseline, the quick profile's precision) vs
in bf16, on the embedded SmolLM2-135M, same questions, same run.

From the repository root with ``PYTHONPATH=.`` (it imports the checkout's ``training``, not installed):

    python bench/cpu_bf16_bench.py [--n 128] [--runs 2] [--out bench/results/cpu_bf16_bench_cpu.json]

A CPU with AMX or AVX512-BF16 (`lscpu` flags amx_bf16 / avx512_bf16) multiplies bf16 matrices several times faster
than fp32; without them bf16 is emulated and slower. Sides, each timed after a warm-up batch:
- SLiCK: `n` EntityQuestions dev questions (P17, P36, P407, P495 in turn), `runs` independent-exemplar 3-shot runs,
  one temperature sample for questions no greedy run gets right; fp32 weights vs bf16 weights (what
  ``--precision bf16-mixed`` gives SLiCK).
- Evaluation: greedy exact match on the same questions, zero-shot; fp32 (forced pass, decoding the rest) vs fp32
  weights under bf16 autocast (decoding every answer, as a bf16-mixed run evaluates).
- Probe: layer-15 entity states and answer logits, fp32 vs bf16 weights (what a bf16-mixed run's probe loads).
Training's ratio is `bench/train_bench.py --precision fp32` vs `--precision bf16-mixed`.

Reports seconds, rates, speed-ups, and what bf16 changes: greedy answers, SLiCK categories and evaluation outcomes
that differ from fp32, and the probe states' relative drift from fp32's (1 − cos, the RD of no training).
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import time

import torch

from probekit.capture import Prober
from probekit.entities import Fact
from probekit.io import write_json
from probekit.metrics import DEFAULT_K
from probekit.models import load_model
from training.entityquestions import load_relation
from training.evaluation import evaluate
from training.slick import Slick, SlickConfig

RELATIONS = ("P17", "P36", "P407", "P495")


def questions(n: int) -> tuple[list[Fact], dict[str, list[Fact]]]:
    """`n` dev questions taken from the relations in turn, and each relation's train split as exemplar pool."""
    dev = {r: load_relation(r, "dev") for r in RELATIONS}
    facts = [dev[RELATIONS[i % len(RELATIONS)]][i // len(RELATIONS)] for i in range(n)]
    return facts, {r: load_relation(r, "train") for r in RELATIONS}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.manual_seed(0)
    fp32, tok = load_model("embedded", device="cpu", dtype="float32")
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    facts, pools = questions(args.n)
    config = SlickConfig(runs=args.runs, samples=1, exemplars="independent")
    out: dict = {"machine": platform.platform(), "processor": platform.processor(), "torch": torch.__version__,
                 "threads": torch.get_num_threads(), "n": args.n, "runs": args.runs}

    def slick(model):
        Slick(model, tok, pools, config).classify(facts[:8])  # warm-up
        return timed(lambda: Slick(model, tok, pools, config).classify(facts))

    (a, ta), (b, tb) = slick(fp32), slick(bf16)
    pairs = [(x, y) for r, s in zip(a, b) for x, y in zip(r["greedy"], s["greedy"])]
    out["slick"] = {"fp32_s": ta, "bf16_s": tb, "speedup": ta / tb,
                    "greedy_answers_differ": sum(x != y for x, y in pairs), "greedy_answers_compared": len(pairs),
                    "categories_differ": sum(r["category"] != s["category"] for r, s in zip(a, b))}

    sets = {"held": facts}

    def evaluation(autocast: bool):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            evaluate(fp32, tok, {"held": facts[:8]}, None, 64)  # warm-up
            return timed(lambda: evaluate(fp32, tok, sets, None, 64)[1]["held"])

    (ea, ta), (eb, tb) = evaluation(False), evaluation(True)
    out["evaluation"] = {"fp32_s": ta, "bf16_autocast_s": tb, "speedup": ta / tb,
                         "outcomes_differ": sum(x != y for x, y in zip(ea, eb)), "facts": len(ea)}

    def probe(model):
        prober = Prober(model, tok, layer=15)
        prober.capture(facts[:8], topk=DEFAULT_K)  # warm-up
        return timed(lambda: prober.capture(facts, topk=DEFAULT_K).states)

    (pa, ta), (pb, tb) = probe(fp32), probe(bf16)
    cos = torch.nn.functional.cosine_similarity(pa, pb, dim=-1)
    out["probe"] = {"fp32_s": ta, "bf16_s": tb, "speedup": ta / tb, "mean_1_minus_cos": float((1 - cos).mean())}
    print(json.dumps(out, indent=2))
    if args.out:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
