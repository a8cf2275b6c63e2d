"""Probe capture vs the obvious baseline (one plain HF forward with output_hidden_states=True and full logits).

    python bench/probe_bench.py                       # embedded SmolLM2-135M, CPU, 512 EntityQuestions prompts
    python bench/probe_bench.py --arch qwen2.5-1.5b --device cuda --dtype bfloat16   # random-weight Qwen2.5-1.5B

Both sides get the same prompts, batch size, entity positions and inference mode; the baseline batches in input
order, ours sorts by length, stops at layer l when no logits are wanted, and computes the LM head only at the
answer position. Rounds alternate between the two and the median of each is reported, with the max abs
difference of states and answer logits.
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time

import torch

from probekit.capture import Prober
from probekit.entities import build_prompt, encode_batch
from probekit.models import load_model
from archs import ARCHS, random_model
from training.entityquestions import load_relation


def prompts(n: int, seed: int = 0):
    facts = [f for r in ("P17", "P36", "P407", "P495") for f in load_relation(r, "dev")]
    random.Random(seed).shuffle(facts)
    return facts[:n]


@torch.inference_mode()
def baseline(model, tokenizer, facts, layer, batch_size):
    """The obvious code: full forward, every hidden state, logits over the whole sequence."""
    states, logits = [], []
    device = next(model.parameters()).device
    for s in range(0, len(facts), batch_size):
        chunk = [build_prompt(f) for f in facts[s : s + batch_size]]
        batch = encode_batch(tokenizer, [p for p, _ in chunk], [sp for _, sp in chunk])
        out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                    output_hidden_states=True)
        rows = torch.arange(len(chunk), device=device)
        states.append(out.hidden_states[layer][rows, batch.entity_index.to(device)].float().cpu())
        logits.append(out.logits[:, -1].float().cpu())
    return torch.cat(states), torch.cat(logits)


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    result = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", choices=["embedded", *ARCHS], default="embedded")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--layers", type=int, help="override the layer count (a quick smoke test of --arch)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    dtype = getattr(torch, args.dtype)
    if args.arch == "embedded":
        model, tokenizer = load_model("embedded", dtype=dtype, device=args.device)
    else:  # random weights; the embedded tokenizer's ids fit in the vocabulary
        model, tokenizer = random_model(args.arch, args.layers, dtype, args.device)
    facts = prompts(args.n)
    prober = Prober(model, tokenizer, batch_size=args.batch_size)
    layer = prober.layer
    runs = {"baseline": [], "states": [], "states+logits": []}
    warm = facts[: 2 * args.batch_size]  # first calls pay for kernel selection and caches
    baseline(model, tokenizer, warm, layer, args.batch_size)
    prober.capture(warm, keep_logits=True)
    for _ in range(args.rounds):
        t, (ref_h, ref_z) = timed(lambda: baseline(model, tokenizer, facts, layer, args.batch_size), args.device)
        runs["baseline"].append(t)
        t, cap_h = timed(lambda: prober.capture(facts), args.device)
        runs["states"].append(t)
        t, cap_hz = timed(lambda: prober.capture(facts, keep_logits=True), args.device)
        runs["states+logits"].append(t)
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "arch": args.arch, "device": args.device, "dtype": args.dtype, "n": args.n, "batch_size": args.batch_size,
        "layer": layer, "num_layers": model.config.num_hidden_layers, "vocab": model.config.vocab_size,
        "seconds_median": med, "seconds_all": runs,
        "speedup_states": med["baseline"] / med["states"],
        "speedup_states_logits": med["baseline"] / med["states+logits"],
        "max_abs_diff_states": float((cap_h.states - ref_h).abs().max()),
        "max_abs_diff_states_logits_run": float((cap_hz.states - ref_h).abs().max()),
        "max_abs_diff_logits": float((cap_hz.logits - ref_z).abs().max()),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from probekit.io import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
