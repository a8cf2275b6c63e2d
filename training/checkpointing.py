"""A run's checkpoint series and its resumable state, each folder written atomically (a crash leaves the previous
one whole): HF checkpoints with their tokenizer, the keep/prune policy, and ``state/`` (weights, optimizer, RNG,
the last completed epoch), from which a run resumes."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from probekit.io import atomic_dir

from .run_dir import RunDir


def save_pretrained(model, tokenizer, target: Path) -> Path:
    """An HF checkpoint (safetensors + tokenizer) at `target`, replacing what was there."""
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target


def prune(run: RunDir, keep: str, epoch: int) -> None:
    """Apply `keep` (all | every:K | last:N) after saving `epoch`; epoch 0 and `epoch` always stay."""
    kind, _, n = keep.partition(":")
    if kind == "all":
        return
    for d in sorted(run.checkpoints.glob("epoch-*")):
        e = int(d.name.split("-")[1])
        if e in (0, epoch):
            continue
        drop = (kind == "every" and e % int(n) != 0) or (kind == "last" and e <= epoch - int(n))
        if drop:
            shutil.rmtree(d)


def save_state(run: RunDir, checkpoint: Path, optimizer_state: dict | None, epoch: int, phase: str,
               last: bool) -> None:
    """Everything resuming needs after `epoch`: the weights (hard links to the files of `checkpoint`, the epoch's
    checkpoint: the same bytes, written once), optimizer state and RNG. After the `last` epoch only the epoch marker:
    nothing is left to resume."""
    with atomic_dir(run.state) as tmp:
        if not last:
            for f in checkpoint.iterdir():
                link_or_copy(f, tmp / f.name)
            torch.save({"optimizer": optimizer_state, "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                       tmp / run.optimizer_file.name)
        (tmp / run.trainer_state_file.name).write_text(json.dumps({"epoch": epoch, "phase": phase}))


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (files are replaced, never rewritten in place, so the link stays the file's bytes), or a copy
    where the file system refuses one."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def restore_state(run: RunDir, model, optimizer, full_state_dict: bool) -> None:
    """Load the saved optimizer state into `optimizer` (of `model`, already loaded from ``run.state``) and the RNG."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    state = torch.load(run.optimizer_file, weights_only=True)
    if state["optimizer"] is not None:
        set_optimizer_state_dict(model, optimizer, state["optimizer"],
                                 options=StateDictOptions(full_state_dict=full_state_dict))
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] is not None:
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def optimizer_state(model, optimizer) -> dict | None:
    """The full optimizer state keyed by parameter name (gathered from the shards under FSDP2; every rank calls);
    None before the first step. (torch.distributed.checkpoint fills an empty state by stepping with zero
    gradients, which would count as an Adam step and change every later update.)"""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    if not optimizer.state:
        return None
    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def completed_epoch(run: RunDir) -> int:
    """The last epoch whose state was saved; -1 for a new run."""
    f = run.trainer_state_file
    return json.loads(f.read_text())["epoch"] if f.exists() else -1
