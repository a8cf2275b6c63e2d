"""Figure 3: SFT, self-distillation and Only Known — accuracy on D_Known, D_Unk, D_Held over epochs (§4.1).

Self-distillation follows the study: SFT on D_Known for i = 1 epoch, freeze that snapshot as the teacher, then train
on D_Known ∪ D_Unk with λ = 1, τ = 0.5 (full-vocabulary KL).

    python -m analyses.fig3 [--profile quick|paper|micro] [--lam 1] [--tau 0.5] ...
"""
from __future__ import annotations

from .epoch_tables import run_interval, forgetting, seed_mean
from .outputs import interval_cell
from .panels import run_panel_figure
from .runs import STUDY_CONDITIONS

NAME = "fig3"
LABELS = STUDY_CONDITIONS


def summary(t) -> str:
    unknown = run_interval(t, "last", "unknown")
    return (f"{t.label}: D_Held forgetting {seed_mean(t, forgetting):.1f} pp, D_Unk at the end "
            f"{interval_cell(unknown.value, unknown.lo, unknown.hi) or 'nan'}")


ANALYSIS = run_panel_figure(NAME, __doc__, LABELS, lambda profile: f"λ={profile.run.lam}, τ={profile.run.tau}", summary)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
