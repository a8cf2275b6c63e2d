"""λ of ℓ2 toward the snapshot θ_i (eq. 3) matched to self-distillation in gradient magnitude (§5.2).

At θ = θ_i both terms have zero gradient (the KL is at its minimum, ‖θ − θ_i‖² too), so the match is taken one step
later. From θ_i, the self-distillation run's first mixed-phase step, exactly as the trainer takes it (epoch i + 1's
first batch, L_task + λ_sd·L_distill, the run's AdamW with fresh moments: the snapshot epochs' moments are not kept
after a run), gives θ′; on the same batch at θ′

    λ_ℓ2 = λ_sd · ‖∇_θ L_distill(θ′)‖ / ‖∇_θ ‖θ′ − θ_i‖²‖        (the second norm is 2‖θ′ − θ_i‖)

so that λ_ℓ2·‖θ − θ_i‖² pulls as hard as λ_sd·L_distill there. L_distill is the trainer's per-example mean of
τ²/|M(y)| Σ_j KL; norms run over the trainable parameters. One process. ``l2_lambda`` computes it once per
self-distillation run and records it in that run's folder (``l2-lambda.json``).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from probekit.distillation.batches import epoch_batches
from probekit.distillation.regularizers import L2ToSnapshot, Regularizer
from probekit.errors import ProbekitError
from probekit.io import write_json

from .config import RunConfig, run_key
from .run_regularizer import teacher_path
from .step_batch import StepBatch
from .trainer import Trainer

MATCH_FILE = "l2-lambda.json"
STEP = ("one Trainer.step of the self-distillation run from θ_i on its first mixed-phase batch (epoch i + 1, batch "
        "0): L_task + λ_sd·L_distill, the run's AdamW with fresh moments; both gradients at the resulting θ′ on "
        "that batch; λ_ℓ2 = λ_sd·‖∇L_distill‖ / ‖∇‖θ − θ_i‖²‖")


@dataclass
class LambdaMatch:
    """The matched λ_ℓ2 and what it came from (gradient norms over the trainable parameters, at θ′)."""

    lam: float  # λ_ℓ2
    lam_sd: float  # λ of the self-distillation run
    distill_grad_norm: float  # ‖∇ L_distill‖ (unweighted)
    l2_grad_norm: float  # ‖∇ ‖θ − θ_i‖²‖ = 2‖θ′ − θ_i‖
    snapshot_epoch: int
    settings: str  # run_key of the self-distillation run's config (its folder's key)
    step: str = STEP

    def summary(self) -> str:
        return (f"λ_ℓ2 = {self.lam:.4g}: ‖∇ λ_sd·L_distill‖ = {self.lam_sd * self.distill_grad_norm:.4g} "
                f"(λ_sd = {self.lam_sd:g}) and ‖∇‖θ − θ_{self.snapshot_epoch}‖²‖ = {self.l2_grad_norm:.4g} after one "
                f"self-distillation step from θ_{self.snapshot_epoch} on its first mixed-phase batch")


def _grad_norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads if g is not None))


def _first_mixed_batch(trainer: Trainer, regularizer: Regularizer) -> StepBatch:
    """Epoch i + 1's first batch of D_Known ∪ D_Unk, prepared as the trainer prepares it."""
    c = trainer.config
    batches = epoch_batches(trainer.train_examples, c.batch_size, c.seed, c.snapshot_epoch + 1)
    return trainer.prepare(batches[0], regularizer, rows=trainer.packed_rows(batches))


def match_l2_lambda(config: RunConfig) -> LambdaMatch:
    """λ_ℓ2 for the self-distillation run `config` (teacher recipe; its snapshot θ_i already in ``config.out``
    unless i = 0), as the module docstring defines it."""
    if config.condition != "self_distill" or config.teacher != "recipe":
        raise ProbekitError("λ matching starts from a self-distillation run's recipe snapshot θ_i: give "
                            "condition='self_distill' and teacher='recipe'")
    trainer = Trainer(config)
    path = teacher_path(config, trainer.run_dir, trainer.base_path)
    if not path.exists():
        raise ProbekitError(f"no snapshot θ_{config.snapshot_epoch} at {path}: train the self-distillation run past "
                            f"epoch {config.snapshot_epoch} first")
    model = trainer.load_model(path)
    objective = trainer.wrap(model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    anchor = L2ToSnapshot({n: p.detach().clone() for n, p in params.items()})  # θ_i
    regularizer = trainer.make_regularizer(model)
    local = _first_mixed_batch(trainer, regularizer)
    model.train()
    loss = trainer.step(model, objective, trainer.optimizer(list(params.values())), local, regularizer)
    if not math.isfinite(float(loss[0])):
        raise ProbekitError("the first mixed-phase step's loss is nan or inf; lower the learning rate or use fp32")
    with trainer.autocast:
        _, reg_sum = objective(local.batch, local.examples, regularizer, local.teacher)
        distill = reg_sum / local.counts[1].to(reg_sum.dtype)  # the trainer's L_distill: mean over examples
    distill_norm = _grad_norm(distill, list(params.values()))
    l2_norm = _grad_norm(anchor.parameter_loss(model), list(params.values()))
    if l2_norm == 0:
        raise ProbekitError("the first mixed-phase step left θ at θ_i (learning rate 0?): no λ matches a zero ℓ2 "
                            "gradient")
    return LambdaMatch(config.lam * distill_norm / l2_norm, config.lam, distill_norm, l2_norm, config.snapshot_epoch,
                       run_key(config))


def l2_lambda(config: RunConfig) -> LambdaMatch:
    """The matched λ_ℓ2 of the self-distillation run `config`: read from ``<out>/l2-lambda.json`` when it holds
    this definition (the folder holds one run's settings: resuming with others is refused), else computed
    (``match_l2_lambda``) and written there."""
    path = Path(config.out) / MATCH_FILE
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("step") == STEP:
            return LambdaMatch(**stored)
    match = match_l2_lambda(config)
    write_json(path, asdict(match))
    return match
