"""Drift metrics of the study (§5.2 and App. F, eqs. 4, 6–10) as pure, vectorised tensor functions.

Hidden-state metrics take layer-l entity states; each is ℓ2-normalised here, so raw states are fine.
``h0_*`` are states under the base model θ0 and ``hi_*`` under checkpoint i, row-aligned.

- RD  = mean_x∈Held [1 − cos(H0(x), Hi(x))]                                   (eq. 4)
- NS  = mean_{x,x'∈S} |cos(Hi(x), Hi(x')) − cos(H0(x), H0(x'))|, S ⊆ Held     (eq. 6)
- MTD = mean_{x_h∈Held, x_s∈New} [cos(Hi(x_h), Hi(x_s)) − cos(H0(x_h), H0(x_s))] (eq. 7)

Output metrics run over pairs P = {(x_u ∈ Unk, x_h ∈ Held) : same gold answer}, with I = θ0's top-k token ids
at x_h's answer position. k defaults to 76 (the study's "0.5% of the vocabulary"; 76 is 0.05% of Qwen2.5's
151,936 tokens). Each takes per-pair rows, so a caller never needs full-vocabulary logits in memory:

- Rank-ρ = mean_P Spearman(z_θ(x_u)[I], z_θ0(x_h)[I])                          (eq. 8)
- NTR    = mean_P |top_k^θ(x_u) ∩ top_k^θ(x_h)| / k                            (eq. 9)
- JSD    = mean_P JSD(softmax(z_θ(x_u)[I]), softmax(z_θ0(x_h)[I])), natural log by default (eq. 10)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .answers import answer_key

DEFAULT_K = 76
DEFAULT_NS_SAMPLE = 1000
DEFAULT_MAX_PAIRS = 10_000
_CHUNK = 4096


def _unit(h: torch.Tensor) -> torch.Tensor:
    return F.normalize(h.double(), dim=-1)


def rd_items(h0: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Cosine distance 1 − cos(H0(x), Hi(x)) per fact of row-aligned states [N, d] → [N] (RD is their mean)."""
    return 1 - (_unit(h0) * _unit(hi)).sum(-1)


def rd(h0: torch.Tensor, hi: torch.Tensor) -> float:
    """Representation drift: mean cosine distance between row-aligned states [N, d]."""
    return float(rd_items(h0, hi).mean())


def ns_subsample(n: int, size: int | None = DEFAULT_NS_SAMPLE, seed: int = 0) -> torch.Tensor:
    """The random subsample S (sorted indices) of held-out facts used by NS; all of them if n <= size."""
    if size is None or n <= size:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:size].sort().values


def ns(h0: torch.Tensor, hi: torch.Tensor) -> float:
    """Neighbourhood structure change over all |S|² ordered pairs of the given rows [S, d] (diagonal included)."""
    a0, ai = _unit(h0), _unit(hi)
    total = 0.0
    for s in range(0, len(a0), _CHUNK):  # row blocks keep memory at _CHUNK × S
        total += float((ai[s : s + _CHUNK] @ ai.T - a0[s : s + _CHUNK] @ a0.T).abs().sum())
    return total / len(a0) ** 2


