"""Localised interference: does a held-out fact's closeness to a new entity predict that it is forgotten?

``nearest_new(held, new, k)`` finds, for every held-out entity state, its k most cosine-similar new entities (D_Unk
subjects or synthetic keys) in θ0's layer-l space. ``forgotten_facts(correct, peak_epoch)`` marks facts that were
right at the run's peak held-out epoch and wrong at the last. ``roc_auc`` / ``permutation_auc`` measure how well a
score (the similarity to the nearest new entity) ranks forgotten above kept facts, against a label-permutation null.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from .errors import ProbekitError


def nearest_new(held: torch.Tensor, new: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """held [N, d], new [M, d] → (cosine similarities [N, k] descending, indices into `new` [N, k])."""
    if len(new) == 0:
        raise ProbekitError("no new entities to compare with")
    sims = torch.nn.functional.normalize(held.float(), dim=-1) @ torch.nn.functional.normalize(new.float(), dim=-1).T
    top = sims.topk(min(k, len(new)), dim=-1)
    return top.values, top.indices


def forgotten_facts(correct: np.ndarray, peak_epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """correct [E, N] bool (epoch × fact) → (eligible [N]: right at `peak_epoch`; forgotten [N]: eligible and wrong
    at the last epoch)."""
    correct = np.asarray(correct, bool)
    eligible = correct[peak_epoch]
    return eligible, eligible & ~correct[-1]


def peak_epoch(correct: np.ndarray) -> int:
    """The epoch of highest accuracy (the first, on ties), as ΔD_Held measures forgetting from it. correct [E, N]."""
    return int(np.argmax(np.asarray(correct, bool).mean(axis=1)))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half (Mann–Whitney U
    from average ranks). nan when either class is empty. scores, labels: [N]."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float(_auc_from_rank_sum(rankdata(s)[y].sum(), n_pos, n_neg))


def _auc_from_rank_sum(rank_sum, n_pos: int, n_neg: int):
    """Mann–Whitney U of the positives over n_pos · n_neg, from the positives' rank sum (scalar or array)."""
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@dataclass
class AUCResult:
    """An AUC with its permutation null: mean and 95th percentile of the AUC under shuffled labels, and the share
    of permutations at least as high as the observed AUC (one-sided p, with the +1 correction)."""

    auc: float
    null_mean: float
    null_q95: float
    p_value: float
    positives: int
    negatives: int


def permutation_auc(scores: np.ndarray, labels: np.ndarray, permutations: int = 2000, seed: int = 0) -> AUCResult:
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return AUCResult(float("nan"), float("nan"), float("nan"), float("nan"), n_pos, n_neg)
    ranks = rankdata(s)
    auc = float(_auc_from_rank_sum(ranks[y].sum(), n_pos, n_neg))
    # every permutation at once: the positives' rank sums under shuffled labels
    perm = np.argsort(np.random.default_rng(seed).random((permutations, len(s))), axis=1)[:, :n_pos]
    null = _auc_from_rank_sum(ranks[perm].sum(axis=1), n_pos, n_neg)
    p = (1 + int((null >= auc).sum())) / (permutations + 1)
    return AUCResult(auc, float(null.mean()), float(np.quantile(null, 0.95)), p, n_pos, n_neg)
