"""The training runs an analysis needs: planned as RunConfigs (without `out`), kept in folders named by their config
hash (so figures that need the same run share it, a second invocation reuses it and a half-finished run resumes).

Seeds: ``--seed`` seeds the data (SLiCK, the splits, the synthetic facts) and, by default, training; ``--seeds 0 1 2``
repeats every planned run once per *training* seed while the data stay those of ``--seed``, so every seed sees the
same held-out facts and intervals can resample seeds and facts together. The run at ``--seed`` is the very run a
single-seed invocation trains (same config, same folder); runs at other seeds differ only in the config's `seed`,
and every analysis shares them per seed.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from training.config import RunConfig, check_same_settings, run_key
from training.run_dir import RunDir
from training.trainer import Trainer

from .profiles import Profile


@dataclass
class Run:
    """One training run: a label for the plot and its RunConfig (without `out`). `train_size`: the facts it trains
    on, where that is not D_Known (∪ D_Unk) (a dry run's estimate)."""

    label: str
    config: RunConfig = field(default_factory=RunConfig)
    train_size: int | None = None

    def key(self) -> str:
        return run_key(self.config)


@dataclass
class Trained:
    """A finished run: its plan, its folder and its per-epoch records (metrics.jsonl)."""

    run: Run
    dir: RunDir
    records: list[dict]
    others: list[Trained] = field(default_factory=list)  # the same run at the other training seeds (--seeds)

    @property
    def label(self) -> str:
        return self.run.label

    @property
    def replicates(self) -> list[Trained]:
        """This run at every training seed, the first seed (this one) first; just itself without ``--seeds``."""
        return [self, *self.others]

    @property
    def seed(self) -> int | None:
        return self.run.config.seed


def _nonempty(path: str | None) -> str | None:
    return path if path and Path(path).is_file() and Path(path).stat().st_size > 0 else None


def run_config(profile: Profile, data: dict[str, str], **overrides) -> RunConfig:
    """The RunConfig of a run on the profile: every non-empty eval set of `data`, the profile's run settings, seed
    and probe layer, then `overrides` (RunConfig fields)."""
    planned = dict(model=str(profile.model), known=data.get("known"), unknown=data.get("unknown"),
                   held=data.get("held"), maybe_known=_nonempty(data.get("maybe_known")),
                   weakly_known=_nonempty(data.get("weakly_known")), **asdict(profile.run), seed=profile.seed,
                   layer=profile.probe.layer)
    return RunConfig(**{**planned, **overrides})


def standard_runs(profile: Profile, data: dict[str, str]) -> dict[str, Run]:
    """The EntityQuestions runs the figures share (D_Known ∪ D_Unk unless noted); a figure takes what it needs."""
    rc = lambda **kw: run_config(profile, data, **kw)  # noqa: E731
    return {
        "SFT": Run("SFT", rc(condition="sft", probe=True)),
        "Only Known": Run("Only Known", rc(condition="sft", train=data.get("known"), probe=True)),
        "Self-distillation": Run("Self-distillation", rc(condition="self_distill", variant="full", probe=True)),
        "Top-k distillation": Run("Top-k distillation", rc(condition="self_distill", variant="topk", probe=True)),
        "Random-k distillation": Run("Random-k distillation", rc(condition="self_distill", variant="randomk",
                                                                 probe=True)),
        **{f"Train {g}": Run(f"Train {g}", rc(condition="freeze", trainable=[g]))
           for g in ("attn", "ffn", "q", "k", "v", "o", "gate+up", "down")},
    }


STUDY_CONDITIONS = ["SFT", "Self-distillation", "Only Known"]  # fig3's, shared by fig6, the frontier, recall, claims
SYNTHETIC_CONDITIONS = {  # fig5's on the synthetic P17 setting: label → (key type, condition overrides)
    "SFT, semantic keys": ("semantic", dict(condition="sft")),
    "Self-distillation, semantic keys": ("semantic", dict(condition="self_distill", variant="full")),
    "SFT, UUID keys": ("uuid", dict(condition="sft")),
}
SEMANTIC_KEY_CONDITIONS = ("SFT, semantic keys", "Self-distillation, semantic keys")  # fig11's, and families'


def synthetic_runs(profile: Profile, data, labels=tuple(SYNTHETIC_CONDITIONS)) -> list[Run]:
    """The synthetic-setting runs named in `labels` on the profile's splits and synthetic facts (`data`: Data or
    DryRunData)."""
    splits = data.splits(profile)
    keys = dict.fromkeys(SYNTHETIC_CONDITIONS[label][0] for label in labels)
    synthetic = {key: data.synthetic(profile, key) for key in keys}
    size = profile.splits.known_size + profile.synthetic
    return [Run(label, run_config(profile, splits, unknown=synthetic[SYNTHETIC_CONDITIONS[label][0]], probe=True,
                                  **SYNTHETIC_CONDITIONS[label][1]), train_size=size)
            for label in labels]


def training_seeds(profile: Profile) -> list[int]:
    """The training seeds of an analysis: ``--seeds``, else ``--seed`` alone."""
    return list(dict.fromkeys(profile.seeds)) or [profile.seed]


def with_seed(run: Run, seed: int) -> Run:
    """The same run trained from another seed (the data unchanged)."""
    return replace(run, config=replace(run.config, seed=seed))


def seeded(runs: list[Run], seeds: list[int]) -> list[list[Run]]:
    """Each planned run once per training seed, in the order of `seeds`."""
    return [[with_seed(run, s) for s in seeds] for run in runs]


def ensure_replicates(runs: list[Run], runs_dir: Path) -> Trained:
    """Train (or reuse) one run at each of its seeds → the first seed's Trained, the others in `others`."""
    first, *others = [ensure_run(run, runs_dir) for run in runs]
    first.others = others
    return first


def run_folder(run: Run, runs_dir: Path) -> RunDir:
    """The run's folder: an existing one with the same config hash (whatever label made it), else a new one."""
    key = run.key()
    same = sorted(Path(runs_dir).glob(f"*-{key}"))
    slug = re.sub(r"[^a-z0-9]+", "-", run.label.lower()).strip("-")
    return RunDir(same[0] if same else Path(runs_dir) / f"{slug}-{key}")


def ensure_run(run: Run, runs_dir: Path) -> Trained:
    """Train (or resume, or reuse) a run."""
    folder = run_folder(run, runs_dir)
    records = folder.records()
    config = replace(run.config, out=str(folder.path))
    if records and records[-1]["epoch"] == run.config.epochs:  # reused: a key leaves out settings at their defaults
        if folder.record_file.exists():  # (a resumed run: the Trainer checks)
            check_same_settings(folder.record()["config"], config, folder.path)
    else:
        print(f"== run: {run.label} → {folder.path}", flush=True)
        start = time.perf_counter()
        records = Trainer(config).run()
        print(f"== trained {run.label} in {time.perf_counter() - start:.0f} s (with each epoch's evaluation of every "
              "fact set and probe)", flush=True)
    return Trained(run, folder, records)
