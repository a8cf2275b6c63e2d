"""The training loop's optimizer: AdamW, fused on a GPU and on the CPU (bench/optimizer_bench.py: on the embedded
model's parameters, 2 CPU cores, ~5x faster than the foreach implementation, equal to float rounding), and for bf16
weights with an fp32 master copy: at lr 5e-5 most updates are below bf16's resolution (8 bits
of mantissa) and would round away if AdamW stepped the bf16 weights themselves.

The master copy and the moments live in the optimizer state of each (bf16) parameter, so checkpointing maps them
by parameter name like any optimizer state, and they are restored in fp32 (``Optimizer.load_state_dict`` would
cast them to the parameter's dtype).
"""
from __future__ import annotations

import torch


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW whose update runs on fp32 copies of low-precision parameters (state ``master``, fp32 moments) and is
    written back rounded to the parameter's dtype after every step. Same arguments as ``torch.optim.AdamW``."""

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs, *rest):
        start = len(params_with_grad)
        has_complex = super()._init_group(group, params_with_grad, grads, exp_avgs, exp_avg_sqs, *rest)
        for i in range(start, len(params_with_grad)):
            p = params_with_grad[i]
            state = self.state[p]
            if "master" not in state:
                state["master"] = p.detach().float()
                state["exp_avg"], state["exp_avg_sq"] = state["exp_avg"].float(), state["exp_avg_sq"].float()
            params_with_grad[i], grads[i] = state["master"], p.grad.float()
            exp_avgs[i], exp_avg_sqs[i] = state["exp_avg"], state["exp_avg_sq"]
        return has_complex

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if "master" in self.state[p]:
                    p.copy_(self.state[p]["master"])
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        """Load as AdamW does, then put back the fp32 master copy and moments it cast to the parameters' dtype."""
        super().load_state_dict(state_dict)
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in zip(saved_ids, params):
            for key, value in state_dict["state"].get(i, {}).items():
                if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                    self.state[p][key] = value.to(p.device, torch.float32)


def adamw(params, lr: float, weight_decay: float, device: torch.device, bf16_weights: bool) -> torch.optim.Optimizer:
    """Fused AdamW where torch has a fused kernel (CUDA, CPU); ``MasterWeightAdamW`` for bf16 weights."""
    cls = MasterWeightAdamW if bf16_weights else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=weight_decay, fused=device.type in ("cuda", "cpu"))
