"""How sure is a number: 95% intervals by bootstrap over facts (or pairs), paired, and exact paired tests (McNemar on
one epoch's outcomes, a sign-flip test of per-fact drops for ΔD_Held).

Every interval resamples *items* (held-out facts, or (unknown, held) pairs for Rank-ρ, NTR and JSD) with
scipy's ``bootstrap`` (percentile method, seeded). Resamples are **paired**: one resample of fact indices is applied
to every epoch and every condition at once, since the conditions of a study share their held-out facts. So the
interval of ΔD_Held (peak → last) finds the peak inside each resample, and the interval of a difference between two
conditions resamples the same facts for both.

Outcome matrices are ``correct[epochs, facts]`` (bool): each held-out fact's greedy correctness at each epoch.
With several seeds, ``[seeds, epochs, facts]``: ``seeds_curve_ci`` draws bands over seeds, then facts (one seed:
exactly ``accuracy_ci`` / ``forgetting_ci``); comparisons pooled over seeds use ``probekit.pooled``. ``auc_ci``: a
ROC AUC with a bootstrap stratified by class.
"""
from __future__ import annotations

import math
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
                    n_resamples: int = N_RESAMPLES, seed: int = 0, batch: int | None = None) -> Estimate:
    """Interval of ``statistic(idx)`` over resamples of `n` items.

    statistic: item indices [B, n] → values [..., B] (vectorised over resamples; called with
    ``np.arange(n)[None]`` for the point estimate). Returns an Estimate with the statistic's leading shape.
    batch: resamples per call of `statistic` (None: all at once; a batch draws other resamples, see ``batch_for``).
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
                          rng=np.random.default_rng(seed), batch=batch)
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


def sign_flip_p(d: np.ndarray) -> float:
    """Exact two-sided p of the paired sign-flip test on integer per-item differences d [N]: under the null each
    nonzero d_i is +|d_i| or −|d_i| with probability 1/2, and p = P(|Σ ±|d_i|| ≥ |Σ d_i|), summed exactly over the
    distribution of the signed sum. With d in {−1, 0, 1} (one epoch's outcomes) it is exact McNemar; 1.0 when every
    d_i is 0. On ``drop_differences`` it is exact given each condition's peak epoch (found once, on the data).

    Linear in the largest group of equal magnitudes (its binomial tails are read off directly); the other groups'
    distribution is convolved exactly (for drops, the ±2 facts)."""
    d = np.asarray(d)
    if not np.array_equal(d, np.round(d)):
        raise ValueError("sign_flip_p needs integer differences")
    observed = abs(int(d.sum()))
    magnitudes, counts = np.unique(np.abs(d[d != 0]).astype(int), return_counts=True)
    if len(magnitudes) == 0 or observed == 0:
        return 1.0
    inner = int(counts.argmax())
    pmf = np.ones(1)  # the other groups' signed sum: values offset + 0, 1, …
    offset = 0
    for m, n in zip(magnitudes, counts):
        if m == magnitudes[inner]:
            continue
        step = np.zeros(2 * m * n + 1)  # m · (2k − n) for k ~ Binomial(n, 1/2), at index 2mk
        step[2 * m * np.arange(n + 1)] = stats.binom.pmf(np.arange(n + 1), n, 0.5)
        pmf, offset = np.convolve(pmf, step), offset - m * n
    live = pmf > 0
    rest = (offset + np.arange(len(pmf)))[live]  # [V] values of the other groups' sum
    m, n = int(magnitudes[inner]), int(counts[inner])
    # the total m(2K − n) + rest reaches ≥ observed for K ≥ high, ≤ −observed for K ≤ low (K ~ Binomial(n, 1/2))
    high = -((rest - observed - m * n) // (2 * m))  # ceil((observed − rest + mn) / 2m)
    low = (-observed - rest + m * n) // (2 * m)
    tails = stats.binom.sf(high - 1, n, 0.5) + stats.binom.cdf(low, n, 0.5)
    return float(min(1.0, (pmf[live] * tails).sum()))


def drop_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per fact, a's drop from its peak epoch to its last minus b's (a, b: correct [E, N] of two conditions on the
    same facts) → ints in −2..2 [N]; each peak is the epoch of highest accuracy (the first of ties: where epochs
    tie, the per-fact values, and so the test's p, follow that choice; their mean does not). Their mean is
    ΔD_Held(a) − ΔD_Held(b) as a share, so ``sign_flip_p`` of them tests the difference of the two drops."""
    return fact_drops(a) - fact_drops(b)


def fact_drops(correct: np.ndarray) -> np.ndarray:
    """Per fact, its outcome at the run's peak epoch (the first of highest accuracy) minus at the last: correct
    [E, N] → ints in −1..1 [N]; their mean is the run's ΔD_Held as a share."""
    return (c := np.asarray(correct, int))[c.mean(1).argmax()] - c[-1]


PAIRED_TESTS = {"last": "McNemar", "forgetting": "sign-flip"}  # statistic → the exact paired test paired_p runs


def paired_p(a: np.ndarray, b: np.ndarray, statistic: str) -> float:
    """The exact paired p of two conditions' outcomes a, b [E, N] on the same facts: "last" → McNemar on the last
    epoch; "forgetting" → the sign-flip test of the per-fact drops from each one's peak to its last epoch."""
    if statistic == "last":
        return mcnemar(a[-1], b[-1])
    if statistic == "forgetting":
        return sign_flip_p(drop_differences(a, b))
    raise ValueError(f"no paired test for {statistic!r}: {' or '.join(map(repr, PAIRED_TESTS))}")


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


MAX_ELEMENTS = 50_000_000  # per call of a statistic: above it, resamples go in batches


def batch_for(elements_per_resample: int, n_resamples: int = N_RESAMPLES) -> int | None:
    """Resamples per batch so that a statistic touches at most MAX_ELEMENTS values at once (None: one batch, the
    resamples of an unbatched call; a batched call draws other, equally valid resamples)."""
    if elements_per_resample * n_resamples <= MAX_ELEMENTS:
        return None
    return max(1, MAX_ELEMENTS // max(1, elements_per_resample))


def bootstrap_nested(statistic: Callable[[np.ndarray, np.ndarray], np.ndarray], n_seeds: int, n_items: int, *,
                     confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0,
                     batch: int | None = None) -> Estimate:
    """Interval of ``statistic(seeds, items)`` over resamples of training seeds and, independently, of items.

    statistic: seed indices [B, S], item indices [B, n] → values [..., B]; one item resample serves every seed (the
    seeds share their held-out facts). One seed: exactly ``bootstrap_items`` over the items."""
    one = lambda idx: np.zeros((len(idx), 1), int)  # noqa: E731
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed, batch=batch)
    if n_seeds == 1 or n_items < 1:
        return bootstrap_items(lambda idx: statistic(one(idx), idx), n_items, **kw)
    if n_items == 1:  # scipy resamples only samples of two or more: the seeds alone
        return bootstrap_items(lambda idx: statistic(idx, one(idx)), n_seeds, **kw)
    value = statistic(np.arange(n_seeds)[None], np.arange(n_items)[None])[..., 0]
    res = stats.bootstrap((np.arange(n_seeds), np.arange(n_items)),
                          lambda s, i, axis=-1: statistic(np.atleast_2d(s), np.atleast_2d(i)), vectorized=True,
                          paired=False, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                          rng=np.random.default_rng(seed), batch=batch)
    return Estimate(value[()], res.confidence_interval.low[()], res.confidence_interval.high[()])


def _curve_statistic(statistic: Callable[[np.ndarray], np.ndarray] | str | None) -> Callable[[np.ndarray], np.ndarray]:
    """None: the curve itself; "last": the last epoch; "forgetting": peak − last in pp; else a function
    curve [E, B] → [..., B]."""
    named = {None: lambda curve: curve, "last": lambda curve: curve[-1], "forgetting": _forgetting}
    return named[statistic] if statistic is None or isinstance(statistic, str) else statistic


def _item_mean(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values [E, N] at item resamples idx [B, n] → mean over the resampled items [E, B]; NaN items left out."""
    picked = values[:, idx]
    if not np.isnan(picked).any():
        return picked.mean(-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample of undefined items only: NaN
        return np.nanmean(picked, -1)


def seeds_curve_ci(values: np.ndarray, statistic: Callable | str | None = None, **kw) -> Estimate:
    """A statistic of the per-epoch mean over items, averaged over seeds, with its interval (seeds, then items).

    values: [S, E, N] per seed, epoch and item (bool outcomes, or per-item drift values; NaN: undefined item).
    statistic: see ``_curve_statistic`` (None: the curve [E]; "forgetting": ΔD_Held in pp, the peak found inside
    each resample and seed). One seed of bool outcomes: exactly ``accuracy_ci`` / ``forgetting_ci``."""
    v = np.asarray(values, float)
    f = _curve_statistic(statistic)
    kw.setdefault("batch", batch_for(v.shape[1] * v.shape[2], kw.get("n_resamples", N_RESAMPLES)))
    return _over_seeds(lambda s, idx: f(_item_mean(v[s], idx)), v.shape[0], v.shape[2], **kw)


def _over_seeds(per_seed: Callable[[int, np.ndarray], np.ndarray], n_seeds: int, n_items: int, **kw) -> Estimate:
    """Interval of the mean over (resampled) seeds of per_seed(seed, items [B, n]) → [..., B]."""
    if n_seeds == 1:
        return bootstrap_items(lambda idx: per_seed(0, idx), n_items, **kw)

    def statistic(seeds: np.ndarray, items: np.ndarray) -> np.ndarray:
        values = np.stack([per_seed(s, items) for s in range(n_seeds)])  # [S, ..., B]
        weights = np.stack([(seeds == s).mean(-1) for s in range(n_seeds)])  # [S, B]: each seed's share
        return np.einsum("s...b,sb->...b", values, weights)

    return bootstrap_nested(statistic, n_seeds, n_items, **kw)


def auc_ci(positive: np.ndarray, negative: np.ndarray, *, confidence: float = CONFIDENCE,
           n_resamples: int = N_RESAMPLES, seed: int = 0) -> Estimate:
    """ROC AUC of two groups' scores (positive [n1], negative [n0]): the share of (positive, negative) pairs the
    positive outranks, ties counting half (the Mann–Whitney AUC), with a percentile bootstrap that resamples each
    group on its own (stratified: every resample keeps both). NaN for an empty group; no interval for a group of one.
    """
    pos, neg = np.asarray(positive, float), np.asarray(negative, float)

    def auc(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:  # [..., n1], [..., n0] → [...]
        a, b = p[..., :, None], q[..., None, :]
        return ((a > b) + 0.5 * (a == b)).mean((-2, -1))

    if len(pos) == 0 or len(neg) == 0:
        return Estimate(math.nan, math.nan, math.nan)
    value = float(auc(pos, neg))
    if len(pos) < 2 or len(neg) < 2:
        return Estimate(value, math.nan, math.nan)
    res = stats.bootstrap((pos, neg), auc, vectorized=True, paired=False, n_resamples=n_resamples,
                          confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
                          batch=batch_for(len(pos) * len(neg), n_resamples))
    return Estimate(value, float(res.confidence_interval.low), float(res.confidence_interval.high))
