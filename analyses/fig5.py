"""Figure 5: hidden-state drift RD of held-out entities over training (§5.2).

Three runs on the synthetic P17 setting (D_Known ∪ synthetic facts, D_Held = HighlyKnown P17 dev): SFT on semantic
(token-mix) keys, self-distillation on semantic keys, and SFT on UUID keys. RD (eq. 4) is measured every epoch at
the probe layer (default: the middle layer) by the trainer's probe callback.

    python -m analyses.fig5                      # quick profile: embedded SmolLM2-135M on CPU
    python -m analyses.fig5 --profile paper --model /path/to/Qwen2.5-1.5B --device cuda
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .common import (  # noqa: E402
    Run, Timer, caption, dry_run, ensure_run, parser, prepare_splits, prepare_synthetic, probe_frame, profile_from,
    run_config, synthetic_profile, write_outputs,
)

NAME = "fig5"
CONDITIONS = {  # label → (key type, condition overrides)
    "SFT, semantic keys": ("semantic", dict(condition="sft")),
    "Self-distillation, semantic keys": ("semantic", dict(condition="self_distill", variant="full")),
    "SFT, UUID keys": ("uuid", dict(condition="sft")),
}
COLORS = {"SFT, semantic keys": "#1f77b4", "Self-distillation, semantic keys": "#ff7f0e", "SFT, UUID keys": "#2ca02c"}


def planned_runs(profile, data: dict, synthetic: dict) -> list[Run]:
    return [Run(label, run_config(profile, data, unknown=synthetic[key], probe=True, **kw))
            for label, (key, kw) in CONDITIONS.items()]


def main(argv=None) -> pd.DataFrame | None:
    args = parser(NAME, __doc__).parse_args(argv)
    profile = synthetic_profile(profile_from(args))
    if args.dry_run:
        placeholder = {k: f"<{k}>.jsonl" for k in ("known", "held")}
        runs = planned_runs(profile, placeholder, {"semantic": "<semantic>.jsonl", "uuid": "<uuid>.jsonl"})
        for r in runs:
            r.config["_train_size"] = profile.known + profile.synthetic
        dry_run(NAME, profile, runs)
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        synthetic = {k: prepare_synthetic(profile, args.runs_dir, k) for k in ("semantic", "uuid")}
        frames = [probe_frame(r.label, ensure_run(r, args.runs_dir)) for r in planned_runs(profile, data, synthetic)]
    df = pd.concat(frames, ignore_index=True)
    rd = df[df["metric"] == "RD"].rename(columns={"run": "condition"})

    sns.set_theme(style="whitegrid", context="paper", font_scale=1.2)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=rd, x="epoch", y="value", hue="condition", palette=COLORS, marker="o", ax=ax)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Hidden-state drift RD (1 − cos)")
    ax.set_title("Hidden-state drift of held-out entities", fontsize=11)
    fig.text(0.5, -0.04, caption(profile, f"{profile.synthetic} synthetic facts"), ha="center", fontsize=8)
    write_outputs(fig, rd[["condition", "epoch", "value"]].rename(columns={"value": "RD"}), NAME, args.figures_dir,
                  timer.seconds)
    last = rd[rd["epoch"] == rd["epoch"].max()].set_index("condition")["value"]
    for label, value in last.items():
        print(f"RD at the last epoch, {label}: {value:.4f}")
    return rd


if __name__ == "__main__":
    main()