def ns_items(h0: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """NS per fact of S: mean over x' ∈ S of |cos(Hi(x),Hi(x')) − cos(H0(x),H0(x'))|, rows [S, d] → [S].
    Every row has |S| terms, so NS is their mean (up to summation order)."""
    a0, ai = _unit(h0), _unit(hi)
    return torch.cat([(ai[s : s + _CHUNK] @ ai.T - a0[s : s + _CHUNK] @ a0.T).abs().mean(-1)
                      for s in range(0, len(a0), _CHUNK)]) if len(a0) else torch.zeros(0, dtype=torch.float64)


def mtd_items(h0_held: torch.Tensor, hi_held: torch.Tensor, h0_new: torch.Tensor, hi_new: torch.Tensor
              ) -> torch.Tensor:
    """MTD per held-out fact: mean over new entities of cos(Hi(x_h),Hi(x_s)) − cos(H0(x_h),H0(x_s)) → [H].
    By the same factorisation as ``mtd``: ĥ_i · mean ŝ_i − ĥ_0 · mean ŝ_0."""
    return _unit(hi_held) @ _unit(hi_new).mean(0) - _unit(h0_held) @ _unit(h0_new).mean(0)


def mtd(h0_held: torch.Tensor, hi_held: torch.Tensor, h0_new: torch.Tensor, hi_new: torch.Tensor) -> float:
    """Mean targeted drift over all (held, new) pairs.

    The mean of cosines over a full cross product factorises: mean_{h,s} ĥ·ŝ = (mean_h ĥ)·(mean_s ŝ), so this is
    exact in O((H + S)·d) whatever the number of pairs.
    """
    now = _unit(hi_held).mean(0) @ _unit(hi_new).mean(0)
    before = _unit(h0_held).mean(0) @ _unit(h0_new).mean(0)
    return float(now - before)


def answer_pairs(
    unk_answers: list[str], held_answers: list[str], max_pairs: int | None = DEFAULT_MAX_PAIRS, seed: int = 0
) -> torch.Tensor:
    """P as a [P, 2] tensor of (unknown row, held row) with the same gold answer (case- and space-insensitive).

    If there are more than `max_pairs`, a seeded uniform sample of them (sorted) is returned.
    """
    held_by_answer: dict[str, list[int]] = {}
    for h, a in enumerate(held_answers):
        held_by_answer.setdefault(answer_key(a), []).append(h)
    pairs = [(u, h) for u, a in enumerate(unk_answers) for h in held_by_answer.get(answer_key(a), ())]
    out = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    if max_pairs is not None and len(out) > max_pairs:
        g = torch.Generator().manual_seed(seed)
        out = out[torch.randperm(len(out), generator=g)[:max_pairs].sort().values]
    return out


def average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks (1-based) with ties given their average rank, as Spearman's ρ needs. x: [P, m]."""
    out = torch.empty(x.shape, dtype=torch.float64)
    for s in range(0, len(x), _CHUNK):
        c = x[s : s + _CHUNK]
        less = (c.unsqueeze(-1) > c.unsqueeze(-2)).sum(-1)
        equal = (c.unsqueeze(-1) == c.unsqueeze(-2)).sum(-1)
        out[s : s + _CHUNK] = less + (equal + 1) / 2
    return out


def _nanmean(x: torch.Tensor) -> float:
    keep = ~torch.isnan(x)
    return float(x[keep].mean()) if keep.any() else math.nan


def spearman_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's ρ of each row pair of a, b [P, m] → [P]; NaN where a row is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra = ra - ra.mean(-1, keepdim=True)
    rb = rb - rb.mean(-1, keepdim=True)
    denom = (ra.square().sum(-1) * rb.square().sum(-1)).sqrt()
    return (ra * rb).sum(-1) / denom  # 0/0 → NaN for constant rows


def rank_rho(student_at_i: torch.Tensor, base_at_i: torch.Tensor) -> float:
    """Rank-ρ from per-pair logits restricted to I: z_θ(x_u)[I] and z_θ0(x_h)[I], both [P, k].

    Pairs whose ρ is undefined (a constant row) are left out of the mean.
    """
    return _nanmean(spearman_rows(student_at_i, base_at_i))


def ntr(topk_unk: torch.Tensor, topk_held: torch.Tensor) -> float:
    """Neighbourhood token ratio from the current model's top-k ids of the paired x_u and x_h, both [P, k]."""
    return float(ntr_rows(topk_unk, topk_held).mean())


def ntr_rows(topk_unk: torch.Tensor, topk_held: torch.Tensor) -> torch.Tensor:
    """|top_k^θ(x_u) ∩ top_k^θ(x_h)| / k per pair; ids [P, k] → [P]."""
    k = topk_unk.shape[-1]
    shared = torch.empty(len(topk_unk), dtype=torch.float64)
    for s in range(0, len(topk_unk), _CHUNK):
        a, b = topk_unk[s : s + _CHUNK], topk_held[s : s + _CHUNK]
        shared[s : s + _CHUNK] = (a.unsqueeze(-1) == b.unsqueeze(-2)).any(-1).sum(-1)
    return shared / k


def jsd_rows(student_at_i: torch.Tensor, base_at_i: torch.Tensor, log_base: float = math.e) -> torch.Tensor:
    """Jensen–Shannon divergence per pair of the softmaxes over I; rows [P, k] → [P]."""
    logp = torch.log_softmax(student_at_i.double(), -1)
    logq = torch.log_softmax(base_at_i.double(), -1)
    logm = torch.logaddexp(logp, logq) - math.log(2)
    kl_pm = (logp.exp() * (logp - logm)).sum(-1)
    kl_qm = (logq.exp() * (logq - logm)).sum(-1)
    return 0.5 * (kl_pm + kl_qm) / math.log(log_base)


def jsd(student_at_i: torch.Tensor, base_at_i: torch.Tensor, log_base: float = math.e) -> float:
    """Mean JSD over pairs (eq. 10); `log_base` e (nats, default) or 2 (bits, bounded by 1)."""
    return float(jsd_rows(student_at_i, base_at_i, log_base).mean())
