"""Figure 3: SFT, self-distillation and Only Known — accuracy on D_Known, D_Unk, D_Held over epochs (§4.1).

Self-distillation follows the study: SFT on D_Known for i = 1 epoch, freeze that snapshot as the teacher, then train
on D_Known ∪ D_Unk with λ = 1, τ = 0.5 (full-vocabulary KL).

    python -m analyses.fig3 [--profile quick|paper|micro] [--lam 1] [--tau 0.5] ...
"""
from __future__ import annotations


from .common import caption, forgetting, write_outputs
from .figure import run_figure
from .plots import run_panels

NAME = "fig3"
LABELS = ["SFT", "Self-distillation", "Only Known"]


def render(metrics, profile, args, seconds):
    fig, df = run_panels(metrics, note=caption(profile, f"λ={profile.lam}, τ={profile.tau}"))
    write_outputs(fig, df, NAME, args.figures_dir, seconds)
    for label, m in metrics.items():
        print(f"{label}: D_Held forgetting {forgetting(m):.1f} pp, D_Unk at the end "
              f"{m[-1]['accuracy'].get('unknown', float('nan')):.3f}")
    return df


def main(argv=None):
    return run_figure(NAME, __doc__, LABELS, render, argv)


if __name__ == "__main__":
    main()
