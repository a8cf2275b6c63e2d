"""What a training run depends on: ``RunConfig`` (recorded in run.json, read from flags or TOML), its checks, and
the key that names a run by its results-changing settings.

Runtime fields (``runtime=True``: out, device, pack, pack_tokens, parallel, eval_batch_size, log_every, cache_dir) say
where and how a run computes, not what: they may differ on resume and do not enter ``run_key``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from probekit.config import declared, option, runtime_fields
from probekit.drift_probe import ProbeConfig
from probekit.errors import ProbekitError
from probekit.io import stable_hash
from probekit.models import EMBEDDED

CONDITIONS = ("sft", "freeze", "self_distill", "l2")
VARIANTS = ("full", "topk", "randomk")
PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16")
PARALLEL = ("auto", "ddp", "fsdp")
PACKING = ("auto", "on", "off")
DISTILL_POSITIONS = ("all", "answer")
EVAL_SETS = ("known", "unknown", "held", "maybe_known", "weakly_known")
FACTS = "facts (.jsonl, .json, .csv, .parquet or a save_to_disk folder)"


@dataclass
class RunConfig:
    """Everything a run depends on (recorded in run.json). Fact paths are what ``probekit.read_facts`` reads:
    JSONL / JSON, CSV, Parquet or a ``Dataset.save_to_disk`` folder."""

    out: str | None = option(None, "run directory (required to train; resuming: the same command again)",
                             runtime=True)
    model: str = option(EMBEDDED, "base model: 'embedded' (SmolLM2-135M), 'gemma3-270m' or a checkpoint directory")
    train: str | None = option(None, FACTS + ": the training mix (unset: known ∪ unknown)")
    known: str | None = option(None, FACTS + ": D_Known (trained on, evaluated; the teacher recipe's data)")
    unknown: str | None = option(None, FACTS + ": D_Unk (trained on, evaluated)")
    held: str | None = option(None, FACTS + ": D_Held (evaluated, never trained on)")
    maybe_known: str | None = option(None, FACTS + ": MaybeKnown (evaluated)")
    weakly_known: str | None = option(None, FACTS + ": WeaklyKnown (evaluated)")
    new: str | None = option(None, FACTS + ": new/synthetic entities for the probe's MTD")
    condition: str = option("sft", "training condition", choices=CONDITIONS)
    trainable: list[str] = option(help="freeze: parameter groups to train (attn q k v o ffn gate+up down all)",
                                  default_factory=lambda: ["all"])
    variant: str = option("full", "self_distill variant: full vocabulary, top-k or random-k ids", choices=VARIANTS)
    lam: float = option(1.0, "λ: weight of the distillation / L2 term")
    tau: float = option(0.5, "distillation temperature τ")
    distill_positions: str = option("all", "M(y) of eq. 2, where the KL is averaged: every non-padded position of "
                                    "prompt and answer (all), or only those that predict an answer token (answer)",
                                    choices=DISTILL_POSITIONS)
    snapshot_epoch: int = option(1, "i: the recipe teacher is the model after i epochs on D_Known (0: the base)")
    teacher: str = option("recipe", "'recipe' (a snapshot trained in this run) or a checkpoint directory")
    k: int = option(76, "top-k / random-k size")
    lr: float = option(5e-5, "learning rate (AdamW)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    batch_size: int = option(16, "global batch size (split over processes under torchrun)")
    epochs: int = option(10, "epochs, counted from the start of the run (snapshot epochs included)")
    seed: int = option(0, "data order and random-k seed")
    precision: str = option("auto", "auto (bf16 autocast on a GPU, fp32 on the CPU), fp32, bf16-mixed (fp32 weights, "
                            "bf16 autocast) or bf16; an analysis runs its SLiCK and probes in it too (bf16-mixed: "
                            "SLiCK with bf16 weights, fast on CPUs with AMX or AVX512-BF16)", choices=PRECISIONS)
    compile: bool = option(False, "torch.compile the model")
    keep: str = option("all", "checkpoints to keep: all | every:K | last:N (epoch 0 and the last always)")
    eval_limit: int | None = option(None, "evaluate the first N facts of each eval set (unset: all)")
    eval_batch_size: int | None = option(None, "batch size of greedy evaluation (unset: 64 on CPU, 256 on a GPU)",
                                         runtime=True)
    log_every: int = option(16, "read step losses back from the device (and stop on NaN/inf) every N steps",
                            runtime=True)
    probe: bool = option(False, "compute probe drift metrics every epoch")
    layer: int | None = declared(ProbeConfig, "layer")
    prompt_format: str = declared(ProbeConfig, "prompt_format")
    device: str | None = declared(ProbeConfig, "device")
    pack: str = option("auto", "pack examples into rows of --pack-tokens tokens, attention kept inside each example "
                       "(equal losses, fewer padded tokens): auto (on a GPU), on, off", choices=PACKING, runtime=True)
    pack_tokens: int | None = option(None, "tokens per packed row (unset: 256, or the longest example rounded up to "
                                     "a multiple of 64)", runtime=True)
    parallel: str = option("auto", "under torchrun: ddp (auto) replicates the model, fsdp shards it (FSDP2)",
                           choices=PARALLEL, runtime=True)
    cache_dir: str | None = option(None, "caches shared by runs: teacher outputs, θ0's evaluation outcomes in "
                                   "base-outcomes/ and θ0's probe states in base-probes/ (unset: "
                                   "<out>/../.teacher-cache, <out>/../.base-outcomes and <out>/../.base-probes)",
                                   runtime=True)

    def validate(self) -> None:
        _check_choices(self)
        _check_ranges(self)
        if self.condition in ("self_distill", "l2") and self.teacher == "recipe":
            if self.snapshot_epoch > 0 and not self.known:
                raise ProbekitError("the teacher recipe trains on D_Known first: give --known (or --teacher PATH)")
            if not 0 <= self.snapshot_epoch < self.epochs:
                raise ProbekitError(f"snapshot epoch {self.snapshot_epoch} must be in 0..{self.epochs - 1} "
                                    "(0: the base model is the teacher)")
        if not (self.train or self.known or self.unknown):
            raise ProbekitError("no training data: give --train, or --known / --unknown")
        if self.parallel == "fsdp" and self.condition == "l2":
            raise ProbekitError("l2 is not supported under FSDP2 (its penalty reads whole parameters); use ddp")
        _check_keep(self.keep)


def _check_choices(config: RunConfig) -> None:
    for name, choices in (("condition", CONDITIONS), ("variant", VARIANTS), ("precision", PRECISIONS),
                          ("parallel", PARALLEL), ("pack", PACKING),
                          ("distill_positions", DISTILL_POSITIONS)):
        value = getattr(config, name)
        if value not in choices:
            raise ProbekitError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def _check_ranges(config: RunConfig) -> None:
    """Each numeric field in its range (NaN fails every comparison, so it is refused too)."""
    c = config
    rules = (("batch_size", c.batch_size >= 1, "at least 1"), ("epochs", c.epochs >= 0, "0 or more"),
             ("snapshot_epoch", c.snapshot_epoch >= 0, "0 or more"), ("k", c.k >= 1, "at least 1"),
             ("tau", c.tau > 0, "above 0"), ("lam", c.lam >= 0, "0 or more"), ("lr", c.lr >= 0, "0 or more"),
             ("weight_decay", c.weight_decay >= 0, "0 or more"),
             ("eval_limit", c.eval_limit is None or c.eval_limit >= 1, "at least 1 (unset: all)"),
             ("eval_batch_size", c.eval_batch_size is None or c.eval_batch_size >= 1, "at least 1 (unset: automatic)"),
             ("log_every", c.log_every >= 1, "at least 1"),
             ("pack_tokens", c.pack_tokens is None or c.pack_tokens >= 1, "at least 1 (unset: automatic)"))
    for name, ok, rule in rules:
        if not ok:
            raise ProbekitError(f"--{name.replace('_', '-')} must be {rule}, not {getattr(c, name)!r}")


def _check_keep(keep: str) -> None:
    """all, every:K or last:N with K, N whole numbers of at least 1."""
    kind, _, n = keep.partition(":")
    if keep == "all" or (kind in ("every", "last") and n.isdecimal() and int(n) >= 1):
        return
    raise ProbekitError(f"--keep must be all, every:K or last:N (K, N whole numbers of at least 1), not {keep!r}")


RUNTIME = runtime_fields(RunConfig)


# settings renamed since: hashed, and read from run.json, under the name they had when run folders were first named
RENAMED = {"layer": "probe_layer"}
# what an analysis names in every run's key, at its default too: the model, the condition and the profile's schedule
KEYED = ("model", "condition", "epochs", "lr", "batch_size", "snapshot_epoch", "lam", "tau", "keep", "seed")


def run_key(config: RunConfig) -> str:
    """A short hash of what a run computes (names its folder): the KEYED fields, every other results-changing field
    that is set (not None) and differs from its default, and a self-distillation run's variant (the way run folders
    were first named, so archived runs keep their folders)."""
    defaults = RunConfig()
    keyed = {}
    for name, value in asdict(config).items():
        if name in RUNTIME or value is None:
            continue
        if (name in KEYED or value != getattr(defaults, name)
                or (name == "variant" and config.condition == "self_distill")):
            keyed[RENAMED.get(name, name)] = value
    return stable_hash(keyed)


OLD_NAMES = {old: new for new, old in RENAMED.items()}


def stored_config(stored: dict) -> dict:
    """A config dict as run.json (or an earlier run.toml) records it, under today's field names."""
    return {OLD_NAMES.get(k, k): v for k, v in stored.items()}


def check_same_settings(stored: dict, config: RunConfig, folder) -> None:
    """Refuse to resume a run whose stored config (fields added since take their defaults) differs from `config`
    in a field that changes results."""
    def comparable(values: dict) -> dict:
        return {k: v for k, v in json.loads(json.dumps(values, default=str)).items() if k not in RUNTIME}

    before = comparable({**asdict(RunConfig()), **stored_config(stored)})
    now = comparable(asdict(config))
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        raise ProbekitError(f"{folder} holds a run with other settings ({', '.join(changed)}); "
                            "resume with the same settings or choose another --out")
