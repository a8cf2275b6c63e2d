"""The paper profile's wall time on the card the benches ran on, from their measured throughputs (gpu_check.sh).

    python bench/paper_wall_time.py OUT_DIR        # reads train_bench.json, probe_bench.json, slick_bench.json there

Assumptions (the paper profile; change them here): 16,000 training facts (8,000 D_Known + 8,000 D_Unk) of ≈ 24
tokens each, 20 epochs per run; six runs: sft, freeze and l2 at the SFT step's cost, top-k and random-k at the top-k
step's, full self-distillation at its own; each run evaluates 16,000 + 2,000 held facts and probes 2,000 held
prompts (states + top-k answer logits) at each of its 21 checkpoints; SLiCK classifies 40,000 questions × 20 runs
(3-shot, independent exemplars, as the paper profile does), and each evaluated fact costs one SLiCK question-run
(one greedy decode). Nothing else (loading, saving, teacher caches) is counted. Throughputs are the benches'
medians on random weights of the same config, training at the smallest batch size the bench measured (packed rows).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

FACTS, TOKENS_PER_FACT, EPOCHS = 16_000, 24, 20
# step kind → runs at its cost
RUNS = {"ours_sft_packed": 3, "ours_distill_topk_packed": 2, "ours_distill_full_packed": 1}
EVAL_FACTS, PROBE_PROMPTS, CHECKPOINTS = 18_000, 2_000, EPOCHS + 1
SLICK_QUESTION_RUNS = 40_000 * 20


def estimate(out: Path) -> dict:
    train = json.loads((out / "train_bench.json").read_text())
    probe = json.loads((out / "probe_bench.json").read_text())
    slick = json.loads((out / "slick_bench.json").read_text())
    sizes = train["batch_sizes"]
    tps = sizes[min(sizes, key=int)]["tokens_per_s_median"]  # the smallest batch measured: nearest the paper's 32
    hours = {f"train_{k}_per_run": FACTS * TOKENS_PER_FACT * EPOCHS / tps[k] / 3600 for k in RUNS}
    per_prompt = probe["seconds_median"]["states+topk"] / probe["n"]
    mode = slick["modes"].get("independent") or next(iter(slick["modes"].values()))  # the paper profile's mode
    per_decode = mode["seconds_ours"] / (mode["questions"] * slick["runs"])
    runs = sum(RUNS.values())
    hours["training"] = sum(n * hours[f"train_{k}_per_run"] for k, n in RUNS.items())
    hours["probes"] = runs * CHECKPOINTS * PROBE_PROMPTS * per_prompt / 3600
    hours["evaluation"] = runs * CHECKPOINTS * EVAL_FACTS * per_decode / 3600
    hours["slick"] = SLICK_QUESTION_RUNS * per_decode / 3600
    hours["total"] = hours["training"] + hours["probes"] + hours["evaluation"] + hours["slick"]
    return {"hours": hours, "device": train.get("gpu", train["device"]), "arch": train["arch"],
            "assumptions": __doc__.split("Assumptions")[1].strip()}


if __name__ == "__main__":
    result = estimate(Path(sys.argv[1]))
    (Path(sys.argv[1]) / "estimate.json").write_text(json.dumps(result, indent=2))
    print(f"paper profile on {result['device']} ({result['arch']}), estimated hours:")
    for k, v in result["hours"].items():
        print(f"  {k:32s} {v:10.2f}")
