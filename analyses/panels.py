"""The figure of one panel per standard run (D_Known, D_Unk, D_Held accuracy over epochs), shared by fig2 and fig3."""
from __future__ import annotations

from collections.abc import Callable

from .comparisons import forgetting_lines
from .epoch_tables import split_accuracy
from .outputs import write_outputs
from .plots import run_panels
from .profiles import Profile
from .runs import Trained
from .analysis import Analysis, standard_plan

SPLITS = ("known", "unknown", "held")


def run_panel_figure(name: str, doc: str, labels: list[str], note: Callable[[Profile], str],
                     summary: Callable[[Trained], str]) -> Analysis:
    """A figure of one panel per standard run (D_Known, D_Unk, D_Held accuracy over epochs with 95% bands), a summary
    line per run and each later run's ΔD_Held against the first's (paired difference, sign-flip p)."""
    def render(ctx, trained):
        df = split_accuracy(trained, SPLITS)
        fig = run_panels(df, labels, SPLITS, note=ctx.caption(note(ctx.profile)))
        write_outputs(fig, df, name, ctx.figures_dir, ctx.seconds())
        for t in trained:
            print(summary(t))
        print("\n".join(forgetting_lines(trained)))
        return df

    return Analysis(name, doc, standard_plan(labels), render)
