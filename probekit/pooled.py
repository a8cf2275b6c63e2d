"""One inference for a mean over facts × training seeds: facts and seeds as the two sources of variation they are.

A paired comparison of two conditions (or one condition's forgetting) gives per-item values ``d[s, i]`` (seed s,
item i: a held-out fact, or an answer pair): a fact's drop difference, its last-epoch outcome difference, its drift
difference. The seeds share their items. The model is the two-way crossed random-effects one,

    d[s, i] = μ + u_s + v_i + e_si,   u ~ (0, σ_u²) per seed, v ~ (0, σ_v²) per item, e ~ (0, σ_e²),

and the estimate is the grand mean d̄ (the mean over seeds of each seed's item mean, i.e. the pooled value the
tables print), with Var(d̄) = σ_u²/S + σ_v²/N + σ_e²/(SN). From the two-way ANOVA's mean squares (seed MS_s with
S − 1 degrees of freedom, item MS_i with N − 1, residual MS_r with (S − 1)(N − 1)):

    Var(d̄) = [E(MS_s) + (E(MS_i) − E(MS_r))] / (SN)

The seed term is known only to S − 1 degrees of freedom, and no t distribution fits the sum exactly (a
Behrens–Fisher problem). The interval and p are the generalised (fiducial) ones: E(MS_s) is drawn as
MS_s·(S − 1)/χ²(S − 1), floored at MS_r (E(MS_s) = σ_e² + Nσ_u² ≥ E(MS_r): without the floor, seeds whose means
happen to tie would make the interval collapse), and the item term as (MS_i·(N − 1)/χ²(N − 1) − MS_r)⁺, both on
fixed quantile grids (deterministic); μ's distribution is the resulting mixture of normals around d̄. Its quantiles
give the 95% interval; P(μ ≤ x) gives one-sided p at any x, so the same distribution tests against 0 and against an
equivalence margin (TOST). The seed term carries the residual noise σ_e² too, so with binary outcomes and three seeds
the interval is close to a t with 2 degrees of freedom on the seeds' means, whether or not they agree: three seeds
buy little over one seed's exact test (which speaks only for its run), five buy much more. Welch–Satterthwaite (a t
with estimated df, the mixed model's Kenward–Roger answer here) rejected 7–9% at a nominal 5% with three seeds in our
simulation; this stays at or below 5% there, at the price of coverage up to 99% where facts dominate at S = 3
(``tests/test_pooled.py`` measures both).

Heterogeneity: do the seeds disagree more than item noise predicts? F = MS_s / MS_r on (S − 1, (S − 1)(N − 1))
degrees of freedom.

One seed: the seed variance cannot be estimated, so this module does not apply; the callers keep the exact paired
tests and the item bootstrap for one run (``probekit.stats``), a statement about that run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

CONFIDENCE = 0.95
SEED_GRID = 256  # quantiles of χ²(S − 1) the seed term is integrated over
ITEM_GRID = 16  # quantiles of χ²(N − 1) the item term is integrated over


@dataclass(frozen=True)
class MeanSquares:
    """The two-way ANOVA of d [..., S, N]: grand mean, seed, item and residual mean squares (each [...])."""

    mean: np.ndarray
    seed: np.ndarray
    item: np.ndarray
    residual: np.ndarray
    seeds: int
    items: int

    @classmethod
    def of(cls, d: np.ndarray) -> MeanSquares:
        d = np.asarray(d, float)
        S, N = d.shape[-2:]
        if S < 2 or N < 2:
            raise ValueError(f"a two-way ANOVA needs ≥ 2 seeds and ≥ 2 items, got {S} × {N}")
        grand = d.mean((-2, -1))
        seed_means, item_means = d.mean(-1), d.mean(-2)  # [..., S], [..., N]
        seed = N * ((seed_means - grand[..., None]) ** 2).sum(-1) / (S - 1)
        item = S * ((item_means - grand[..., None]) ** 2).sum(-1) / (N - 1)
        resid = d - seed_means[..., :, None] - item_means[..., None, :] + grand[..., None, None]
        residual = (resid ** 2).sum((-2, -1)) / ((S - 1) * (N - 1))
        return cls(grand, seed, item, residual, S, N)

    def heterogeneity_p(self) -> np.ndarray:
        """p of F = MS_s / MS_r: the seeds' means differ more than item noise predicts (NaN where MS_r is 0)."""
        S, N = self.seeds, self.items
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(self.residual > 0, self.seed / self.residual, np.nan)
        return stats.f.sf(f, S - 1, (S - 1) * (N - 1))

    def sd_grid(self) -> np.ndarray:
        """[..., G] plausible standard deviations of the grand mean (the generalised pivot's grid): the seed term
        MS_s·(S − 1)/χ²(S − 1) and the item term (MS_i·(N − 1)/χ²(N − 1) − MS_r)⁺, MS_r's own (S − 1)(N − 1)
        degrees of freedom taken as exact."""
        S, N = self.seeds, self.items
        seed_w = _chi2_grid(S - 1, SEED_GRID)[:, None]  # [Gs, 1]
        item_w = _chi2_grid(N - 1, ITEM_GRID)[None]  # [1, Gi]
        seed = np.maximum(self.seed[..., None, None] / seed_w, self.residual[..., None, None])  # E(MS_s) ≥ E(MS_r)
        item = np.maximum(self.item[..., None, None] / item_w - self.residual[..., None, None], 0.0)
        return np.sqrt((seed + item) / (S * N)).reshape(*np.shape(self.mean), -1)


