"""Figure 6: held-out HighlyKnown, MaybeKnown and WeaklyKnown accuracy under SFT, self-distillation, Only Known
(Appendix A).

    python -m analyses.fig6 [--profile quick|paper|micro] ...
"""
from __future__ import annotations


from .common import caption, write_outputs
from .figure import run_figure
from .plots import split_panels

NAME = "fig6"
LABELS = ["SFT", "Self-distillation", "Only Known"]


def render(metrics, profile, args, seconds):
    fig, df = split_panels(metrics, ["held", "maybe_known", "weakly_known"], note=caption(profile))
    write_outputs(fig, df, NAME, args.figures_dir, seconds)
    missing = [s for s in ("maybe_known", "weakly_known") if s not in set(df["split"])]
    if missing:
        print(f"note: no {' / '.join(missing)} facts in this profile's SLiCK results, so those panels are empty")
    return df


def main(argv=None):
    return run_figure(NAME, __doc__, LABELS, render, argv)


if __name__ == "__main__":
    main()
