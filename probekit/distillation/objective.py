"""One batch's loss terms as a single module forward, which DDP or FSDP2 wrap so their hooks see every use of a
weight (the LM head included)."""
from __future__ import annotations

import torch

from . import losses
from .batches import TrainBatch
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
