"""probekit.pooled: the two-way ANOVA against plain loops, the pivot's limits, and its calibration on simulated
correct/incorrect outcomes with known truth (type-I error, coverage, power over S = 1, 3, 5 seeds, N = 100, 600)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats as sps
from scipy.special import expit

from probekit import stats
from probekit.pooled import MeanSquares, pooled_mean, two_sided_p


def ref_mean_squares(d):
    """Seed, item and residual mean squares of a two-way table by plain loops."""
    S, N = len(d), len(d[0])
    grand = sum(sum(row) for row in d) / (S * N)
    seed_means = [sum(row) / N for row in d]
    item_means = [sum(d[s][i] for s in range(S)) / S for i in range(N)]
    seed = N * sum((m - grand) ** 2 for m in seed_means) / (S - 1)
    item = S * sum((m - grand) ** 2 for m in item_means) / (N - 1)
    resid = sum((d[s][i] - seed_means[s] - item_means[i] + grand) ** 2 for s in range(S) for i in range(N))
    return grand, seed, item, resid / ((S - 1) * (N - 1))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(float, st.tuples(st.integers(2, 5), st.integers(2, 12)),
                  elements=st.integers(-2, 2).map(float)))
def test_mean_squares_match_plain_loops(d):
    ms = MeanSquares.of(d)
    ref = ref_mean_squares(d.tolist())
    assert [float(ms.mean), float(ms.seed), float(ms.item), float(ms.residual)] == pytest.approx(ref, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(float, st.tuples(st.integers(2, 5), st.integers(3, 40)),
                  elements=st.floats(-1, 1, allow_nan=False)))
def test_interval_and_p_agree_and_center_on_the_pooled_mean(d):
    r = pooled_mean(d)
    assert r.value == pytest.approx(d.mean(1).mean())
    assert r.lo <= r.value <= r.hi
    if r.hi - r.lo > 1e-9 and min(abs(r.lo), abs(r.hi)) > 1e-6 * (r.hi - r.lo):
        assert (r.p < 0.05) == (r.lo > 0 or r.hi < 0)  # one pivot: the interval excludes 0 iff p < 0.05
        assert r.p_above(r.lo) == pytest.approx(0.025, abs=1e-6)
        assert r.p_below(r.hi) == pytest.approx(0.025, abs=1e-6)


def test_seed_dominated_tends_to_the_seed_level_t_and_agreeing_seeds_to_the_normal():
    rng = np.random.default_rng(0)
    # seeds far apart, items alike: the t interval on the S seed means with S − 1 df
    d = np.array([[0.0], [3.0], [7.0]]) + 1e-4 * rng.normal(size=(3, 500))
    r = pooled_mean(d)
    se = d.mean(1).std(ddof=1) / np.sqrt(3)
    assert r.hi - r.value == pytest.approx(sps.t.ppf(0.975, 2) * se, rel=2e-3)
    # no seed effect, many items: close to the normal interval of the item means
    d = rng.normal(size=(1, 2000)) + 0.1 * rng.normal(size=(5, 2000))
    r = pooled_mean(d)
    assert r.hi - r.value == pytest.approx(1.96 * d.mean(0).std(ddof=1) / np.sqrt(2000), rel=0.05)


def test_tiny_p_stays_exact_and_constant_values_are_certain():
    rng = np.random.default_rng(1)
    r = pooled_mean(5 + rng.normal(size=(4, 300)))
    assert 0 < r.p < 1e-12
    r = pooled_mean(np.full((3, 10), 0.25))
    assert (r.value, r.lo, r.hi, r.p) == (0.25, 0.25, 0.25, 0.0)
    assert pooled_mean(np.zeros((3, 10))).p == 1.0


def test_tied_seed_means_do_not_collapse_the_interval():
    """Each seed gains 2 of 100 facts and loses none (different facts): the seeds' means tie, MS_seed = 0. The pooled
    p stays of the order of McNemar's on the 300 fact-seeds (6 vs 0: 0.031), not 0."""
    d = np.zeros((3, 100))
    for s in range(3):
        d[s, [2 * s, 2 * s + 1]] = 1
    r = pooled_mean(d)
    assert 0.005 < r.p < 0.1 and r.lo < r.value < r.hi
    with pytest.raises(ValueError, match="finite"):
        pooled_mean(np.array([[1.0, np.inf], [0.0, 1.0]]))


def test_items_with_a_nan_at_any_seed_are_left_out():
    d = np.array([[1.0, 2.0, np.nan, 4.0], [1.0, 3.0, 0.0, 5.0]])
    assert pooled_mean(d).items == 3
    assert pooled_mean(d).value == pytest.approx(np.mean([1, 2, 4, 1, 3, 5]))


