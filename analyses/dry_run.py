"""What ``--dry-run`` prints: every planned run with its seed and sizes, how far it has trained under the runs
folder, a wall-time estimate on the 2-core CPU (``analyses.wall_time``) from scratch and for what is left, and the
smallest ΔD_Held difference the planned D_Held detects."""
from __future__ import annotations

from pathlib import Path

from training.config import EVAL_SETS

from .comparisons import held_size, power_line
from .wall_time import TOKENS_PER_FACT, base_eval_seconds, dev_questions, eval_facts, run_seconds, slick_seconds
from .data import slick_asked_share
from .profiles import Profile, model_label
from .runs import Run, run_folder


def trained_epochs(run: Run, runs_dir: Path) -> int:
    """How many of the run's epochs are trained and evaluated under `runs_dir` (0: not started)."""
    records = run_folder(run, runs_dir).records()
    return max((r["epoch"] for r in records), default=0)


def print_plan(name: str, profile: Profile, runs: list[Run], described: str | None = None,
               runs_dir: Path | None = None) -> None:
    """The runs, their sizes, seeds, progress under `runs_dir` and estimated minutes; the whole analysis's
    estimate, from scratch and for what is left; the power line."""
    models = list(dict.fromkeys(r.config.model for r in runs)) or [str(profile.model)]
    print(f"analyses.{name} — profile {profile.name}, model {', '.join(map(model_label, models))}")
    several = len({r.config.seed for r in runs}) > 1
    n_held = held_size(profile)[0]
    dev = dev_questions(profile) if profile.use_slick else 0  # read once: every run evaluates the same held-out sets
    base_facts, seconds, left, started = {}, 0.0, 0.0, set()  # θ0's facts and started runs per (model, eval sets)
    for run in runs:
        c = run.config
        label = run.label if len(models) == 1 else f"{run.label} ({model_label(c.model)})"
        label += f" [seed {c.seed}]" if several else ""
        n_train = run.train_size or (profile.splits.known_size if c.train == c.known else
                                     profile.splits.known_size + profile.splits.unknown_size)
        unknown = run.train_size - profile.splits.known_size if run.train_size else profile.splits.unknown_size
        n_eval = eval_facts(profile, max(unknown, 0), n_held, dev)
        sets = (c.model, *(getattr(c, s) for s in EVAL_SETS))  # θ0's outcomes are cached per model and eval sets
        base_facts[sets] = max(base_facts.get(sets, 0), n_eval)
        run_s = run_seconds(c, n_train, n_eval, n_held, profile)
        done = trained_epochs(run, runs_dir) if runs_dir is not None else 0
        seconds += run_s
        left += run_s * (1 - min(done, c.epochs) / c.epochs)
        started |= {sets} if done else set()
        progress = "  [done]" if done >= c.epochs else f"  [{done} of {c.epochs} epochs trained]" if done else ""
        print(f"  {label:<34} condition={c.condition:<12} epochs={c.epochs:<3} "
              f"train≈{n_train} facts, ≈{n_train * TOKENS_PER_FACT * c.epochs / 1e6:.2f} M tokens, "
              f"≈{run_s / 60:.0f} min{progress}")
    slick = {m: slick_seconds(profile.replace(model=m)) for m in models}
    base = {b: base_eval_seconds(b[0], n, profile.run.precision) for b, n in base_facts.items()}
    total = sum(slick.values()) + sum(base.values()) + seconds
    print(f"  estimate from scratch on the 2-core CPU (rates measured there, analyses.wall_time): SLiCK ≈ "
          f"{sum(slick.values()) / 60:.0f} min, θ0's evaluation ≈ {sum(base.values()) / 60:.0f} min, "
          f"{len(runs)} runs ≈ {seconds / 60:.0f} min: ≈ {total / 3600:.1f} h")
    if runs_dir is not None:
        slick_left = sum(s * (1 - slick_asked_share(runs_dir, profile.replace(model=m))) for m, s in slick.items())
        base_left = sum(s for b, s in base.items() if b not in started)
        if slick_left + base_left + left < total:
            print(f"  left under {runs_dir} (SLiCK less the questions already asked, θ0 where a run on its sets "
                  f"has started): SLiCK ≈ {slick_left / 60:.0f} min, θ0 ≈ {base_left / 60:.0f} min, "
                  f"runs ≈ {left / 60:.0f} min: ≈ {(slick_left + base_left + left) / 3600:.1f} h")
    print("  on a GPU: tokens × 6 × params FLOPs; a 1.5B model at 40% MFU on an H100 trains ≈ 40k tokens/s")
    if described is not None:
        print(described)
    print(power_line(profile, finished=finished_at_one_seed(runs, runs_dir)))


def finished_at_one_seed(runs: list[Run], runs_dir: Path | None) -> list[list[dict]]:
    """The records of the planned runs already finished under `runs_dir` at the first seed that has two or more."""
    if runs_dir is None:
        return []
    by_seed: dict = {}
    for run in runs:
        records = run_folder(run, runs_dir).records()
        if records and records[-1]["epoch"] == run.config.epochs:
            by_seed.setdefault(run.config.seed, []).append(records)
    return next((group for group in by_seed.values() if len(group) > 1), [])
