"""The training loop's optimizer step: fused AdamW (what ``training.master_weights.adamw`` builds on the CPU and a
GPU) against the foreach implementation (torch's default, what the loop used on the CPU before), on the parameters of
a real model with the same gradients on both sides.

From the repository root:

    python bench/optimizer_bench.py [--model embedded] [--steps 5] [--out bench/results/optimizer_bench_cpu.json]

Both sides start from the model's weights and take `steps` + 1 steps (the first one, which allocates the moments, is
not timed) with the same fixed gradients (scaled per step). Reports seconds per step, the speed-up, and the largest
difference between the two sides' parameters after the last step, beside the largest movement of a parameter.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from probekit.io import write_json
from probekit.models import EMBEDDED, load_causal_lm, resolve_model_path


def run_side(weights: list[torch.Tensor], grads: list[torch.Tensor], steps: int, fused: bool
             ) -> tuple[float, list[torch.Tensor]]:
    """(seconds per timed step, the parameters after every step)."""
    params = [w.clone().requires_grad_() for w in weights]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=fused, foreach=None if fused else True)
    seconds = 0.0
    for step in range(steps + 1):
        for p, g in zip(params, grads):
            p.grad = g * (1 + 0.1 * step)
        start = time.perf_counter()
        opt.step()
        seconds += (time.perf_counter() - start) if step else 0.0
    return seconds / steps, [p.detach() for p in params]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=EMBEDDED)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = load_causal_lm(resolve_model_path(args.model))
    weights = [p.detach() for p in model.parameters()]
    grads = [torch.randn_like(w) * 1e-3 for w in weights]
    foreach_s, foreach_p = run_side(weights, grads, args.steps, fused=False)
    fused_s, fused_p = run_side(weights, grads, args.steps, fused=True)
    result = {
        "model": str(args.model), "parameters_m": round(sum(w.numel() for w in weights) / 1e6, 1),
        "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__, "steps": args.steps,
        "foreach_s_per_step": round(foreach_s, 4), "fused_s_per_step": round(fused_s, 4),
        "speedup": round(foreach_s / fused_s, 2),
        "max_abs_difference": max((a - b).abs().max().item() for a, b in zip(foreach_p, fused_p)),
        "max_abs_movement": max((a - w).abs().max().item() for a, w in zip(foreach_p, weights)),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
