"""How sure is a number: 95% intervals by bootstrap over facts (or pairs), paired, and exact McNemar tests.

Every interval resamples *items* (held-out facts, or (unknown, held) pairs for Rank-ρ, NTR and JSD) with
scipy's ``bootstrap`` (percentile method, seeded). Resamples are **paired**: one resample of fact indices is applied
to every epoch and every condition at once, since the conditions of a study share their held-out facts. So the
interval of ΔD_Held (peak → last) finds the peak inside each resample, and the interval of a difference between two
conditions resamples the same facts for both.

Outcome matrices are ``correct[epochs, facts]`` (bool): each held-out fact's greedy correctness at each epoch.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A number with its interval: value, lo, hi (same shape: scalars or arrays)."""

    value: float | np.ndarray
    lo: float | np.ndarray
    hi: float | np.ndarray

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def bootstrap_items(statistic: Callable[[np.ndarray], np.ndarray], n: int, *, confidence: float = CONFIDENCE,
                    n_resamples: int = N_RESAMPLES, seed: int = 0) -> Estimate:
    """Interval of ``statistic(idx)`` over resamples of `n` items.

    statistic: item indices [B, n] → values [..., B] (vectorised over resamples; called with
    ``np.arange(n)[None]`` for the point estimate). Returns an Estimate with the statistic's leading shape.
    """
    if n < 1:  # no items: nan in the statistic's shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            nan = np.full(np.shape(statistic(np.zeros((1, 0), int)))[:-1], np.nan)
        return Estimate(*(nan[()] for _ in range(3)))
    value = statistic(np.arange(n)[None])[..., 0]
    if n == 1:
        return Estimate(value[()], value[()], value[()])
    res = stats.bootstrap((np.arange(n),), lambda idx, axis=-1: statistic(np.atleast_2d(idx)), vectorized=True,
                          n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                          rng=np.random.default_rng(seed))
    return Estimate(value[()], res.confidence_interval.low[()], res.confidence_interval.high[()])


def mean_ci(values, **kw) -> Estimate:
    """Mean of per-item values [n] (e.g. 1 − cos per fact for RD, per-pair ρ) with its interval; NaNs dropped."""
    x = np.asarray(values, float)
    x = x[~np.isnan(x)]
    return bootstrap_items(lambda idx: x[idx].mean(-1), len(x), **kw)


def _forgetting(acc: np.ndarray) -> np.ndarray:
    """acc [E, ...] → peak − last in percentage points [...]."""
    return 100 * (acc.max(0) - acc[-1])


def accuracy_ci(correct: np.ndarray, **kw) -> Estimate:
    """Accuracy at every epoch of correct [E, N] → Estimate of arrays [E] (one paired resample for all epochs)."""
    c = np.asarray(correct, float)
    return bootstrap_items(lambda idx: c[:, idx].mean(-1), c.shape[1], **kw)


def forgetting_ci(correct: np.ndarray, **kw) -> Estimate:
    """ΔD_Held = peak − last accuracy in pp of correct [E, N], the peak found inside each resample."""
    c = np.asarray(correct, float)
    return bootstrap_items(lambda idx: _forgetting(c[:, idx].mean(-1)), c.shape[1], **kw)


def paired_difference(a: np.ndarray, b: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray] | str,
                      **kw) -> Estimate:
    """statistic(a) − statistic(b) on the same facts; a, b: correct [E, N] of two conditions on one D_Held.

    statistic: "last" (last-epoch accuracy), "forgetting" (ΔD_Held in pp) or a function acc [E, B] → [B]."""
    if statistic == "last":
        statistic = lambda acc: acc[-1]  # noqa: E731
    elif statistic == "forgetting":
        statistic = _forgetting
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired conditions need the same facts: {a.shape[1]} vs {b.shape[1]}")
    return bootstrap_items(lambda idx: statistic(a[:, idx].mean(-1)) - statistic(b[:, idx].mean(-1)), a.shape[1],
                           **kw)


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p of two conditions' outcomes on the same facts (a, b: bool [N]): a binomial test
    of the discordant facts (right under one, wrong under the other) against 1/2; 1.0 when none is discordant."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def detectable_difference(n: int, discordant: float = 0.1, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest difference in accuracy (pp) between two paired conditions that an exact McNemar test on `n` facts
    finds at `alpha` with probability ≥ `power`, when a share `discordant` of facts differ between them.

    Exact: for each difference d (in steps of one fact), the discordant count D ~ Binomial(n, discordant) and,
    given D, the facts favouring one side ~ Binomial(D, 1/2 + d / (2·discordant)); power sums the rejections."""
    counts = np.arange(n + 1)
    weight = stats.binom.pmf(counts, n, discordant)
    live = [D for D in counts if D > 0 and weight[D] > 1e-12]
    # exact two-sided p at 1/2 is symmetric: 2 · the smaller tail
    reject = {D: np.minimum(1, 2 * np.minimum(stats.binom.cdf(np.arange(D + 1), D, 0.5),
                                              stats.binom.sf(np.arange(D + 1) - 1, D, 0.5))) <= alpha for D in live}
    for step in range(1, int(discordant * n) + 1):
        favour = 0.5 + step / n / (2 * discordant)
        achieved = sum(weight[D] * stats.binom.pmf(np.arange(D + 1), D, favour)[reject[D]].sum() for D in live)
        if achieved >= power:
            return 100 * step / n
    return float("nan")
