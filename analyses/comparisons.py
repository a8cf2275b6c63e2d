"""How sure each forgetting figure and each comparison of conditions is, from the runs' per-fact outcomes.

Conditions of one analysis share their held-out facts (and, with ``--seeds``, their training seeds), so every
interval resamples the same seeds and facts for all of them (``probekit.stats``): ΔD_Held (peak → last, in pp) of
each run with its 95% interval, and a run against another as a paired difference with its interval and an exact
paired p per seed that tests the same quantity: for ΔD_Held a sign-flip test of the per-fact drops (each fact's
peak-minus-last under one run minus under the other), for one epoch's accuracy McNemar. A difference whose interval
holds 0 is written as undecided, with the smallest difference the design detects at 80% power.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from probekit import stats

from .estimate import dev_questions
from .frames import outcomes
from .profiles import Profile
from .runs import Trained

DISCORDANT = 0.1  # share of facts two conditions disagree on, assumed by the power figures
HIGHLY_KNOWN_SHARE = 0.15  # a dry run's estimate of the HighlyKnown share of dev questions
SPLIT_NAMES = {"known": "D_Known", "unknown": "D_Unk", "held": "D_Held", "maybe_known": "MaybeKnown",
               "weakly_known": "WeaklyKnown"}


@functools.lru_cache
def detectable(n: int) -> float:
    """The smallest paired difference (pp) an exact McNemar test on `n` facts finds at 80% power (NaN: none)."""
    return stats.detectable_difference(n, DISCORDANT)


def power_note(n: int) -> str:
    """What the design could have decided: the detectable difference on `n` facts at 80% power (McNemar's power,
    which ΔD_Held's sign-flip test has where the per-fact drops differ by at most 1)."""
    d = detectable(n)
    return (f"80% power only for differences ≥ {d:.1f} pp with {n} facts" if not math.isnan(d) else
            f"no difference has 80% power on {n} facts")


def forgetting_lines(trained: list[Trained], split: str = "held") -> list[str]:
    """One line per run (ΔD_Held [lo, hi]) and one per later run against the first (paired difference and p)."""
    lines = []
    for t in trained:
        correct = outcomes(t, split)
        est = stats.seeds_curve_ci(correct, "forgetting")
        seeds = f" × {correct.shape[0]} seeds" if correct.shape[0] > 1 else ""
        lines.append(f"{t.label}: ΔD_Held {est.value:.1f} pp [{est.lo:.1f}, {est.hi:.1f}] over {correct.shape[2]} "
                     f"facts{seeds} (95% bootstrap interval)")
    first, *others = trained
    return lines + [line for t in others if (line := difference_line(t, first, "forgetting", split))]


@dataclass
class Paired:
    """`a` − `b` on the same items (facts, or answer pairs): the difference with its 95% interval over seeds and
    items (`diff`, in `unit`: pp, or "" for a drift metric's own scale), one p per training seed from `test`
    (exact McNemar on one epoch's outcomes, the sign-flip test of per-fact drops, or Wilcoxon) and the number of
    `items`, `n`."""

    a: str
    b: str
    what: str
    diff: stats.Estimate
    p: list[float]
    n: int
    unit: str = "pp"
    items: str = "facts"
    test: str = "McNemar"

    @property
    def decided(self) -> bool:
        """The interval excludes 0 and every seed's p is below 0.05."""
        return not (self.diff.lo <= 0 <= self.diff.hi) and significant(self.p)


def paired_outcomes(a: str, b: str, x: np.ndarray, y: np.ndarray, statistic: str, what: str) -> Paired:
    """`a` − `b` of bool outcomes x, y [S, E, N] on the same seeds and facts: the paired difference of `statistic`
    ("forgetting": ΔD_Held, or "last": the last epoch's share) in pp, with the exact paired p of that statistic per
    seed (``stats.paired_p``: the sign-flip test of per-fact drops, or McNemar on the last epoch)."""
    diff = stats.seeds_paired_difference(x, y, statistic)
    if statistic != "forgetting":
        diff = stats.Estimate(100 * diff.value, 100 * diff.lo, 100 * diff.hi)
    p = [stats.paired_p(xs, ys, statistic) for xs, ys in zip(x, y)]
    return Paired(a, b, what, diff, p, x.shape[2], test=stats.PAIRED_TESTS[statistic])


def run_difference(a: Trained, b: Trained, statistic: str = "forgetting", split: str = "held") -> Paired | None:
    """`a` − `b` on the same facts: ΔD_Held ("forgetting") or last-epoch accuracy ("last") of `split` in pp; None
    where the runs do not share their facts, epochs and seeds (not a paired comparison)."""
    x, y = outcomes(a, split), outcomes(b, split)
    if x.shape != y.shape:
        return None
    name = SPLIT_NAMES.get(split, split)
    return paired_outcomes(a.label, b.label, x, y, statistic,
                           f"Δ{name}" if statistic == "forgetting" else f"{name} at the last epoch")


def difference_line(a: Trained, b: Trained, statistic: str = "forgetting", split: str = "held") -> str | None:
    """``run_difference`` as a line with its verdict (None where the runs are not paired)."""
    paired = run_difference(a, b, statistic, split)
    return paired and outcome_line(paired)


def paired_line(a: str, b: str, x: np.ndarray, y: np.ndarray, statistic: str, what: str) -> str:
    """``paired_outcomes`` as a line with its verdict."""
    return outcome_line(paired_outcomes(a, b, x, y, statistic, what))


def outcome_line(c: Paired) -> str:
    """`a − b: what +d pp [lo, hi], <test> p …: verdict`."""
    return (f"{c.a} − {c.b}: {c.what} {c.diff.value:+.1f} pp [{c.diff.lo:+.1f}, {c.diff.hi:+.1f}], {c.test} p "
            f"{p_text(c.p)}: {verdict(c.diff, c.n, c.p)}")


def significant(p: list[float]) -> bool:
    """Every seed's p is below 0.05 (a NaN p, a test with nothing to test, is not)."""
    return all(v < 0.05 for v in p)


def p_text(p: list[float]) -> str:
    """One p per seed as text: `0.012`, `3e-6`, or `per seed 0.500 / 0.012`."""
    return _one_p(p[0]) if len(p) == 1 else "per seed " + " / ".join(map(_one_p, p))


def _one_p(v: float) -> str:
    """`0.012` at 0.001 and above, `3e-6` below, `< 1e-300` where the p underflowed to 0, `n/a` for NaN."""
    if math.isnan(v):
        return "n/a"
    if v >= 0.001:
        return f"{v:.3f}"
    return f"{v:.0e}".replace("e-0", "e-") if v > 0 else "< 1e-300"


def verdict(diff: stats.Estimate, n: int, p: list[float]) -> str:
    """'decided' when the interval excludes 0 and every seed's exact paired p is below 0.05, else 'undecided'
    with the design's power (the percentile bootstrap alone is too sure of itself on a handful of discordant
    facts, so the two must agree)."""
    if diff.lo <= 0 <= diff.hi:
        return f"undecided ({power_note(n)})"
    if not significant(p):
        return f"undecided: the interval excludes 0 but p ≥ 0.05 ({power_note(n)})"
    return "decided"


def comparison_lines(pairs: list[tuple[Trained, Trained]], statistic: str = "forgetting",
                     split: str = "held") -> list[str]:
    """``difference_line`` of each (a, b) pair that shares its facts."""
    return [line for a, b in pairs if (line := difference_line(a, b, statistic, split))]


def held_size(profile: Profile) -> tuple[int, str]:
    """The planned number of D_Held facts whose outcomes are compared, and how it was found."""
    limit = f", the first {profile.eval_limit} evaluated" if profile.eval_limit else ""
    if profile.held_size is not None:
        n = min(profile.held_size, profile.eval_limit or profile.held_size)
        return n, f"D_Held of at most {n} facts (held_size {profile.held_size}{limit})"
    dev = dev_questions(profile)
    n = max(1, round(HIGHLY_KNOWN_SHARE * dev))
    n = min(n, profile.eval_limit or n)
    return n, (f"D_Held of all HighlyKnown dev questions: an estimate of {n} facts ({HIGHLY_KNOWN_SHARE:.0%} of "
               f"{dev} dev questions{limit}; SLiCK decides the real number)")


def power_line(profile: Profile, label: str = "power") -> str:
    """A dry run's line: the smallest ΔD_Held difference between two conditions the planned D_Held detects."""
    n, how = held_size(profile)
    d = detectable(n)
    found = (f"the smallest ΔD_Held difference between two conditions detected at 80% power is {d:.1f} pp" if
             not math.isnan(d) else "no ΔD_Held difference between two conditions is detected at 80% power")
    return (f"  {label}: {how}; {found} (the power of exact McNemar, α = 0.05, {DISCORDANT:.0%} of facts "
            "discordant between the conditions: ΔD_Held's sign-flip test is McNemar where per-fact drops differ by "
            "at most 1)")
