"""The scale of an analysis: a *profile* of every setting, each one a command-line flag with its help.

``quick`` runs on the embedded SmolLM2-135M on CPU; ``standard`` pools the four relations and runs SLiCK over the
whole dev split (independent exemplars) for several hundred held-out facts, with 3 training seeds; ``paper`` uses the
study's settings for a GPU (Qwen2.5-1.5B given with ``--model PATH``); ``micro`` is a plumbing test for tiny random
models (no SLiCK: facts are assigned to splits without asking the model what it knows). A preset's values are the
defaults of the flags.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from probekit.config import declared, nested, option, replace_flat, section, sync_sections
from probekit.drift_probe import ProbeConfig
from probekit.errors import ProbekitError
from probekit.models import EMBEDDED, EMBEDDED_NAME
from training import entityquestions
from training.commands import SlickCommand, relation_ids
from training.config import RunConfig
from training.slick import SlickConfig
from training.splits import SplitConfig

PRESETS = ("micro", "paper", "quick", "standard")

# the run settings an analysis gives every run, and the probe's layer: RunConfig's and ProbeConfig's own fields
RunSettings = section(RunConfig, "epochs", "lr", "batch_size", "snapshot_epoch", "lam", "tau", "eval_limit", "keep",
                      "precision", "device", name="RunSettings")
ProbeSettings = section(ProbeConfig, "layer", name="ProbeSettings")


@dataclass(frozen=True)
class Profile:
    """The settings of an analysis. Question counts are per relation; sizes cap the splits. The SLiCK, split, run
    and probe settings are sections: SlickConfig's (flags --slick-runs, ...), SplitConfig's, RunConfig's and
    ProbeConfig's own fields; the profile's `seed` seeds SLiCK and the splits (and the synthetic facts and
    training). ``profile.replace(known_size=..., epochs=...)`` replaces settings by their flag names."""

    profile: str = option("quick", "scale preset; its values are the defaults of every other flag: quick (embedded "
                          "SmolLM2-135M on CPU), standard (four relations pooled, hundreds of held-out facts, 3 seeds, "
                          "CPU), paper (the study's settings, for a GPU), micro (tiny random models)",
                          choices=PRESETS)
    model: str = declared(RunConfig, "model")
    relations: list[str] = declared(SlickCommand, "relations")
    use_slick: bool = option(True, "classify questions with SLiCK (false: alternate HighlyKnown / Unknown unasked)")
    slick: SlickConfig = nested(SlickConfig, "SLiCK", prefix="slick_", inherit=("seed",))
    train_questions: int | None = option(None, "train questions per relation given to SLiCK (None: all)")
    dev_questions: int | None = option(None, "dev questions per relation given to SLiCK (None: all)")
    splits: SplitConfig = nested(SplitConfig, inherit=("seed",), exclude=("mix",))
    synthetic: int = option(10_000, "synthetic P17 facts in the §5 setting")
    run: RunSettings = nested(RunSettings)
    probe: ProbeSettings = nested(ProbeSettings)
    seed: int = option(0, "seed of SLiCK, the splits, the synthetic facts and training")
    seeds: list[int] = option(help="training seeds: every run once per seed, the data staying those of --seed "
                              "(none given: --seed alone)", default_factory=list)

    def __post_init__(self):
        sync_sections(self)
        if any("," in r for r in self.relations):  # "P17,P36" as the shared help allows: the ids, split
            object.__setattr__(self, "relations", relation_ids(self.relations))

    def replace(self, **flat) -> Profile:
        """This profile with settings named by their flags' dests replaced (``epochs``, ``known_size``,
        ``slick_runs``, ``layer``, ...)."""
        return replace_flat(self, **flat)

    @property
    def name(self) -> str:
        return self.profile

    def validate(self) -> Profile:
        """Refuse relations EntityQuestions does not have (before anything is prepared)."""
        known = entityquestions.relations()
        unknown = [r for r in self.relations if r not in known]
        if unknown:
            raise ProbekitError(f"unknown relation(s) {', '.join(unknown)}; EntityQuestions has {', '.join(known)}")
        return self


PROFILES = {
    "paper": Profile("paper", run=RunSettings(epochs=20, batch_size=32), probe=ProbeSettings(layer=14)),
    "quick": Profile("quick", relations=["P17"], slick=SlickConfig(runs=4, samples=1, exemplars="shared"),
                     train_questions=400, dev_questions=200,
                     splits=SplitConfig(min_highly_known=0.0, known_size=64, unknown_size=64, held_size=64),
                     synthetic=192, run=RunSettings(epochs=5, lr=1e-4, batch_size=16, eval_limit=96, keep="last:1")),
    "standard": Profile("standard", slick=SlickConfig(runs=4, samples=1, exemplars="independent"),
                        train_questions=1500, dev_questions=None,
                        splits=SplitConfig(min_highly_known=0.0, known_size=500, unknown_size=500, held_size=None),
                        synthetic=500, run=RunSettings(epochs=5, lr=1e-4, batch_size=16, eval_limit=600, keep="last:1"),
                        seeds=[0, 1, 2]),
    "micro": Profile("micro", relations=["P17"], use_slick=False, train_questions=24, dev_questions=12,
                     splits=SplitConfig(known_size=8, unknown_size=8, held_size=6), synthetic=12,
                     run=RunSettings(epochs=2, lr=1e-3, batch_size=4, eval_limit=8, keep="last:1")),
}


def model_label(model: str) -> str:
    """The name a model is shown by: the embedded model's, else the checkpoint folder's."""
    return EMBEDDED_NAME if model == EMBEDDED else Path(model).name


def model_name(profile: Profile) -> str:
    return model_label(profile.model)


def synthetic_profile(profile: Profile) -> Profile:
    """The §5 setting holds the relation fixed: P17 only. It trains on D_Known ∪ synthetic facts, never on D_Unk, so
    a D_Known shorter than D_Unk skews no training mix: short pools are allowed (and named in the caption); e.g. the
    standard profile's P17 has 173 HighlyKnown train questions of the 500 asked. Folder names do not change."""
    return profile.replace(relations=["P17"], allow_short=True)
