"""The share of a global batch that one process feeds the ``Objective`` (``StepBatch``), copied to the device ahead
of its step."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from probekit.distillation.batches import Example, TrainBatch, collate, collate_packed
from probekit.distillation.regularizers import NO_REGULARIZER, Regularizer


@dataclass
class StepBatch:
    """This process's share of a global batch, on the device. `counts` [3] float64: its answer tokens, examples and
    non-padded tokens (summed over processes in the step). A process that a short last batch leaves without
    examples computes a stand-in example with `weight` 0, so that every process runs the same collectives."""

    batch: TrainBatch
    examples: int  # rows of `batch`
    counts: torch.Tensor
    weight: float | None = None  # None: counts as is; 0.0: a stand-in
    teacher: tuple[torch.Tensor, ...] | None = None  # the regulariser's prefetched rows (cached distillation)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` on `device`; from pinned memory without blocking the host when that is a GPU."""
    return x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x.to(device)


def step_batch(global_batch: list[Example], rank: int, world: int, pad_id: int, device: torch.device,
               regularizer: Regularizer = NO_REGULARIZER, width: int | None = None, pack_tokens: int | None = None,
               rows: int | None = None) -> StepBatch:
    """Process `rank`'s examples of `global_batch` (every world-th), collated one per row (padded to `width` if
    given) or packed into `rows` rows of `pack_tokens` tokens, with the regulariser's teacher rows, copied to
    `device`."""
    local = global_batch[rank::world]
    examples = local or global_batch[:1]
    batch = collate_packed(examples, pad_id, pack_tokens, rows) if pack_tokens else collate(examples, pad_id, width)
    counts = [len(batch.targets), len(local), int(batch.attention_mask.sum())] if local else [0, 0, 0]
    teacher = regularizer.prefetch(batch)
    return StepBatch(batch.map(lambda t: to_device(t, device)), len(examples),
                     to_device(torch.tensor(counts, dtype=torch.float64), device), None if local else 0.0,
                     None if teacher is None else tuple(to_device(t, device) for t in teacher))
