"""probekit.stats against plain loops and scipy's binomial test; interval coverage on simulated outcomes."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from probekit import stats


def ref_mcnemar(a, b):
    """Exact McNemar by a plain loop: the discordant facts, and the two-sided binomial p at 1/2 by summing every
    outcome no more likely than the observed one."""
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    pmf = [sps.binom.pmf(k, n, 0.5) for k in range(n + 1)]
    return min(1.0, sum(p for p in pmf if p <= pmf[only_a] * (1 + 1e-7)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=80))
def test_mcnemar_matches_plain_loop_and_binomtest(pairs):
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    p = stats.mcnemar(a, b)
    assert p == pytest.approx(ref_mcnemar(a, b), rel=1e-9)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    if only_a + only_b:
        assert p == pytest.approx(sps.binomtest(only_a, only_a + only_b).pvalue, rel=1e-12)


def ref_sign_flip(d):
    """The sign-flip test by enumeration: every assignment of signs to the nonzero differences, equally likely;
    p = the share whose |signed sum| is at least the observed |sum|."""
    nonzero = [abs(x) for x in d if x != 0]
    observed = abs(sum(d))
    hits = 0
    for signs in itertools.product((1, -1), repeat=len(nonzero)):
        hits += abs(sum(s * x for s, x in zip(signs, nonzero))) >= observed
    return hits / 2 ** len(nonzero)


def ref_drop_differences(a, b):
    """Per fact: (a at its peak epoch − a at the last) − (b at its peak − b at the last), by plain loops."""
    def peak(c):
        means = [sum(row) / len(row) for row in c]
        return means.index(max(means))
    pa, pb = peak(a), peak(b)
    return [(int(a[pa][i]) - int(a[-1][i])) - (int(b[pb][i]) - int(b[-1][i])) for i in range(len(a[0]))]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=1, max_size=12))
def test_sign_flip_matches_enumeration(d):
    p = stats.sign_flip_p(np.array(d))
    assert p == pytest.approx(ref_sign_flip(d), rel=1e-9)
    assert stats.sign_flip_p(-np.array(d)) == pytest.approx(p, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200))
def test_sign_flip_on_one_epoch_is_mcnemar(pairs):
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    assert stats.sign_flip_p(a.astype(int) - b.astype(int)) == pytest.approx(stats.mcnemar(a, b), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 30), st.integers(0, 2**32 - 1))
def test_drop_differences_match_loop_and_the_forgetting_difference(epochs, facts, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((epochs, facts)) < 0.6, rng.random((epochs, facts)) < 0.6
    d = stats.drop_differences(a, b)
    assert d.tolist() == ref_drop_differences(a.tolist(), b.tolist())
    assert 100 * d.mean() == pytest.approx(stats.paired_difference(a, b, "forgetting", n_resamples=10).value, abs=1e-9)
    assert stats.paired_p(a, b, "forgetting") == pytest.approx(ref_sign_flip(d.tolist()), rel=1e-9) if \
        np.count_nonzero(d) <= 12 else True
    assert stats.paired_p(a, b, "last") == stats.mcnemar(a[-1], b[-1])


def test_paired_p_names_its_statistics_when_given_another():
    a = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match="'last' or 'forgetting'"):
        stats.paired_p(a, a, "peak")
    assert set(stats.PAIRED_TESTS) == {"last", "forgetting"}


def test_sign_flip_rejects_fractions_and_takes_large_samples():
    with pytest.raises(ValueError, match="integer"):
        stats.sign_flip_p(np.array([0.5, 1.0]))
    # 600 facts, too many to enumerate: against 100,000 random sign flips (standard error ≈ 0.0016)
    d = np.r_[np.full(20, 2), np.full(10, -2), np.full(40, 1), np.full(50, -1), np.zeros(480, int)]
    signs = np.random.default_rng(0).choice([-1, 1], size=(100_000, len(d)))
    monte_carlo = (np.abs(signs @ np.abs(d)) >= abs(d.sum())).mean()
    assert stats.sign_flip_p(d) == pytest.approx(monte_carlo, abs=0.01)
    # 40,000 facts (a paper-profile D_Held) in well under a second: the largest group's tails are read, not convolved
    big = np.random.default_rng(1).choice([-2, -1, 0, 1, 2], size=40_000, p=[0.1, 0.2, 0.4, 0.2, 0.1])
    assert 0 < stats.sign_flip_p(big) <= 1


def ref_forgetting_interval(correct, resamples, seed):
    """Paired percentile bootstrap of ΔD_Held by a plain loop: one index resample for all epochs, peak inside."""
    rng = np.random.default_rng(seed)
    epochs, n = correct.shape
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        acc = [sum(correct[e, i] for i in idx) / n for e in range(epochs)]
        values.append(100 * (max(acc) - acc[-1]))
    return np.percentile(values, 2.5), np.percentile(values, 97.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_forgetting_interval_matches_plain_loop(seed):
    rng = np.random.default_rng(seed)
    correct = rng.random((4, 60)) < np.array([[0.8], [0.7], [0.75], [0.6]])
    est = stats.forgetting_ci(correct, n_resamples=20000, seed=seed)
    lo, hi = ref_forgetting_interval(correct, 20000, seed + 100)
    acc = correct.mean(1)
    assert est.value == pytest.approx(100 * (acc.max() - acc[-1]))
    step = 100 / 60  # one fact: Monte Carlo noise of two independent 20,000-resample runs stays within it
    assert abs(est.lo - lo) <= step and abs(est.hi - hi) <= step


def test_paired_difference_uses_the_same_facts():
    rng = np.random.default_rng(3)
    a = rng.random((3, 200)) < 0.7
    assert stats.paired_difference(a, a.copy(), "forgetting").lo == 0 == stats.paired_difference(a, a, "last").hi
    b = a.copy()
    b[-1, :4] = False  # up to four facts forgotten more under b, everything else equal
    diff = stats.paired_difference(a, b, "last")
    assert diff.value == pytest.approx(a[-1, :4].sum() / 200)
    assert 0 <= diff.lo <= diff.value <= diff.hi <= 10 / 200  # b is never right where a is wrong: lo ≥ 0


def test_interval_coverage_on_simulated_bernoulli_outcomes():
    """95% intervals of an accuracy cover the true rate in 93–97% of 1,000 simulated studies."""
    p, n, sims = 0.5, 100, 1000
    rng = np.random.default_rng(12345)
    covered = 0
    for s in range(sims):
        x = rng.random(n) < p
        est = stats.mean_ci(x, n_resamples=1000, seed=s)
        covered += est.lo <= p <= est.hi
    assert 0.93 <= covered / sims <= 0.97


def test_accuracy_interval_per_epoch_and_degenerate_inputs():
    correct = np.array([[1, 1, 1, 1], [1, 0, 1, 0]], bool)
    est = stats.accuracy_ci(correct)
    assert est.value.tolist() == [1.0, 0.5] and est.lo[0] == est.hi[0] == 1.0 and est.lo[1] < 0.5 < est.hi[1]
    assert np.isnan(stats.mean_ci([]).value) and stats.mean_ci([0.3]).lo == 0.3
    assert stats.mean_ci([1.0, np.nan, 3.0]).value == 2.0


def test_detectable_difference_shrinks_with_more_facts():
    small, large = stats.detectable_difference(100), stats.detectable_difference(1000)
    assert 0 < large < small <= 10
    assert np.isnan(stats.detectable_difference(20))  # 10% discordant of 20 facts: nothing is detectable
