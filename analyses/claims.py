"""The study's four claims, each marked supported, contradicted or undecided at this power, from fig3's and fig5's
runs (trained here where missing, shared with those figures).

A claim is one or more paired comparisons on the same held-out facts, each an interval for a − b (one seed: the
fact bootstrap with the exact paired p; several: the pooled inference over facts × seeds, ``probekit.pooled``).
Forgetting claims rest on two statistics, both reported: ΔD_Held, the study's drop from each run's peak epoch to
its last (the peak is chosen by the data), and D_Held lost by the last epoch, a drop from θ0, which knew every
D_Held fact (SLiCK's HighlyKnown), fixed before any run; RD is read at the last epoch. One rule for every claim:

- a claim names a region for a − b: "a > b" the values above 0, "a ≈ b" those within ± the margin (``--margin``
  pp, ``--rd-margin`` for RD). It is supported when the 95% interval lies inside the region, contradicted when it
  lies wholly outside it, otherwise undecided; so "≈" is two one-sided tests (TOST) at 2.5% each against the
  margin, and "contradicted" needs the same standard on the other side. With one seed, a verdict at 0 also needs
  the exact paired p below 0.05.

A claim is supported when all its comparisons are, contradicted when any is, else undecided.

Writes claims.md (the table), claims.csv and claims.png / .pdf (each difference with its interval and margin).

    python -m analyses.claims [--profile quick|standard|paper] [--seeds 0 1 2] [--margin 3] [--rd-margin 0.005]
"""
from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from probekit.config import option

from .comparisons import Paired, p_text, power_line, run_difference
from .drift_items import drift_differences
from .outputs import interval_cell, save_table, write_outputs
from .profiles import synthetic_profile
from .runs import STUDY_CONDITIONS, SYNTHETIC_CONDITIONS, Run, Trained, synthetic_runs
from .analysis import Analysis, standard_plan

NAME = "claims"
RULES = [" ".join(rule.removeprefix("- ").split()) for paragraph in __doc__.split("\n\n")[1:4]
         for rule in paragraph.split("\n- ")]  # how a verdict is reached, as the docstring says
VERDICT_COLORS = {"supported": "#2ca02c", "contradicted": "#d62728", "undecided": "0.5"}
FIG5 = list(SYNTHETIC_CONDITIONS)  # SFT semantic, self-distillation semantic, SFT UUID
COLUMNS = ["claim", "comparison", "unit", "difference", "difference lo", "difference hi", "margin", "p", "TOST p",
           "seed heterogeneity p", "n", "seeds", "verdict", "claim verdict"]


@dataclass
class Options:
    margin: float = option(3.0, "a ≈ claim on forgetting (ΔD_Held and lost by the last epoch) holds when the 95% "
                           "interval of the difference lies within ± this many pp")
    rd_margin: float = option(0.005, "a ≈ claim on RD holds when the 95% interval of the difference lies within ± "
                              "this")


def plan(ctx, data) -> list[Run]:
    """fig3's runs (pooled relations), then fig5's (the synthetic P17 setting)."""
    return standard_plan(STUDY_CONDITIONS)(ctx, data) + synthetic_runs(synthetic_profile(ctx.profile), data)


def comparison_verdict(c: Paired, relation: str, margin: float) -> str:
    """supported / contradicted / undecided for `a > b` (relation ">") or `a ≈ b` within ± margin ("≈"): where the
    95% interval lies against the claimed region (see the module's rule)."""
    lo, hi = c.diff.lo, c.diff.hi
    low, high = (0.0, math.inf) if relation == ">" else (-margin, margin)
    if low < lo and hi < high:
        verdict = "supported"
    elif hi < low or lo > high:
        verdict = "contradicted"
    else:
        return "undecided"
    at_zero = relation == ">"  # the region's edge is 0, where one seed has an exact test
    return verdict if not at_zero or c.pooled is not None or c.p < 0.05 else "undecided"


def tost_p(c: Paired, margin: float) -> float:
    """The TOST p of `a ≈ b` within ± margin: the larger one-sided p of μ ≤ −margin and μ ≥ margin (several seeds:
    from the pooled pivot; one seed: NaN, the bootstrap interval decides)."""
    if c.pooled is None:
        return math.nan
    return max(c.pooled.p_above(-margin), c.pooled.p_below(margin))


def claim_verdict(verdicts: list[str]) -> str:
    """Supported when every comparison is, contradicted when any is, else undecided."""
    if "contradicted" in verdicts:
        return "contradicted"
    return "supported" if all(v == "supported" for v in verdicts) else "undecided"


Comparison = tuple[str, Paired | None, str, float]  # claim, comparison, relation (">" or "≈"), margin


def comparisons(runs: dict[str, Trained], margin: float, rd_margin: float) -> list[Comparison]:
    """(claim, comparison, relation, margin) of every comparison the four claims make (None: the runs are not
    paired, e.g. their states are missing)."""
    def rd(a: str, b: str) -> Paired | None:
        return next(iter(drift_differences(runs[a], runs[b], ["RD"])), None)

    sft, sd, uuid = FIG5

    def forgets(claim: str, a: str, b: str, relation: str, m: float) -> list[Comparison]:
        return [(claim, run_difference(runs[a], runs[b], statistic), relation, m)
                for statistic in ("forgetting", "lost")]

    return [
        *forgets("SFT forgets more than self-distillation", "SFT", "Self-distillation", ">", 0.0),
        *forgets("self-distillation ≈ Only Known", "Self-distillation", "Only Known", "≈", margin),
        *forgets("semantic keys drift and forget more than UUID keys", sft, uuid, ">", 0.0),
        ("semantic keys drift and forget more than UUID keys", rd(sft, uuid), ">", 0.0),
        ("RD: SFT semantic > self-distillation ≈ UUID", rd(sft, sd), ">", 0.0),
        ("RD: SFT semantic > self-distillation ≈ UUID", rd(sd, uuid), "≈", rd_margin),
    ]


