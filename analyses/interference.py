"""Interference map: are the held-out facts that get forgotten the ones whose entity sits next to a new entity?

For every held-out fact, its nearest new entity by cosine of θ0's layer-l entity states (the runs' cached probe
states): D_Unk subjects for the EntityQuestions runs (SFT, self-distillation), synthetic keys for the fig5 runs
(semantic vs UUID keys). A fact is *forgotten* when it was right at the run's peak held-out epoch and wrong at the
last (facts wrong at the peak are left out). The ROC AUC says how well the similarity to the nearest new entity ranks
forgotten above kept facts; a label-permutation null gives its chance level and a one-sided p.

    python -m analyses.interference [--profile quick|paper|micro] [--permutations N] ...

Writes figures/interference.{png,pdf,csv} (one row per held-out fact and run), interference_auc.csv and
interference.md (the AUCs and the strongest displacing pairs).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from probekit.entities import read_facts
from probekit.interference import forgotten_facts, nearest_new, peak_epoch, permutation_auc
from probekit.io import write_text
from probekit.series import read_states

from . import fig5
from .common import (
    Run, Timer, caption, correct_matrix, dry_run, ensure_run, parser, placeholder_data, prepare_splits,
    prepare_synthetic, markdown, profile_from, run_dir, save_csv, standard_runs, synthetic_profile, write_outputs,
)

NAME = "interference"
EQ_LABELS = ["SFT", "Self-distillation"]  # new entities: D_Unk


def planned_runs(profile, data, synthetic_data, synthetic) -> list[tuple[str, Run]]:
    """(new-entity kind, run) for the EntityQuestions runs and the fig5 synthetic-key runs."""
    runs = standard_runs(profile, data)
    return ([("D_Unk", runs[label]) for label in EQ_LABELS]
            + [(f"{key} keys", run) for run, key in zip(fig5.planned_runs(synthetic_profile(profile),
                                                                          synthetic_data, synthetic),
                                                        ("semantic", "semantic", "uuid"))])


def fact_table(kind: str, run: Run, folder, metrics: list[dict]) -> pd.DataFrame:
    """One row per held-out fact: its nearest new entity at θ0, similarity, and whether it was forgotten."""
    held = read_facts(run.config["held"])
    new = read_facts(run.config["unknown"])
    base = read_states(folder / "probes", "_base")
    correct = correct_matrix(metrics)  # [E, N]
    n = correct.shape[1]
    sims, idx = nearest_new(base["held_states"][:n], base["unk_states"])
    peak = peak_epoch(correct)
    eligible, forgotten = forgotten_facts(correct, peak)
    return pd.DataFrame({
        "run": run.label, "new_entities": kind, "fact": range(n), "entity": [f.entity for f in held[:n]],
        "answer": [f.answer for f in held[:n]], "nearest_new": [new[j].entity for j in idx[:, 0].tolist()],
        "nearest_new_answer": [new[j].answer for j in idx[:, 0].tolist()], "similarity": sims[:, 0].numpy(),
        "peak_epoch": peak, "eligible": eligible, "forgotten": forgotten,
    })


def auc_table(facts: pd.DataFrame, permutations: int, seed: int) -> pd.DataFrame:
    rows = []
    for (label, kind), sub in facts.groupby(["run", "new_entities"], sort=False):
        sub = sub[sub["eligible"]]
        r = permutation_auc(sub["similarity"].to_numpy(), sub["forgotten"].to_numpy(), permutations, seed)
        rows.append({"run": label, "new entities": kind, "forgotten": r.positives, "kept": r.negatives,
                     "AUC": r.auc, "null mean": r.null_mean, "null 95%": r.null_q95, "p": r.p_value,
                     "sim forgotten": sub.loc[sub["forgotten"], "similarity"].mean(),
                     "sim kept": sub.loc[~sub["forgotten"], "similarity"].mean()})
    return pd.DataFrame(rows)


def main(argv=None) -> pd.DataFrame | None:
    ap = parser(NAME, __doc__)
    ap.add_argument("--permutations", type=int, default=2000, help="label permutations for the AUC null")
    ap.add_argument("--top", type=int, default=10, help="displacing pairs to list")
    args = ap.parse_args(argv)
    profile = profile_from(args)
    if args.dry_run:
        placeholder = {"semantic": "<semantic>.jsonl", "uuid": "<uuid>.jsonl"}
        dry_run(NAME, profile, [r for _, r in planned_runs(profile, placeholder_data(), placeholder_data(),
                                                           placeholder)])
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        sp = synthetic_profile(profile)
        synthetic = {k: prepare_synthetic(sp, args.runs_dir, k) for k in ("semantic", "uuid")}
        frames = []
        for kind, run in planned_runs(profile, data, prepare_splits(sp, args.runs_dir), synthetic):
            metrics = ensure_run(run, args.runs_dir)
            frames.append(fact_table(kind, run, run_dir(run, args.runs_dir), metrics))
    facts = pd.concat(frames, ignore_index=True)
    aucs = auc_table(facts, args.permutations, profile.seed)
    note = caption(profile, "nearest new entity by θ0 layer-l cosine")
    write_outputs(_plot(facts, aucs, note), facts, NAME, args.figures_dir, timer.seconds)
    save_csv(aucs, f"{NAME}_auc", args.figures_dir)
    top = (facts[facts["forgotten"]].sort_values("similarity", ascending=False).head(args.top)
           [["run", "entity", "answer", "nearest_new", "nearest_new_answer", "similarity"]])
    text = (f"Interference — {note}\n\nDoes similarity to the nearest new entity predict forgetting?\n\n"
            f"{markdown(aucs)}\n\nStrongest displacing pairs (forgotten held-out "
            f"fact, its nearest new entity):\n\n{markdown(top)}\n")
    print(text)
    write_text(args.figures_dir / f"{NAME}.md", text)
    return aucs


def _plot(facts: pd.DataFrame, aucs: pd.DataFrame, note: str):
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    shown = facts[facts["eligible"]].assign(status=lambda d: np.where(d["forgotten"], "forgotten", "kept"))
    sns.stripplot(data=shown, x="run", y="similarity", hue="status", dodge=True, alpha=0.7, ax=axes[0],
                  palette={"forgotten": "#d62728", "kept": "#7f7f7f"})
    axes[0].set_ylabel("cosine to nearest new entity (θ0)")
    axes[0].set_xlabel("")
    axes[0].tick_params(axis="x", labelrotation=20)
    x = np.arange(len(aucs))
    axes[1].bar(x, aucs["null 95%"], color="#dddddd", label="permutation 95%")
    axes[1].scatter(x, aucs["AUC"], color="#d62728", zorder=3, label="AUC")
    axes[1].axhline(0.5, color="grey", lw=0.8, ls=":")
    axes[1].set_xticks(x, aucs["run"], rotation=20, ha="right")
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("ROC AUC (forgotten vs kept)")
    axes[1].legend(fontsize=8)
    fig.text(0.5, -0.05, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
