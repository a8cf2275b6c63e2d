"""Figure 6: held-out HighlyKnown, MaybeKnown and WeaklyKnown accuracy under SFT, self-distillation, Only Known
(Appendix A), with 95% bands; each condition's last-epoch accuracy against SFT's as a paired difference (McNemar).

    python -m analyses.fig6 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

from .comparisons import comparison_lines
from .epoch_tables import split_accuracy
from .outputs import write_outputs
from .plots import split_panels
from .runs import STUDY_CONDITIONS
from .analysis import Analysis, standard_plan

NAME = "fig6"
LABELS = STUDY_CONDITIONS
SPLITS = ["held", "maybe_known", "weakly_known"]


def render(ctx, trained):
    df = split_accuracy(trained, SPLITS)
    write_outputs(split_panels(df, SPLITS, note=ctx.caption()), df, NAME, ctx.figures_dir, ctx.seconds())
    missing = [s for s in ("maybe_known", "weakly_known") if s not in set(df["split"])]
    if missing:
        print(f"note: no {' / '.join(missing)} facts in this profile's SLiCK results, so those panels are empty")
    first, *others = trained
    for split in [s for s in SPLITS if s not in missing]:
        print("\n".join(comparison_lines([(t, first) for t in others], "last", split)))
    return df


ANALYSIS = Analysis(NAME, __doc__, standard_plan(LABELS), render)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
