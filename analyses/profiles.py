"""The scale of an analysis: a *profile* of every setting, each one a command-line flag with its help.

``quick`` runs on the embedded SmolLM2-135M on CPU; ``standard`` pools the four relations and runs SLiCK over the
whole dev split (independent exemplars) for several hundred held-out facts, with 3 training seeds; ``paper`` uses the
study's settings for a GPU (Qwen2.5-1.5B given with ``--model PATH``); ``micro`` is a plumbing test for tiny random
models (no SLiCK: facts are assigned to splits without asking the model what it knows). A preset's values are the
defaults of the flags.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from probekit.config import option
from probekit.errors import ProbekitError
from probekit.models import EMBEDDED, EMBEDDED_NAME
from training import entityquestions
from training.config import PRECISIONS

PRESETS = ("micro", "paper", "quick", "standard")


@dataclass(frozen=True)
class Profile:
    """The settings of an analysis. Question counts are per relation; sizes cap the splits."""

    profile: str = option("quick", "scale preset; its values are the defaults of every other flag: quick (embedded "
                          "SmolLM2-135M on CPU), standard (four relations pooled, hundreds of held-out facts, 3 seeds, "
                          "CPU), paper (the study's settings, for a GPU), micro (tiny random models)",
                          choices=PRESETS)
    model: str = option(EMBEDDED, "base model: 'embedded' (SmolLM2-135M), 'gemma3-270m' or a checkpoint directory")
    relations: list[str] = option(help="EntityQuestions relation ids", default_factory=lambda: ["P17", "P36", "P407",
                                                                                                 "P495"])
    slick: bool = option(True, "classify questions with SLiCK (false: alternate HighlyKnown / Unknown unasked)")
    slick_runs: int = option(20, "SLiCK: few-shot prompts per question")
    slick_shots: int = option(3, "SLiCK: exemplars per prompt")
    slick_samples: int = option(1, "SLiCK: temperature samples per prompt")
    slick_exemplars: str = option("independent", "SLiCK: exemplars drawn for each question, or shared by a prompt "
                                  "run", choices=("independent", "shared"))
    train_questions: int | None = option(None, "train questions per relation given to SLiCK (None: all)")
    dev_questions: int | None = option(None, "dev questions per relation given to SLiCK (None: all)")
    min_highly_known: float = option(0.30, "keep a relation if at least this share of its dev questions is "
                                     "HighlyKnown")
    known_size: int = option(8000, "D_Known: HighlyKnown train questions sampled (at most those available)")
    unknown_size: int = option(8000, "D_Unk: Unknown train questions sampled (at most those available)")
    held_size: int | None = option(None, "D_Held: HighlyKnown dev questions sampled (None: all)")
    allow_short: bool = option(False, "train on D_Known ∪ D_Unk even when short pools put D_Known's share more than "
                               "10 points from the asked share")
    synthetic: int = option(10_000, "synthetic P17 facts in the §5 setting")
    epochs: int = option(10, "training epochs of every run")
    lr: float = option(5e-5, "learning rate (AdamW)")
    batch_size: int = option(16, "training batch size")
    snapshot_epoch: int = option(1, "self-distillation: the teacher is the model after i epochs on D_Known")
    lam: float = option(1.0, "λ: weight of the distillation term")
    tau: float = option(0.5, "distillation temperature τ")
    layer: int | None = option(None, "probe layer (None: the model's middle layer)")
    eval_limit: int | None = option(None, "evaluate the first N facts of each eval set (None: all)")
    keep: str = option("all", "checkpoints kept: all | every:K | last:N (epoch 0 and the last always)")
    seed: int = option(0, "seed of SLiCK, the splits, the synthetic facts and training")
    seeds: list[int] = option(help="training seeds: every run once per seed, the data staying those of --seed "
                              "(none given: --seed alone)", default_factory=list)
    precision: str = option("auto", "precision of training, evaluation, probes and SLiCK: auto (bf16 autocast on a "
                            "GPU, fp32 on the CPU), fp32, bf16-mixed (fp32 weights, bf16 autocast; SLiCK with bf16 "
                            "weights: fast on CPUs with AMX or AVX512-BF16), bf16", choices=PRECISIONS)
    device: str | None = option(None, "cpu, cuda, cuda:N of SLiCK, training, evaluation and probes (None: cuda if "
                                "available)",
                                runtime=True)

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
    "paper": Profile("paper", epochs=20, batch_size=32, layer=14),
    "quick": Profile("quick", relations=["P17"], slick_runs=4, slick_samples=1, slick_exemplars="shared",
                     train_questions=400, dev_questions=200, min_highly_known=0.0, known_size=64, unknown_size=64,
                     held_size=64, synthetic=192, epochs=5, lr=1e-4, batch_size=16, eval_limit=96, keep="last:1"),
    "standard": Profile("standard", slick_runs=4, slick_samples=1, slick_exemplars="independent",
                        train_questions=1500, dev_questions=None, min_highly_known=0.0, known_size=500,
                        unknown_size=500, held_size=None, synthetic=500, epochs=5, lr=1e-4, batch_size=16,
                        eval_limit=600, keep="last:1", seeds=[0, 1, 2]),
    "micro": Profile("micro", relations=["P17"], slick=False, train_questions=24, dev_questions=12, known_size=8,
                     unknown_size=8, held_size=6, synthetic=12, epochs=2, lr=1e-3, batch_size=4, eval_limit=8,
                     keep="last:1"),
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
    return replace(profile, relations=["P17"], allow_short=True)