def _chi2_grid(df: int, n: int) -> np.ndarray:
    """[n] mid-quantiles of χ²(df)/df."""
    return stats.chi2.ppf((np.arange(n) + 0.5) / n, df) / df


def log_cdf(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """log P(μ ≤ x) under the generalised pivot: the mean over the grid sd [..., G] of Φ((x − mean) / sd), in logs
    so that tiny tails stay exact. Where every sd is 0 (all values equal) μ is the mean itself."""
    x, mean = np.asarray(x, float), np.asarray(mean, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x - mean)[..., None] / sd
    z = np.where(sd > 0, z, np.where((x - mean)[..., None] >= 0, np.inf, -np.inf))
    return special.logsumexp(stats.norm.logcdf(z), axis=-1) - math.log(sd.shape[-1])


@dataclass(frozen=True)
class Pooled:
    """A mean over S seeds × N items with its interval, p against 0 and the seed-heterogeneity test.

    value, lo, hi: the grand mean and its 95% interval; p: two-sided, against 0; per_seed [S]: each seed's item mean;
    heterogeneity_p: the F test of the seeds' spread against item noise."""

    value: float
    lo: float
    hi: float
    p: float
    per_seed: np.ndarray
    heterogeneity_p: float
    items: int
    sd: np.ndarray  # [G]: the pivot's grid, for tests against other points (``p_below`` / ``p_above``)

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    def p_above(self, x: float) -> float:
        """One-sided p of H0: μ ≤ x, i.e. P(μ ≤ x) under the pivot (small when μ is shown to lie above x)."""
        return float(np.exp(log_cdf(x, self.value, self.sd)))

    def p_below(self, x: float) -> float:
        """One-sided p of H0: μ ≥ x, i.e. P(μ ≥ x) under the pivot (small when μ is shown to lie below x)."""
        return float(np.exp(log_cdf(2 * self.value - x, self.value, self.sd)))  # the pivot is symmetric


def two_sided_p(ms: MeanSquares, sd: np.ndarray, at: float | np.ndarray = 0.0) -> np.ndarray:
    """Two-sided p of H0: μ = at (vectorised over the leading shape of `ms`)."""
    lower = log_cdf(at, ms.mean, sd)
    upper = log_cdf(2 * ms.mean - at, ms.mean, sd)
    return np.minimum(1.0, 2 * np.exp(np.minimum(lower, upper)))


def half_width(mean: float, sd: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """c with P(μ ≤ mean + c) = (1 + confidence) / 2 under the pivot (bisection on a monotone mixture)."""
    if not (sd > 0).any():
        return 0.0
    target = (1 + confidence) / 2
    lo, hi = 0.0, 60.0 * float(sd.max())
    for _ in range(80):
        mid = (lo + hi) / 2
        if stats.norm.cdf(mid / sd[sd > 0]).sum() / sd.size + (sd == 0).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def pooled_mean(d: np.ndarray, confidence: float = CONFIDENCE) -> Pooled:
    """The pooled inference of per-item values d [S, N] (S ≥ 2 seeds sharing N items). Items with a NaN at any
    seed are left out (a metric undefined for that item in some run); fewer than 2 left, or an infinite value, is a
    ValueError."""
    d = np.asarray(d, float)
    if np.isinf(d).any():
        raise ValueError("pooled_mean needs finite values (NaN marks an undefined item)")
    d = d[:, ~np.isnan(d).any(0)]
    ms = MeanSquares.of(d)
    sd = ms.sd_grid()
    c = half_width(float(ms.mean), sd, confidence)
    return Pooled(float(ms.mean), float(ms.mean) - c, float(ms.mean) + c, float(two_sided_p(ms, sd)), d.mean(1),
                  float(ms.heterogeneity_p()), d.shape[1], sd)
