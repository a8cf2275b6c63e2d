"""Probe capture vs the obvious baseline (one plain HF forward with output_hidden_states=True and full logits).

From the repository root with ``PYTHONPATH=.`` (it imports the checkout's ``training``, not installed):

    python bench/probe_bench.py                       # embedded SmolLM2-135M, CPU, 512 EntityQuestions prompts
    python bench/probe_bench.py --arch qwen2.5-1.5b --device cuda --dtype bfloat16   # random-weight Qwen2.5-1.5B

Both sides get the same prompts, entity positions and inference mode; the baseline batches `--batch-size` prompts
in input order. Ours (``Prober``) sorts by length, stops at layer l when no logits are wanted, and computes the LM
head only at the answer position: "states" and "states+topk" (the k answer logits the series probe keeps, top-k
taken on the device) with the prober's own batching (on a GPU a token budget), "states+logits" (all V answer
logits back on the host) at the baseline's batch size. "hook_*" is the same work through a plain PyTorch forward
hook instead of nnsight, which measures what nnsight's tracing costs per batch. Rounds alternate; medians are
reported, with the max abs difference of states and answer logits.
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
from probekit.families import family_of
from probekit.metrics import DEFAULT_K
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


class _Stop(Exception):
    pass


@torch.inference_mode()
def hook_capture(model, tokenizer, facts, layer, batches, k=None):
    """Ours without nnsight: a forward hook on block l saves the entity states (and stops the pass unless the top-k
    answer logits are wanted, computed with logits_to_keep=1) → (states [N, d], top-k values [N, k] or None)."""
    device = next(model.parameters()).device
    block = family_of(model).decoder_layers(model)[layer - 1]
    states, values = torch.empty(len(facts), model.config.hidden_size), torch.empty(len(facts), k or 1)
    for idx in batches:
        chunk = [build_prompt(facts[i]) for i in idx]
        batch = encode_batch(tokenizer, [p for p, _ in chunk], [sp for _, sp in chunk])
        mask = batch.attention_mask.to(device)
        rows, cols = torch.arange(len(idx), device=device), batch.entity_index.to(device)
        saved = []

        def hook(module, args, out):
            saved.append((out[0] if isinstance(out, tuple) else out)[rows, cols].float().cpu())
            if k is None:
                raise _Stop

        handle = block.register_forward_hook(hook)
        try:
            out = model(input_ids=batch.input_ids.to(device), attention_mask=mask,
                        position_ids=(mask.cumsum(-1) - 1).clamp(min=0), logits_to_keep=1)
            values[idx] = out.logits[:, -1].float().topk(k, dim=-1).values.cpu()
        except _Stop:
            pass
        finally:
            handle.remove()
        states[idx] = saved[0]
    return states, values if k else None


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
    ap.add_argument("--batch-tokens", type=int, help="ours: tokens per batch (unset: the prober's default)")
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
    prober = Prober(model, tokenizer, batch_size=args.batch_size, batch_tokens=args.batch_tokens)
    fixed = Prober(model, tokenizer, batch_size=args.batch_size, batch_tokens=0)  # the baseline's batch size
    layer, batches = prober.layer, prober._batches(facts)
    fns = {
        "baseline": lambda: baseline(model, tokenizer, facts, layer, args.batch_size),
        "states": lambda: prober.capture(facts),
        "states+topk": lambda: prober.capture(facts, topk=DEFAULT_K),
        "states+logits": lambda: fixed.capture(facts, keep_logits=True),
        "hook_states": lambda: hook_capture(model, tokenizer, facts, layer, batches),
        "hook_states+topk": lambda: hook_capture(model, tokenizer, facts, layer, batches, DEFAULT_K),
    }
    warm = facts[: 2 * args.batch_size]  # first calls pay for kernel selection and caches
    baseline(model, tokenizer, warm, layer, args.batch_size)
    prober.capture(warm, topk=DEFAULT_K)
    runs, out = {k: [] for k in fns}, {}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            t, out[name] = timed(fn, args.device)
            runs[name].append(t)
    med = {k: statistics.median(v) for k, v in runs.items()}
    ref_h, ref_z = out["baseline"]
    ref_top = ref_z.topk(DEFAULT_K, dim=-1).values
    result = {
        "arch": args.arch, "device": args.device, "dtype": args.dtype, "n": args.n, "batch_size": args.batch_size,
        "batch_tokens": prober.batch_tokens, "batches": len(batches), "k": DEFAULT_K,
        "layer": layer, "num_layers": model.config.num_hidden_layers, "vocab": model.config.vocab_size,
        "seconds_median": med, "seconds_all": runs,
        "speedup_vs_baseline": {k: med["baseline"] / v for k, v in med.items() if k != "baseline"},
        "nnsight_cost_vs_hook": {"states": med["states"] / med["hook_states"],
                                 "states+topk": med["states+topk"] / med["hook_states+topk"]},
        "max_abs_diff_states": float((out["states"].states - ref_h).abs().max()),
        "max_abs_diff_topk_values": float((out["states+topk"].topk_values - ref_top).abs().max()),
        "max_abs_diff_logits": float((out["states+logits"].logits - ref_z).abs().max()),
        "max_abs_diff_hook_vs_nnsight": float((out["hook_states+topk"][1] - out["states+topk"].topk_values)
                                              .abs().max()),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        from probekit.io import write_json

        write_json(args.out, result)


if __name__ == "__main__":
    main()
