"""Interference map: are the held-out facts that get forgotten the ones whose entity sits next to a new entity?

For every held-out fact, its nearest new entity by cosine of θ0's layer-l entity states (the runs' cached probe
states): D_Unk subjects for the EntityQuestions runs (SFT, self-distillation), synthetic keys for the fig5 runs
(semantic vs UUID keys). A fact is *forgotten* when it was right at the run's peak held-out epoch and wrong at the
last (facts wrong at the peak are left out). The ROC AUC says how well the similarity to the nearest new entity ranks
forgotten above kept facts, with a 95% interval (bootstrap over the forgotten and the kept facts, each on its own);
a label-permutation null gives its chance level and a one-sided p. With ``--seeds``, every seed's runs on their own.

    python -m analyses.interference [--profile quick|paper|micro] [--permutations N] ...

Writes figures/interference.{png,pdf,csv} (one row per held-out fact and run), interference_auc.csv and
interference.md (the AUCs and the strongest displacing pairs).
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from probekit import stats
from probekit.config import option
from probekit.entities import read_facts
from probekit.interference import forgotten_facts, nearest_new, peak_epoch, permutation_auc
from probekit.io import write_text

from .epoch_tables import correct_matrix
from .outputs import markdown, save_csv, write_outputs
from .profiles import synthetic_profile
from .runs import SYNTHETIC_CONDITIONS, Run, Trained, standard_runs, synthetic_runs
from .analysis import Analysis

NAME = "interference"
EQ_LABELS = ["SFT", "Self-distillation"]  # new entities: D_Unk
NEW_ENTITIES = {**{label: "D_Unk" for label in EQ_LABELS},
                **{label: f"{key} keys" for label, (key, _) in SYNTHETIC_CONDITIONS.items()}}


@dataclass
class Options:
    permutations: int = option(2000, "label permutations for the AUC's null distribution")
    top: int = option(10, "strongest displacing pairs to list")


def plan(ctx, data) -> list[Run]:
    """The EntityQuestions runs (new entities: D_Unk) and fig5's synthetic-key runs (new entities: the keys)."""
    runs = standard_runs(ctx.profile, data.splits(ctx.profile))
    return [runs[label] for label in EQ_LABELS] + synthetic_runs(synthetic_profile(ctx.profile), data)


def fact_table(t: Trained) -> pd.DataFrame:
    """One row per held-out fact: its nearest new entity at θ0, similarity, and whether it was forgotten."""
    held = read_facts(t.run.config.held)
    new = read_facts(t.run.config.unknown)
    base = t.dir.probe_states(None)
    correct = correct_matrix(t.records)  # [E, N]
    n = correct.shape[1]
    sims, idx = nearest_new(base["held_states"][:n], base["unk_states"])
    peak = peak_epoch(correct)
    eligible, forgotten = forgotten_facts(correct, peak)
    return pd.DataFrame({
        "run": t.label, "new_entities": NEW_ENTITIES[t.label], "fact": range(n),
        "entity": [f.entity for f in held[:n]], "answer": [f.answer for f in held[:n]],
        "nearest_new": [new[j].entity for j in idx[:, 0].tolist()],
        "nearest_new_answer": [new[j].answer for j in idx[:, 0].tolist()], "similarity": sims[:, 0].numpy(),
        "peak_epoch": peak, "eligible": eligible, "forgotten": forgotten,
    })


def auc_table(facts: pd.DataFrame, permutations: int, seed: int) -> pd.DataFrame:
    """One row per run (and seed, where `facts` has several): the AUC with its 95% interval (bootstrap over the
    forgotten and the kept facts, each on its own), its permutation null and p."""
    rows = []
    keys = ["run", "new_entities", "seed"] if "seed" in facts else ["run", "new_entities"]
    for key, sub in facts.groupby(keys, sort=False):
        sub = sub[sub["eligible"]]
        r = permutation_auc(sub["similarity"].to_numpy(), sub["forgotten"].to_numpy(), permutations, seed)
        ci = stats.auc_ci(sub.loc[sub["forgotten"], "similarity"], sub.loc[~sub["forgotten"], "similarity"])
        rows.append({"run": key[0], "new entities": key[1], **({"seed": key[2]} if len(key) > 2 else {}),
                     "forgotten": r.positives, "kept": r.negatives, "AUC": r.auc, "AUC lo": ci.lo, "AUC hi": ci.hi,
                     "null mean": r.null_mean, "null 95%": r.null_q95, "p": r.p_value,
                     "sim forgotten": sub.loc[sub["forgotten"], "similarity"].mean(),
                     "sim kept": sub.loc[~sub["forgotten"], "similarity"].mean()})
    return pd.DataFrame(rows)


def seed_tables(t: Trained) -> list[pd.DataFrame]:
    """fact_table of the run at each of its training seeds (with a seed column where there are several)."""
    if len(t.replicates) == 1:
        return [fact_table(t)]
    return [fact_table(r).assign(seed=r.seed) for r in t.replicates]


def render(ctx, trained: list[Trained]) -> pd.DataFrame:
    facts = pd.concat([table for t in trained for table in seed_tables(t)], ignore_index=True)
    aucs = auc_table(facts, ctx.options.permutations, ctx.profile.seed)
    note = ctx.caption("nearest new entity by θ0 layer-l cosine")
    write_outputs(_plot(facts, aucs, note), facts, NAME, ctx.figures_dir, ctx.seconds())
    save_csv(aucs, f"{NAME}_auc", ctx.figures_dir)
    top = (facts[facts["forgotten"]].sort_values("similarity", ascending=False).head(ctx.options.top)
           [["run", "entity", "answer", "nearest_new", "nearest_new_answer", "similarity"]])
    text = (f"Interference — {note}\n\nDoes similarity to the nearest new entity predict forgetting?\n\n"
            f"{markdown(aucs)}\n\nStrongest displacing pairs (forgotten held-out "
            f"fact, its nearest new entity):\n\n{markdown(top)}\n")
    print(text)
    write_text(ctx.figures_dir / f"{NAME}.md", text)
    return aucs


def _plot(facts: pd.DataFrame, aucs: pd.DataFrame, note: str):
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    shown = facts[facts["eligible"]].assign(status=lambda d: np.where(d["forgotten"], "forgotten", "kept"))
    sns.stripplot(data=shown, x="run", y="similarity", hue="status", dodge=True, alpha=0.7, ax=axes[0],
                  palette={"forgotten": "#d62728", "kept": "#7f7f7f"})
    axes[0].set_ylabel("cosine to nearest new entity (θ0)")
    axes[0].set_xlabel("")
    axes[0].tick_params(axis="x", labelrotation=20)
    x = np.arange(len(aucs))
    axes[1].bar(x, aucs["null 95%"], color="#dddddd", label="permutation 95%")
    axes[1].errorbar(x, aucs["AUC"], yerr=[aucs["AUC"] - aucs["AUC lo"], aucs["AUC hi"] - aucs["AUC"]], fmt="o",
                     color="#d62728", zorder=3, capsize=3, label="AUC (95% interval)")
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    names = aucs["run"] + (" (seed " + aucs["seed"].astype(str) + ")" if "seed" in aucs else "")
    axes[1].set_xticks(x, names, rotation=20, ha="right")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("ROC AUC (forgotten vs kept)")
    axes[1].legend(fontsize=8)
    fig.text(0.5, -0.05, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig


ANALYSIS = Analysis(NAME, __doc__, plan, render, options=Options)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
