"""Figure 2: SFT vs Only Known — D_Known, D_Unk and D_Held accuracy over epochs (§3.1).

    python -m analyses.fig2 [--profile quick|paper|micro] [--model PATH] [--epochs N] ...
"""
from __future__ import annotations

from collections.abc import Callable

from .comparisons import forgetting_lines
from .frames import forgetting, last_accuracies, seed_mean, split_accuracy
from .outputs import write_outputs
from .plots import run_panels
from .profiles import Profile
from .runs import Trained
from .skeleton import Analysis, standard_plan

NAME = "fig2"
LABELS = ["SFT", "Only Known"]
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


ANALYSIS = run_panel_figure(
    NAME, __doc__, LABELS, lambda profile: "",
    lambda t: f"{t.label}: D_Held forgetting (peak → last) {seed_mean(t, forgetting):.1f} pp; last epoch "
              f"{last_accuracies(t)}")
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