# --- calibration: correct/incorrect outcomes of two conditions on shared facts, known effect -----------------------
#
# Fact i has a base logit β_i ~ N(2, 1.5²) (most held-out facts answered); the effect of condition a over b on its
# logit is δ + u_s + v_i, split evenly (+½ to a, −½ to b), so at δ = 0 the mean difference in accuracy is exactly 0
# by symmetry; seed s's effect u_s ~ N(0, σ_u²) (seed variance), fact i's v_i ~ N(0, 1) (fact variance), and each
# outcome is a Bernoulli draw (residual noise). The truth at δ ≠ 0 is the population mean over facts and seeds.

REPLICATIONS = 1000
EFFECT = 0.5  # logit units: ≈ 6 pp in accuracy


def simulate(rng, reps, seeds, facts, delta, seed_sd):
    """[reps, seeds, facts] per-fact outcome differences (a − b in {−1, 0, 1})."""
    beta = rng.normal(2.0, 1.5, (reps, 1, facts))
    effect = delta + rng.normal(0, seed_sd, (reps, seeds, 1)) + rng.normal(0, 1.0, (reps, 1, facts))
    a = rng.random((reps, seeds, facts)) < expit(beta + effect / 2)
    b = rng.random((reps, seeds, facts)) < expit(beta - effect / 2)
    return a.astype(float) - b


def truth(delta, seed_sd):
    """The population mean difference (Monte Carlo over 10⁶ facts × seeds: error ≈ 1e-4, far below the intervals)."""
    rng = np.random.default_rng(123)
    beta = rng.normal(2.0, 1.5, 10**6)
    effect = delta + rng.normal(0, seed_sd, 10**6) + rng.normal(0, 1.0, 10**6)
    return float((expit(beta + effect / 2) - expit(beta - effect / 2)).mean())


def pooled_p(d, at=0.0):
    """The pooled two-sided p of every replication of d [R, S, N] (the module's own vectorised code path)."""
    ms = MeanSquares.of(d)
    return two_sided_p(ms, ms.sd_grid(), at)


def one_seed_p(d):
    """One seed: the exact McNemar p of each replication (what the analyses run for a single run); a fact right
    under a alone has difference 1, under b alone −1."""
    return np.array([stats.mcnemar(x[0] == 1, x[0] == -1) for x in d])


MC = 2.6 * np.sqrt(0.05 * 0.95 / REPLICATIONS)  # Monte Carlo allowance (≈ 99.5% one-sided) on a 5% rate


@pytest.mark.parametrize("facts", [100, 600])
def test_calibration_type_one_error_coverage_and_power(facts):
    rng = np.random.default_rng(facts)
    power = {}
    for seed_sd in (0.0, 0.3, 1.0):  # none, moderate, large seed variance (1.0: seeds' effects ± 12 pp)
        true_effect = truth(EFFECT, seed_sd)
        for seeds in (3, 5):
            null = pooled_p(simulate(rng, REPLICATIONS, seeds, facts, 0.0, seed_sd))
            alt = simulate(rng, REPLICATIONS, seeds, facts, EFFECT, seed_sd)
            type_one = (null < 0.05).mean()
            coverage = (pooled_p(alt, true_effect) >= 0.05).mean()
            power[seed_sd, seeds] = (pooled_p(alt) < 0.05).mean()
            where = f"N={facts} σ_u={seed_sd} S={seeds}: type-I {type_one:.3f} coverage {coverage:.3f}"
            assert type_one <= 0.05 + MC, where
            assert 0.93 - MC <= coverage <= 0.995, where  # conservative, up to 99%, where facts dominate at S = 3
        assert power[seed_sd, 5] > power[seed_sd, 3], (seed_sd, power)
    # one seed without seed variance: the exact test is calibrated for that run (with seed variance no one-seed
    # test can be: its effect is the run's own); it answers a narrower question, so its power is not compared
    one_null = one_seed_p(simulate(rng, REPLICATIONS, 1, facts, 0.0, 0.0))
    assert (one_null < 0.05).mean() <= 0.05 + MC


def test_heterogeneity_test_is_calibrated_and_sees_seed_variance():
    rng = np.random.default_rng(7)
    agree = MeanSquares.of(simulate(rng, REPLICATIONS, 3, 600, 0.0, 0.0)).heterogeneity_p()
    assert (agree < 0.05).mean() <= 0.05 + MC
    disagree = MeanSquares.of(simulate(rng, REPLICATIONS, 3, 600, 0.0, 1.0)).heterogeneity_p()
    assert (disagree < 0.05).mean() > 0.8
