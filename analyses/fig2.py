"""Figure 2: SFT vs Only Known — D_Known, D_Unk and D_Held accuracy over epochs (§3.1).

    python -m analyses.fig2 [--profile quick|paper|micro] [--model PATH] [--epochs N] ...
"""
from __future__ import annotations


from .common import caption, forgetting, write_outputs
from .figure import run_figure
from .plots import run_panels

NAME = "fig2"
LABELS = ["SFT", "Only Known"]


def render(metrics, profile, args, seconds):
    fig, df = run_panels(metrics, note=caption(profile))
    write_outputs(fig, df, NAME, args.figures_dir, seconds)
    for label, m in metrics.items():
        print(f"{label}: D_Held forgetting (peak → last) {forgetting(m):.1f} pp; last epoch {m[-1]['accuracy']}")
    return df


def main(argv=None):
    return run_figure(NAME, __doc__, LABELS, render, argv)


if __name__ == "__main__":
    main()
