"""Figure 6: held-out HighlyKnown, MaybeKnown and WeaklyKnown accuracy under SFT, self-distillation, Only Known
(Appendix A).

    python -m analyses.fig6 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

from .frames import split_accuracy
from .outputs import caption, write_outputs
from .plots import split_panels
from .skeleton import Analysis, standard_plan

NAME = "fig6"
LABELS = ["SFT", "Self-distillation", "Only Known"]
SPLITS = ["held", "maybe_known", "weakly_known"]


def render(ctx, trained):
    df = split_accuracy(trained, SPLITS)
    write_outputs(split_panels(df, SPLITS, note=caption(ctx.profile)), df, NAME, ctx.figures_dir, ctx.seconds())
    missing = [s for s in ("maybe_known", "weakly_known") if s not in set(df["split"])]
    if missing:
        print(f"note: no {' / '.join(missing)} facts in this profile's SLiCK results, so those panels are empty")
    return df


ANALYSIS = Analysis(NAME, __doc__, standard_plan(LABELS), render)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
