"""How sure each forgetting figure and each comparison of conditions is, from the runs' per-fact outcomes.

Conditions of one analysis share their held-out facts, so every interval resamples the same facts for all of them
(``probekit.stats``): ΔD_Held (peak → last, in pp) of each run with its 95% interval, and each later run against
the first as a paired difference with its interval and an exact McNemar p on the last epoch's outcomes. A
difference whose interval holds 0 is written as undecided.
"""
from __future__ import annotations

from probekit import stats

from .frames import correct_matrix
from .runs import Trained


def forgetting_lines(trained: list[Trained], split: str = "held") -> list[str]:
    """One line per run (ΔD_Held [lo, hi]) and one per later run against the first (paired difference, McNemar)."""
    outcomes = {t.label: correct_matrix(t.records, split) for t in trained}
    lines = []
    for label, correct in outcomes.items():
        est = stats.forgetting_ci(correct)
        lines.append(f"{label}: ΔD_Held {est.value:.1f} pp [{est.lo:.1f}, {est.hi:.1f}] over {correct.shape[1]} "
                     "facts (95% bootstrap interval)")
    (first, a), *others = outcomes.items()
    for label, b in others:
        if b.shape != a.shape:
            continue  # other facts or epochs: not a paired comparison
        diff = stats.paired_difference(b, a, "forgetting")
        p = stats.mcnemar(b[-1], a[-1])
        verdict = "undecided" if diff.lo <= 0 <= diff.hi else "decided"
        lines.append(f"{label} − {first}: ΔD_Held {diff.value:+.1f} pp [{diff.lo:+.1f}, {diff.hi:+.1f}], "
                     f"McNemar p (last epoch) {p:.3f}: {verdict}")
    return lines