def claims_frame(trained: list[Trained], margin: float, rd_margin: float) -> pd.DataFrame:
    """One row per comparison: claim, comparison, unit, difference (lo, hi), p, TOST p, heterogeneity, n, seeds,
    verdict and the claim's verdict."""
    rows = []
    for claim, c, relation, m in comparisons({t.label: t for t in trained}, margin, rd_margin):
        if c is None:
            rows.append(dict(claim=claim, comparison=f"not paired ({relation}): the runs do not share their facts, "
                             "or lack their probe states", verdict="undecided"))
            continue
        unit = c.unit or "1 − cos"
        rule = "> 0" if relation == ">" else f"≈ 0 within ± {m:g}{' pp' if c.unit == 'pp' else ''}"
        rows.append({"claim": claim, "comparison": f"{c.a} − {c.b}: {c.what} {rule}", "unit": unit,
                     "difference": c.diff.value, "difference lo": c.diff.lo, "difference hi": c.diff.hi,
                     "margin": m if relation == "≈" else None, "p": p_text(c.p),
                     "TOST p": p_text(tost_p(c, m)) if relation == "≈" else "",
                     "seed heterogeneity p": p_text(c.pooled.heterogeneity_p) if c.pooled else "", "n": c.n,
                     "seeds": c.seeds, "verdict": comparison_verdict(c, relation, m)})
    df = pd.DataFrame(rows, columns=COLUMNS[:-1])
    df["claim verdict"] = df.groupby("claim", sort=False)["verdict"].transform(lambda v: claim_verdict(list(v)))
    return df


def shown(df: pd.DataFrame) -> pd.DataFrame:
    """The table as printed: each difference as `value [lo, hi]` (1 decimal in pp, 4 for RD)."""
    cells = [interval_cell(v, lo, hi, ".1f" if unit == "pp" else ".4f") for v, lo, hi, unit in
             zip(df["difference"], df["difference lo"], df["difference hi"], df["unit"])]
    return df.drop(columns=["difference lo", "difference hi", "margin"]).assign(difference=cells)


def row_label(comparison: str) -> str:
    """A comparison's pair and statistic without its relation: "SFT − Self-distillation: ΔD_Held > 0" → "SFT −
    Self-distillation, ΔD_Held" (a claim's rows on two statistics of one pair stay apart)."""
    pair, _, rest = comparison.partition(": ")
    statistic = re.split(r" (?:>|<|≈) ", rest)[0]
    return f"{pair}, {statistic}" if statistic else pair


def plot(df: pd.DataFrame, note: str):
    """A panel per unit (ΔD_Held in pp, RD): each comparison's difference with its 95% interval, coloured by
    verdict, the ± margin of a ≈ comparison shaded, 0 marked."""
    units = list(dict.fromkeys(df["unit"].dropna()))
    fig, axes = plt.subplots(1, len(units), figsize=(6 * len(units), 3.5), squeeze=False)
    for ax, unit in zip(axes[0], units):
        sub = df[df["unit"] == unit].reset_index(drop=True)
        y = range(len(sub))[::-1]
        for yi, (_, r) in zip(y, sub.iterrows()):
            if pd.notna(r["margin"]):
                ax.fill_betweenx([yi - 0.3, yi + 0.3], -r["margin"], r["margin"], color="0.85", linewidth=0)
            ax.errorbar(r["difference"], yi, xerr=[[r["difference"] - r["difference lo"]],
                                                   [r["difference hi"] - r["difference"]]],
                        fmt="o", color=VERDICT_COLORS[r["verdict"]], capsize=3)
        ax.axvline(0, color="0.3", linewidth=0.8)
        ax.set_ylim(-0.6, len(sub) - 0.4)
        ax.set_yticks(list(y), [textwrap.fill(row_label(c), 40) for c in sub["comparison"]], fontsize=7)
        ax.set_xlabel(f"{'forgetting' if unit == 'pp' else 'RD'} difference ({unit})")
    fig.text(0.5, -0.06, f"{note}; green supported, red contradicted, grey undecided; shaded: the ≈ margin",
             ha="center", fontsize=7)
    fig.tight_layout()
    return fig


def render(ctx, trained) -> pd.DataFrame:
    df = claims_frame(trained, ctx.options.margin, ctx.options.rd_margin)
    write_outputs(plot(df, ctx.caption()), df, NAME, ctx.figures_dir, ctx.seconds())
    title = (f"The study's claims on {ctx.caption()}: each paired comparison with its 95% interval, p and (several "
             "seeds) the seed-heterogeneity test")
    save_table(shown(df), NAME, ctx.figures_dir, title, RULES)
    return df


def describe(ctx) -> str:
    """The dry run's power line of fig5's comparisons, whose D_Held is P17's alone (the last line: fig3's)."""
    return power_line(synthetic_profile(ctx.profile), "power of fig5's comparisons (P17 only)")


ANALYSIS = Analysis(NAME, __doc__, plan, render, options=Options, describe=describe)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
