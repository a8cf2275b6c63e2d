"""Training losses: the task loss, self-distillation (full, top-k, random-k) and L2 toward a snapshot.

Self-distillation (eq. 1–2; Li & Hoiem 2017 as adapted by Zhu et al. 2025):

    L = L_task + λ · E_batch[ τ² / |M(y)| · Σ_{j∈M(y)} KL( softmax(z_T,j / τ) ‖ softmax(z_S,j / τ) ) ]

with M(y) the non-padded positions of each sequence: the KL is averaged over an example's own positions, then
over the examples of the batch; padding never counts. Top-k and random-k (eq. 5) restrict both distributions to
k token ids per position (the teacher's top-k, or k uniform ids) and renormalise them there, so the teacher only
needs its k log-probs and ids per position (see ``teacher_cache``). L2 (eq. 3): L_task + λ‖θ − θ_i‖².

Every function takes per-position tensors already flattened to the positions that count, plus ``example`` ids
mapping each position to its sequence, so batch composition (padding, sequence lengths) cannot leak in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def task_loss_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy; logits [N, V] at answer positions, targets [N]."""
    return F.cross_entropy(_at_least_fp32(logits), targets, reduction="sum")


def kl_rows(teacher_logits: torch.Tensor, student_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """KL(softmax(t/τ) ‖ softmax(s/τ)) per row; both [N, m] over the same m token ids → [N]."""
    t = torch.log_softmax(_at_least_fp32(teacher_logits) / tau, dim=-1)
    s = torch.log_softmax(_at_least_fp32(student_logits) / tau, dim=-1)
    return (t.exp() * (t - s)).sum(-1)


def per_example_mean(values: torch.Tensor, example: torch.Tensor, num_examples: int) -> torch.Tensor:
    """Mean of per-position `values` [N] within each example (`example` [N] in 0..num_examples-1) → [num_examples]."""
    sums = torch.zeros(num_examples, dtype=values.dtype, device=values.device).index_add(0, example, values)
    counts = torch.zeros(num_examples, dtype=values.dtype, device=values.device).index_add(
        0, example, torch.ones_like(values))
    return sums / counts.clamp(min=1)


def distill_sum_from_kl(kl: torch.Tensor, example: torch.Tensor, num_examples: int, tau: float) -> torch.Tensor:
    """Σ over examples of τ²/|M(y)| Σ_j kl_j, from per-position KL values [N] of the non-padded positions."""
    return tau**2 * per_example_mean(kl, example, num_examples).sum()


def distill_loss_sum(teacher_logits: torch.Tensor, student_logits: torch.Tensor, example: torch.Tensor,
                     num_examples: int, tau: float) -> torch.Tensor:
    """Σ over examples of τ²/|M(y)| Σ_j KL(p_T ‖ p_S); rows are the non-padded positions (full vocabulary or a
    per-position id set of size m, both renormalised there). Divide by the batch size for eq. 2's mean."""
    return distill_sum_from_kl(kl_rows(teacher_logits, student_logits, tau), example, num_examples, tau)


def l2_to_snapshot(params: dict[str, torch.Tensor], snapshot: dict[str, torch.Tensor], fused: bool | None = None
                   ) -> torch.Tensor:
    """‖θ − θ_i‖² over the trainable parameters (names of `params`, all in `snapshot`): one foreach subtraction,
    then with `fused` (unset: on a GPU) one fused ``_foreach_norm`` instead of kernels per parameter; without, each
    parameter's squares summed and added in order (on the CPU, the same floats as ever). No host read-back."""
    diffs = torch._foreach_sub([p.float() for p in params.values()], [snapshot[n].float() for n in params])
    if fused if fused is not None else bool(diffs) and diffs[0].device.type != "cpu":
        return torch.stack(torch._foreach_norm(diffs)).square().sum()
    return sum(d.pow(2).sum() for d in diffs)
