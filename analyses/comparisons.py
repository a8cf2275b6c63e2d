"""How sure each forgetting figure and each comparison of conditions is, from the runs' per-fact outcomes.

Conditions of one analysis share their held-out facts (and, with ``--seeds``, their training seeds). A run against
another is a paired difference computed fact by fact, with its 95% interval, one p and a verdict:

- one training seed: the interval resamples facts (percentile bootstrap, ``probekit.stats``) and the p is the
  exact paired test of the same quantity (ΔD_Held: the sign-flip test of the per-fact drops; one epoch's accuracy
  or the facts lost by the last epoch: McNemar); decided when the interval excludes 0 and p < 0.05. It speaks for
  that run: one seed cannot measure run-to-run variation.
- several seeds on the same facts: the per-fact differences [seeds, facts] go to ``probekit.pooled`` (two-way
  crossed random effects, facts and seeds; a generalised pivot for the interval and p), whose interval excludes 0
  exactly when p < 0.05; each seed's difference and the F test of seed heterogeneity are printed beside it.

A difference the data cannot decide is written as undecided, with the smallest difference the design detects.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from probekit import stats
from probekit.pooled import Pooled, pooled_mean

from .wall_time import dev_questions
from .epoch_tables import outcomes
from .profiles import Profile
from .runs import Trained

DISCORDANT = 0.1  # share of facts two conditions disagree on, assumed by the power figures
HIGHLY_KNOWN_SHARE = 0.15  # a dry run's estimate of the HighlyKnown share of dev questions
DETECTABLE_FACTOR = (1.96 + 0.84) / 1.96  # a normal pivot's 80%-power difference per interval half-width
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
        if correct.shape[0] == 1:
            est = stats.forgetting_ci(correct[0])
            lines.append(f"{t.label}: ΔD_Held {est.value:.1f} pp [{est.lo:.1f}, {est.hi:.1f}] over "
                         f"{correct.shape[2]} facts (95% bootstrap interval)")
            continue
        p = pooled_mean(100.0 * np.stack([stats.fact_drops(c) for c in correct]))
        per_seed = " / ".join(f"{v:.1f}" for v in p.per_seed)
        lines.append(f"{t.label}: ΔD_Held {p.value:.1f} pp [{p.lo:.1f}, {p.hi:.1f}] over {p.items} facts × "
                     f"{p.seeds} seeds (per seed {per_seed}; pooled 95% interval, seed heterogeneity p "
                     f"{p_text(p.heterogeneity_p)})")
    first, *others = trained
    return lines + [line for t in others if (line := difference_line(t, first, "forgetting", split))]


@dataclass
class Paired:
    """`a` − `b` on the same items (facts, or answer pairs): the difference with its 95% interval (`diff`, in
    `unit`: pp, or "" for a drift metric's own scale), one two-sided p against 0, the number of `items`, `n`.

    One seed: `test` names the exact paired test (McNemar, sign-flip, Wilcoxon signed-rank). Several: `pooled`
    holds the pooled inference (``probekit.pooled``: each seed's difference, the heterogeneity test, one-sided
    p at any margin)."""

    a: str
    b: str
    what: str
    diff: stats.Estimate
    p: float
    n: int
    unit: str = "pp"
    items: str = "facts"
    test: str = "McNemar"
    pooled: Pooled | None = None

    @classmethod
    def of_pooled(cls, a: str, b: str, what: str, pooled: Pooled, unit: str = "pp", items: str = "facts") -> Paired:
        """The comparison ``probekit.pooled`` made of several seeds' per-item differences."""
        return cls(a, b, what, stats.Estimate(pooled.value, pooled.lo, pooled.hi), pooled.p, pooled.items, unit,
                   items, test="pooled", pooled=pooled)

    @property
    def seeds(self) -> int:
        return self.pooled.seeds if self.pooled else 1

    @property
    def number_format(self) -> tuple[str, str]:
        """How its numbers print: (format spec, unit suffix): 1 decimal in pp, 4 on a drift metric's scale."""
        return (".1f", " pp") if self.unit == "pp" else (".4f", "")

    @property
    def decided(self) -> bool:
        """The interval excludes 0 and p < 0.05 (one pivot with several seeds: the two always agree)."""
        return not (self.diff.lo <= 0 <= self.diff.hi) and self.p < 0.05


STATISTICS = {"forgetting": "Δ{split}", "last": "{split} at the last epoch",
              "lost": "{split} lost by the last epoch"}


def fact_differences(x: np.ndarray, y: np.ndarray, statistic: str) -> np.ndarray:
    """Per seed and fact, the difference whose mean is `statistic`(a) − `statistic`(b), in pp: x, y [S, E, N] bool.

    "forgetting": each fact's drop from its run's peak epoch to the last (``stats.drop_differences``); "last": its
    last-epoch outcome; "lost": 1 − its last-epoch outcome, the drop from θ0, which knew every D_Held fact (SLiCK's
    HighlyKnown: right in every few-shot greedy run), a reference fixed before any run."""
    if statistic == "forgetting":
        d = np.stack([stats.drop_differences(xs, ys) for xs, ys in zip(x, y)])
    elif statistic in ("last", "lost"):
        d = x[:, -1].astype(int) - y[:, -1].astype(int)
        d = -d if statistic == "lost" else d
    else:
        raise ValueError(f"no per-fact difference for {statistic!r}: {' or '.join(map(repr, STATISTICS))}")
    return 100.0 * d


def paired_outcomes(a: str, b: str, x: np.ndarray, y: np.ndarray, statistic: str, what: str) -> Paired:
    """`a` − `b` of bool outcomes x, y [S, E, N] on the same seeds and facts: "forgetting" (ΔD_Held), "last" (the
    last epoch's share) or "lost" (the share lost by the last epoch), in pp. One seed: the fact bootstrap and the
    exact paired test (sign-flip of per-fact drops, or McNemar); several: ``probekit.pooled``."""
    if x.shape[0] > 1:
        return Paired.of_pooled(a, b, what, pooled_mean(fact_differences(x, y, statistic)))
    test = "forgetting" if statistic == "forgetting" else "last"  # "lost" is "last" with its sign turned
    diff = stats.paired_difference(x[0], y[0], test)
    if test == "last":
        sign = -1 if statistic == "lost" else 1
        lo, hi = sorted((sign * 100 * diff.lo, sign * 100 * diff.hi))
        diff = stats.Estimate(sign * 100 * diff.value, lo, hi)
    return Paired(a, b, what, diff, stats.paired_p(x[0], y[0], test), x.shape[2], test=stats.PAIRED_TESTS[test])


def run_difference(a: Trained, b: Trained, statistic: str = "forgetting", split: str = "held") -> Paired | None:
    """`a` − `b` on the same facts: ΔD_Held ("forgetting"), last-epoch accuracy ("last") or the share lost by the
    last epoch ("lost") of `split` in pp; None where the runs do not share their facts, epochs and seeds."""
    x, y = outcomes(a, split), outcomes(b, split)
    if x.shape != y.shape:
        return None
    name = SPLIT_NAMES.get(split, split)
    return paired_outcomes(a.label, b.label, x, y, statistic, STATISTICS[statistic].format(split=name))


def difference_line(a: Trained, b: Trained, statistic: str = "forgetting", split: str = "held") -> str | None:
    """``run_difference`` as a line with its verdict (None where the runs are not paired)."""
    paired = run_difference(a, b, statistic, split)
    return paired and outcome_line(paired)


def paired_line(a: str, b: str, x: np.ndarray, y: np.ndarray, statistic: str, what: str) -> str:
    """``paired_outcomes`` as a line with its verdict."""
    return outcome_line(paired_outcomes(a, b, x, y, statistic, what))


def outcome_line(c: Paired) -> str:
    """`a − b: what +d pp [lo, hi], <test> p …: verdict` (one seed), or with several seeds `… over N facts × S seeds
    (per seed …), pooled p …, seed heterogeneity p …: verdict`."""
    fmt, unit = c.number_format
    head = f"{c.a} − {c.b}: {c.what} {c.diff.value:+{fmt}}{unit} [{c.diff.lo:+{fmt}}, {c.diff.hi:+{fmt}}]"
    if c.pooled is None:
        return f"{head}, {c.test} p {p_text(c.p)}: {verdict(c)}"
    per_seed = " / ".join(f"{v:+{fmt}}" for v in c.pooled.per_seed)
    return (f"{head} over {c.pooled.items} {c.items} × {c.seeds} seeds (per seed {per_seed}), pooled p "
            f"{p_text(c.p)}, seed heterogeneity p {p_text(c.pooled.heterogeneity_p)}: {verdict(c)}")


def p_text(v: float) -> str:
    """`0.012` at 0.001 and above, `3e-6` below, `< 1e-300` where the p underflowed to 0, `n/a` for NaN; one more
    digit where three would round across 0.05 (`0.0498`, not `0.050`, beside "decided")."""
    if math.isnan(v):
        return "n/a"
    if 0.0495 <= v < 0.0505:
        return f"{v:.4f}"
    if v >= 0.001:
        return f"{v:.3f}"
    return f"{v:.0e}".replace("e-0", "e-") if v > 0 else "< 1e-300"


def verdict(c: Paired) -> str:
    """'decided' when the interval excludes 0 and p < 0.05; else 'undecided' with what the design detects. With one
    seed the percentile bootstrap alone is too sure of itself on a handful of discordant facts, so the exact p
    must agree; with several the pooled interval and p are one pivot."""
    if c.decided:
        return "decided"
    if c.pooled is not None:
        fmt, unit = c.number_format
        reach = DETECTABLE_FACTOR * (c.diff.hi - c.diff.lo) / 2
        return f"undecided (80% power only for differences ≥ ≈ {reach:{fmt}}{unit} at this spread)"
    if c.unit != "pp":
        return "undecided"
    if c.diff.lo <= 0 <= c.diff.hi:
        return f"undecided ({power_note(c.n)})"
    return f"undecided: the interval excludes 0 but the exact p ≥ 0.05 ({power_note(c.n)})"


def comparison_lines(pairs: list[tuple[Trained, Trained]], statistic: str = "forgetting",
                     split: str = "held") -> list[str]:
    """``difference_line`` of each (a, b) pair that shares its facts."""
    return [line for a, b in pairs if (line := difference_line(a, b, statistic, split))]


def held_size(profile: Profile) -> tuple[int, str]:
    """The planned number of D_Held facts whose outcomes are compared, and how it was found."""
    limit = f", the first {profile.run.eval_limit} evaluated" if profile.run.eval_limit else ""
    if profile.splits.held_size is not None:
        n = min(profile.splits.held_size, profile.run.eval_limit or profile.splits.held_size)
        return n, f"D_Held of at most {n} facts (held_size {profile.splits.held_size}{limit})"
    dev = dev_questions(profile)
    n = max(1, round(HIGHLY_KNOWN_SHARE * dev))
    n = min(n, profile.run.eval_limit or n)
    return n, (f"D_Held of all HighlyKnown dev questions: an estimate of {n} facts ({HIGHLY_KNOWN_SHARE:.0%} of "
               f"{dev} dev questions{limit}; SLiCK decides the real number)")


def observed_discordance(finished: list[list[dict]]) -> tuple[float, int, int] | None:
    """From finished runs' records (each a run's metrics.jsonl lines) on the same held-out facts at the same seed:
    the median share of facts whose last-epoch D_Held outcome differs between two runs, the number of such pairs
    and of facts (None where no two finished runs share their facts)."""
    bits = [records[-1].get("correct", {}).get("held") for records in finished]
    shares = [np.mean([x != y for x, y in zip(a, b)]) for i, a in enumerate(bits) for b in bits[i + 1:]
              if a and b and len(a) == len(b)]
    if not shares:
        return None
    return float(np.median(shares)), len(shares), len(next(b for b in bits if b))


def power_line(profile: Profile, label: str = "power", finished: list[list[dict]] | None = None) -> str:
    """A dry run's line: the smallest ΔD_Held difference between two conditions the planned D_Held detects, at the
    discordance the finished runs show (grouped by seed by the caller), else at an assumed DISCORDANT."""
    observed = observed_discordance(finished or [])
    if observed:
        discordant, pairs, n = observed
        how = f"D_Held of {n} facts evaluated (the finished runs' own)"
        share = f"{discordant:.0%} of facts discordant at the last epoch (the median of {pairs} pairs of finished runs)"
    else:
        n, how = held_size(profile)
        discordant, share = DISCORDANT, f"an assumed {DISCORDANT:.0%} of facts discordant between the conditions"
    d = stats.detectable_difference(n, discordant)
    found = (f"the smallest ΔD_Held difference between two conditions detected at 80% power is {d:.1f} pp" if
             not math.isnan(d) else "no ΔD_Held difference between two conditions is detected at 80% power")
    return (f"  {label}: {how}; {found} with one seed (the power of exact McNemar, α = 0.05, {share}: ΔD_Held's "
            "sign-flip test is McNemar where per-fact drops differ by at most 1; three pooled seeds detect about "
            "this, five much smaller differences: see docs/pooled-verdicts.md)")
