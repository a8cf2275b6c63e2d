"""Train only some parameter groups (Tables 1 and 3): attn, q, k, v, o, ffn, gate+up, down, or all.

Groups come from ``probekit.families``, so the same names work on every supported architecture. Everything
outside the chosen groups (embeddings, norms, other projections) is frozen; with fused projections (GPT-2
``c_attn``) the group trains the fused module.
"""
from __future__ import annotations

import torch.nn as nn

from probekit.errors import ProbekitError
from probekit.families import GROUPS, group_parameters


def set_trainable(model: nn.Module, groups: list[str] | tuple[str, ...]) -> dict[str, nn.Parameter]:
    """Freeze every parameter, then unfreeze the union of `groups`; returns the trainable ones by name."""
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ProbekitError(f"unknown parameter group(s) {unknown or groups}; choose from {', '.join(GROUPS)}")
    trainable: dict[str, nn.Parameter] = {}
    for g in groups:
        trainable.update(group_parameters(model, g))
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable.values():
        p.requires_grad_(True)
    return trainable
