"""Figure 2: SFT vs Only Known — D_Known, D_Unk and D_Held accuracy over epochs (§3.1).

    python -m analyses.fig2 [--profile quick|paper|micro] [--model PATH] [--epochs N] ...
"""
from __future__ import annotations

from .epoch_tables import forgetting, last_accuracies, seed_mean
from .panels import run_panel_figure

NAME = "fig2"
LABELS = ["SFT", "Only Known"]


ANALYSIS = run_panel_figure(
    NAME, __doc__, LABELS, lambda profile: "",
    lambda t: f"{t.label}: D_Held forgetting (peak → last) {seed_mean(t, forgetting):.1f} pp; last epoch "
              f"{last_accuracies(t)}")
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
