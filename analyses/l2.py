"""§5.2: is self-distillation only weight regularisation? SFT vs self-distillation vs ℓ2 toward the snapshot θ_i.

As in the study, the runs are in the synthetic semantic-key setting (D_Known ∪ token-mix-key P17 facts, 10,000 in
the paper profile; D_Held = HighlyKnown P17 dev). θ_i, the model after i = 2 epochs on D_Known (paper and quick
profiles; micro, 2 epochs long: i = 1), is the distillation teacher and the ℓ2 anchor: L_task + λ‖θ − θ_i‖² (eq. 3).
λ is matched to self-distillation in gradient magnitude (``training.lambda_match``): one self-distillation step from
θ_i on its first mixed-phase batch gives θ′, and on that batch λ_ℓ2 = λ_sd·‖∇L_distill(θ′)‖ / ‖∇‖θ′ − θ_i‖²‖.
So the self-distillation run trains first, λ_ℓ2 is computed once and recorded in its folder (l2-lambda.json), then
the ℓ2 run trains. SFT is fig5's semantic-key SFT run (shared). The study: ℓ2 forgets ≈ 10 pp of D_Held, like SFT.

    python -m analyses.l2 [--profile quick|paper|micro] [--snapshot-epoch 2] [--lam 1] ...
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from training.lambda_match import LambdaMatch, l2_lambda

from .comparisons import comparison_lines, forgetting_lines
from .epoch_tables import run_interval, split_accuracy
from .outputs import interval_columns, save_table, write_outputs
from .plots import split_panels
from .profiles import PROFILES, synthetic_profile
from .runs import Run, Trained, ensure_run, run_config, training_seeds, with_seed
from .analysis import Analysis

NAME = "l2"
SPLITS = ["unknown", "held"]
SNAPSHOT = {"paper": 2, "standard": 2, "quick": 2}  # the study's θ_i for this comparison; micro keeps its preset's 1
STUDY = "the study (Qwen2.5-1.5B, 10,000 semantic keys): ℓ2 ΔD_Held ≈ 10 pp, comparable to SFT"


def _match(sd: Run, runs_dir) -> LambdaMatch:
    """λ_ℓ2 from the self-distillation run (trained first, or reused: its snapshot is the anchor)."""
    trained = ensure_run(sd, runs_dir)
    return l2_lambda(replace(sd.config, out=str(trained.dir.path)))


def plan(ctx, data) -> list[Run]:
    """SFT (its config as fig5's: the preset's snapshot_epoch, which SFT never reads), self-distillation from θ_i and
    ℓ2 toward θ_i with λ matched on the first training seed's self-distillation run and kept for every seed (a dry
    run leaves λ out: it needs that run)."""
    profile = ctx.profile
    splits, semantic = data.splits(profile), data.synthetic(profile, "semantic")
    size = profile.splits.known_size + profile.synthetic
    rc = lambda **kw: run_config(profile, splits, unknown=semantic, probe=True, **kw)  # noqa: E731
    sft = Run("SFT", rc(condition="sft", snapshot_epoch=PROFILES[profile.name].run.snapshot_epoch), train_size=size)
    sd = Run("Self-distillation", rc(condition="self_distill", variant="full"), train_size=size)
    lam = None if ctx.dry_run else _match(with_seed(sd, training_seeds(profile)[0]), ctx.runs_dir).lam
    return [sft, sd, Run("L2 to snapshot", rc(condition="l2", lam=lam), train_size=size)]


def describe(ctx) -> str:
    return (f"  L2 to snapshot: λ matched after the self-distillation run (gradient norms one step from "
            f"θ_{ctx.profile.run.snapshot_epoch}); {STUDY}")


def render(ctx, trained: list[Trained]) -> pd.DataFrame:
    profile, (sft, sd, l2) = ctx.profile, trained
    match = l2_lambda(replace(sd.run.config, out=str(sd.dir.path)))  # recorded by the plan
    note = (f"{profile.synthetic} semantic-key synthetic facts, θ_i after epoch {profile.run.snapshot_epoch}, λ_sd = "
            f"{profile.run.lam:g}, τ = {profile.run.tau:g}, λ_ℓ2 = {match.lam:.3g} (ℓ2 gradient norm matched to the "
            f"distillation term's one step from θ_i, training seed {sd.seed})")
    df = split_accuracy(trained, SPLITS)
    write_outputs(split_panels(df, SPLITS, note=ctx.caption(note)), df, NAME, ctx.figures_dir, ctx.seconds())
    lams = {sft.label: "—", sd.label: f"{match.lam_sd:.3g}", l2.label: f"{match.lam:.3g}"}
    table = pd.DataFrame([{"condition": t.label, "λ": lams[t.label],
                           **interval_columns("D_Unk (last)", run_interval(t, "last", "unknown")),
                           **interval_columns("D_Held (last)", run_interval(t, "last", "held")),
                           **interval_columns("ΔD_Held (pp)", run_interval(t, "forgetting"))} for t in trained])
    notes = [match.summary(), *forgetting_lines(trained), *comparison_lines([(l2, sd)]),
             *comparison_lines([(l2, sd)], "last", "unknown"), STUDY]
    save_table(table, NAME, ctx.figures_dir, f"SFT vs self-distillation vs ℓ2 toward θ_{profile.run.snapshot_epoch} — "
               f"{ctx.caption()}", notes)
    return df


ANALYSIS = Analysis(NAME, __doc__, plan, render, setting=synthetic_profile, describe=describe,
                    defaults={preset: {"snapshot_epoch": i} for preset, i in SNAPSHOT.items()})
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
