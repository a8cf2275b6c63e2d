"""The regulariser a run's config asks for (``RunConfig.condition``), with its teacher θ_i loaded: a checkpoint, or
the recipe's snapshot in the run, and for top-k / random-k the teacher cache built once (rank 0 first under
torchrun). The regularisers themselves are ``probekit.distillation.regularizers``."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from probekit.checkpoints import weights_stamp
from probekit.distillation.batches import Example
from probekit.distillation.regularizers import (NO_REGULARIZER, CachedDistillation, FullDistillation, L2ToSnapshot,
                                                Regularizer)
from probekit.distillation.teacher_cache import TeacherCache, build_teacher_cache
from probekit.models import load_causal_lm, resolve_model_path

from .config import RunConfig
from .distributed import barrier, world
from .run_dir import RunDir


def teacher_path(config: RunConfig, run: RunDir, base_path: Path) -> Path:
    """θ_i: a given checkpoint, or the recipe's snapshot in the run (the base model when snapshot_epoch is 0)."""
    if config.teacher != "recipe":
        return resolve_model_path(config.teacher)
    return run.teacher if config.snapshot_epoch > 0 else base_path


def make_regularizer(config: RunConfig, run: RunDir, *, base_path: Path, model, examples: list[Example],
                     pad_id: int, device: torch.device) -> Regularizer:
    """The regulariser of `config.condition` with its teacher θ_i loaded in the dtype of `model`'s weights (so the
    KL is exactly 0 while the student equals its teacher), the teacher cache built on first use: by rank 0 first
    under torchrun, then read by the others."""
    if config.condition not in ("self_distill", "l2"):
        return NO_REGULARIZER
    path = teacher_path(config, run, base_path)
    if config.condition == "l2":
        weights = {k: v for f in sorted(path.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        return L2ToSnapshot({n: weights[n].to(device) for n in names if n in weights})
    teacher = load_causal_lm(path, dtype=next(model.parameters()).dtype, device=device)  # the student's precision
    teacher.requires_grad_(False)
    if config.variant == "full":
        return FullDistillation(teacher, config.tau, positions=config.distill_positions)
    stamp = json.dumps(weights_stamp(path))
    root = run.teacher_cache(config.cache_dir)

    def build() -> TeacherCache:
        return build_teacher_cache(teacher, examples, pad_id, config.k, config.variant, config.seed, root, stamp)

    cache = build() if world()[0] == 0 else None
    barrier()
    return CachedDistillation(cache if cache is not None else build(), config.tau, config.distill_positions)
