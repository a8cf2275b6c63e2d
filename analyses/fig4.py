"""Figure 4: forgetting ΔD_Held vs the number of synthetic facts, for semantic (token-mix) and UUID keys (§5.1).

Each point is an SFT run on D_Known ∪ n synthetic P17 facts; ΔD_Held is the drop from peak held-out accuracy during
training to the last epoch, in percentage points. Scales: the study's 10^3..10^6 in the paper profile.

    python -m analyses.fig4 [--profile quick|paper|micro] [--scales 32,64,128] ...
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .common import (
    Run, Timer, caption, dry_run, ensure_run, forgetting, parser, prepare_splits, prepare_synthetic, profile_from,
    run_config, synthetic_profile, write_outputs,
)

NAME = "fig4"
SCALES = {"paper": (1_000, 10_000, 100_000, 1_000_000), "quick": (32, 64, 128), "micro": (6, 12)}


def planned_runs(profile, data, synthetic: dict) -> list[Run]:
    return [Run(f"SFT {key} n={n}", run_config(profile, data, unknown=path, condition="sft"))
            for (key, n), path in synthetic.items()]


def main(argv=None):
    ap = parser(NAME, __doc__)
    ap.add_argument("--scales", help="comma-separated numbers of synthetic facts")
    args = ap.parse_args(argv)
    profile = synthetic_profile(profile_from(args))
    scales = tuple(int(x) for x in args.scales.split(",")) if args.scales else SCALES[profile.name]
    keys = [(k, n) for k in ("semantic", "uuid") for n in scales]
    if args.dry_run:
        runs = planned_runs(profile, {"known": "<known>", "held": "<held>"}, {kn: "<synthetic>" for kn in keys})
        for r, (_, n) in zip(runs, keys):
            r.config["_train_size"] = profile.known + n
        dry_run(NAME, profile, runs)
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        synthetic = {(k, n): prepare_synthetic(profile, args.runs_dir, k, n=n) for k, n in keys}
        rows = []
        for run, (key, n) in zip(planned_runs(profile, data, synthetic), keys):
            m = ensure_run(run, args.runs_dir)
            rows.append({"keys": key, "n_synthetic": n, "forgetting_pp": forgetting(m),
                         "D_Unk_last": m[-1]["accuracy"].get("unknown"),
                         "D_Known_last": m[-1]["accuracy"].get("known")})
    df = pd.DataFrame(rows)
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.2)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=df, x="n_synthetic", y="forgetting_pp", hue="keys", marker="o", ax=ax,
                 palette={"semantic": "#d62728", "uuid": "#1f77b4"})
    ax.set_xscale("log")
    ax.set_xlabel("Number of synthetic facts")
    ax.set_ylabel("Forgetting ΔD_Held (pp)")
    fig.text(0.5, -0.04, caption(profile), ha="center", fontsize=8)
    write_outputs(fig, df, NAME, args.figures_dir, timer.seconds)
    print(df.to_string(index=False, float_format="{:.3f}".format))
    return df


if __name__ == "__main__":
    main()
