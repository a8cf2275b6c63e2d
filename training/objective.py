"""One batch's loss terms as a single module forward, which DDP or FSDP2 wrap so their hooks see every use of a
weight (the LM head included), and the share of a global batch that one process feeds it (``StepBatch``), copied
to the device ahead of its step."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import losses
from .batches import Example, TrainBatch, collate, collate_packed
from .heads import final_hidden, head_logits
from .regularizers import NO_REGULARIZER, Regularizer


class Objective(torch.nn.Module):
    """(task loss summed over answer tokens, the regulariser's per-batch term summed per example as eq. 2 of the
    study sums it, or 0). The LM head runs only where a loss needs logits: at answer positions here, and wherever
    the regulariser asks (the teacher's k ids, or chunk by chunk for full KL). `teacher`: the regulariser's
    prefetched rows."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, batch: TrainBatch, local_examples: int, regularizer: Regularizer = NO_REGULARIZER,
                teacher=None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = final_hidden(self.lm, batch)  # [R, T, d]
        logits = head_logits(self.lm, hidden[batch.answer_rows, batch.answer_cols])  # [answer tokens, V]
        task = losses.task_loss_sum(logits, batch.targets)
        if not regularizer.in_objective:
            return task, torch.zeros((), device=hidden.device)
        return task, regularizer.batch_loss(self.lm, batch, hidden, local_examples, teacher)


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
