"""What keeps the model near its teacher θ_i, one object per kind: nothing, self-distillation (full vocabulary with
an online teacher, or top-k / random-k from a cached teacher) and ℓ2 toward a parameter snapshot. Each owns its
teacher, cache or snapshot and computes its own term (the study's runs build theirs from a run's config in the
checkout's ``training.run_regularizer``; ``probekit.integrations.hf`` builds its own for a Trainer).

Distillation is a per-batch term inside ``Objective``'s forward (``in_objective``): ``batch_loss`` is the sum over
this process's examples of τ²/|M(y)| Σ_j KL. ℓ2 reads the parameters: ``parameter_loss`` is ‖θ − θ_i‖².
"""
from __future__ import annotations

import torch

from . import losses
from .batches import TrainBatch
from .heads import final_hidden, head_logits, head_logits_at
from .teacher_cache import TeacherCache


class Regularizer:
    """No regulariser: sft and freeze, and every epoch before the teacher exists."""

    in_objective = False  # True: `batch_loss` is part of the Objective's forward

    def prefetch(self, batch: TrainBatch) -> tuple[torch.Tensor, ...] | None:
        """What `batch_loss` needs from the host for `batch` (still on the CPU), read ahead of the step."""
        return None

    def batch_loss(self, lm, batch: TrainBatch, hidden: torch.Tensor, local_examples: int, teacher=None
                   ) -> torch.Tensor:
        raise NotImplementedError

    def parameter_loss(self, model) -> torch.Tensor | None:
        return None


NO_REGULARIZER = Regularizer()


def _full_kl(model, teacher, h_student, h_teacher, tau):
    with torch.no_grad():
        t = head_logits(teacher, h_teacher)
    return losses.kl_rows(t, head_logits(model, h_student), tau)


class FullDistillation(Regularizer):
    """KL over the full vocabulary to an online teacher; logits chunk by chunk and recomputed in backward."""

    in_objective = True

    def __init__(self, teacher, tau: float, chunk: int = 256, positions: str = "all"):
        self.teacher, self.tau, self.chunk, self.positions = teacher, tau, chunk, positions

    def batch_loss(self, lm, batch, hidden, local_examples, teacher=None):
        """hidden [R, T, d] of the student → Σ over local examples of τ²/|M(y)| Σ_j KL."""
        rows, cols, example, _ = batch.distilled(self.positions)
        h = hidden[rows, cols]  # [N, d]
        with torch.no_grad():
            th = final_hidden(self.teacher, batch)[rows, cols]
        n = self.chunk
        kl = torch.cat([
            torch.utils.checkpoint.checkpoint(_full_kl, lm, self.teacher, h[s : s + n], th[s : s + n], self.tau,
                                              use_reentrant=False)
            for s in range(0, len(h), n)
        ])
        return losses.distill_sum_from_kl(kl, example, local_examples, self.tau)


class CachedDistillation(Regularizer):
    """Top-k / random-k: KL over the k token ids per position that the teacher cache holds, renormalised there."""

    in_objective = True

    def __init__(self, cache: TeacherCache, tau: float, positions: str = "all"):
        self.cache, self.tau, self.positions = cache, tau, positions

    def prefetch(self, batch):
        _, _, example, pos = batch.distilled(self.positions)
        return self.cache.lookup(batch.example_index, example, pos)

    def batch_loss(self, lm, batch, hidden, local_examples, teacher=None):
        """`teacher`: (ids, log-probs) [N, k] each from ``prefetch``, on the device (unset: looked up here)."""
        rows, cols, example, _ = batch.distilled(self.positions)
        h = hidden[rows, cols]  # [N, d]
        ids, t_logp = teacher if teacher is not None else self.prefetch(batch)  # [N, k] each
        s_logits = head_logits_at(lm, h, ids.to(h.device))
        return losses.distill_loss_sum(t_logp.to(h.device), s_logits, example, local_examples, self.tau)


class L2ToSnapshot(Regularizer):
    """‖θ − θ_i‖² over the trainable parameters, θ_i the snapshot's weights by parameter name."""

    def __init__(self, snapshot: dict[str, torch.Tensor]):
        self.snapshot = snapshot

    def parameter_loss(self, model) -> torch.Tensor:
        return losses.l2_to_snapshot({n: p for n, p in model.named_parameters() if p.requires_grad}, self.snapshot)
