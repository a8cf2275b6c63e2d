"""The study's self-distillation inside a transformers ``Trainer`` or TRL ``SFTTrainer`` run.

    L = L_task + λ · mean over examples of τ²/|M(y)| Σ_{j∈M(y)} KL( softmax(z_T,j / τ) ‖ softmax(z_S,j / τ) )

computed by the same ``Objective`` and regularisers (``probekit.distillation``) as the study's runs (``python -m
training run --condition self_distill`` in a probekit checkout): L_task is the cross-entropy summed over the label
tokens (labels ≠ -100) divided by their number, the KL is over every non-padded position, the full vocabulary (an
online teacher) or the k ids per position of a teacher cache (top-k / random-k,
``probekit.distillation.teacher_cache``, built over the train dataset's ``input_ids`` in dataset order; a batch's
sequence is found there by its token ids, so a sequence that is in several rows is served the first such row's ids:
the same for top-k, one shared draw instead of one per row for random-k). Under gradient accumulation both counts
are those of the whole accumulated batch, as in one large batch, whatever the transformers version.

The teacher θ_i is a checkpoint (``teacher=PATH`` or a model) or a snapshot of the model being trained after
``snapshot_epoch`` epochs of *this Trainer's* ``train_dataset`` (0: before the first step; until then training is
plain SFT; a snapshot after N ≥ 1 epochs is also saved to ``<output_dir>/teacher``). Unlike the study's runs'
``--snapshot-epoch`` (epochs on D_Known inside one run), nothing here switches datasets: the study's recipe, SFT on
D_Known for i epochs and then distillation from that checkpoint on D_train, is a Trainer on D_Known, then this one
with ``teacher=`` its output. Resuming (``train(resume_from_checkpoint=...)``) needs ``teacher=`` once the snapshot
was taken: the model in memory is then no longer the snapshot.

Use ``SelfDistillationTrainer`` in place of ``Trainer``, or mix into TRL:
``class DistillSFTTrainer(SelfDistillationMixin, SFTTrainer): pass``. Batches must be right-padded (not packed or
padding-free), one process (several GPUs: ``torchrun -m training run`` in a probekit checkout). Evaluation loss is
the plain task loss.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

from ...checkpoints import weights_stamp
from ...distillation.batches import Example, TrainBatch
from ...distillation.objective import Objective
from ...distillation.regularizers import NO_REGULARIZER, CachedDistillation, FullDistillation
from ...distillation.teacher_cache import VARIANTS, build_teacher_cache
from ...errors import ProbekitError
from ...metrics import DEFAULT_K
from ...models import load_causal_lm, resolve_model_path


def transformers_model(model):
    """The transformers model under accelerate / PEFT wrappers (a PEFT model's base keeps its adapters active)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def train_batch(inputs: dict[str, torch.Tensor]) -> TrainBatch:
    """A Trainer batch (input_ids, attention_mask, labels [B, T], right-padded) as the training loop's batch:
    answer positions j where labels[j + 1] ≠ -100, and every non-padded position in example order (example_index
    is left 0: set it where a teacher cache needs it)."""
    if "attention_mask" not in inputs or "labels" not in inputs:
        raise ProbekitError("self-distillation needs batches with attention_mask and labels; packed or "
                            "padding-free batches are not supported (set packing=False, padding_free=False)")
    ids, mask, labels = inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
    if (mask[:, 1:] > mask[:, :-1]).any():
        raise ProbekitError("self-distillation needs right-padded batches; set tokenizer.padding_side = 'right'")
    a_rows, a_cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    s_rows, s_cols = mask.nonzero(as_tuple=True)
    rows = torch.arange(len(ids), device=ids.device)[:, None]
    return TrainBatch(ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), torch.where(mask.bool(), rows, -1), a_rows,
                      a_cols, labels[a_rows, a_cols + 1], s_rows, s_cols, s_rows, s_cols,
                      torch.zeros(len(ids), dtype=torch.long, device=ids.device))


def frozen_copy(model):
    """A copy of the model being trained as a plain transformers model (a PEFT model's adapters merged in)."""
    snapshot = copy.deepcopy(getattr(model, "module", model))
    return snapshot.merge_and_unload() if hasattr(snapshot, "merge_and_unload") else snapshot


class _TeacherSchedule(TrainerCallback):
    """Makes the teacher when it is due: at train begin (a given teacher, snapshot 0) or after the snapshot epoch."""

    def __init__(self, trainer: "SelfDistillationMixin"):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        t = self.trainer
        if t.snapshot_epoch is None:
            t.start_distillation(t.teacher_source)
        elif t.snapshot_epoch == 0:
            if state.global_step > 0:  # the resumed checkpoint's weights, not the model training started from
                raise ProbekitError(f"this run resumes at step {state.global_step}, after its snapshot at step 0: "
                                    "pass teacher=PATH (the model training started from) instead of "
                                    "snapshot_epoch=0")
            t.start_distillation(frozen_copy(model))
        elif (state.epoch or 0) >= t.snapshot_epoch:
            raise ProbekitError(f"this run resumes after its snapshot epoch {t.snapshot_epoch}: pass "
                                f"teacher='{Path(args.output_dir) / 'teacher'}' instead of snapshot_epoch")

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        t = self.trainer
        if t.snapshot_epoch and round(state.epoch) == t.snapshot_epoch:
            snapshot = frozen_copy(model)
            if state.is_world_process_zero:
                snapshot.save_pretrained(Path(args.output_dir) / "teacher")
            t.start_distillation(snapshot)


class SelfDistillationMixin:
    """Trainer mixin: the loss above (see the module docstring). Keyword arguments: teacher (path or model) or
    snapshot_epoch (epochs of train_dataset); lam (λ), tau (τ), variant ("full", "topk", "randomk"), k, seed (of
    random-k ids), cache_dir (teacher caches of a path teacher; default <output_dir>/.teacher-cache).

    The loss of a micro-batch is normalised by the whole step's counts and multiplied by the step's number of
    micro-batches, which the Trainer divides by: every transformers version does when the model takes no loss
    kwargs and there is no compute_loss_func (and, from 5.19, loss_is_scaled_for_ga is not True), so the step's
    gradient is that of one large batch."""

    loss_is_scaled_for_ga = False  # transformers >= 5.19: the Trainer divides by the micro-batch count

    def __init__(self, *args, teacher=None, snapshot_epoch: int | None = None, lam: float = 1.0, tau: float = 0.5,
                 variant: str = "full", k: int = DEFAULT_K, seed: int = 0, cache_dir: str | None = None, **kwargs):
        if (teacher is None) == (snapshot_epoch is None):
            raise ProbekitError("give the teacher as teacher=PATH (or a model) or snapshot_epoch=N, exactly one")
        if variant not in ("full", *VARIANTS):
            raise ProbekitError(f"variant must be one of full, {', '.join(VARIANTS)}, not {variant!r}")
        super().__init__(*args, **kwargs)
        if self.accelerator.num_processes > 1:
            raise ProbekitError("self-distillation in a Trainer runs in one process; for several GPUs use "
                                "`torchrun -m training run --condition self_distill` in a probekit checkout")
        if self.compute_loss_func is not None:
            raise ProbekitError("self-distillation computes the loss itself: do not pass compute_loss_func")
        self.model_accepts_loss_kwargs = False  # the Trainer divides our loss by the micro-batch count (above)
        self.teacher_source, self.snapshot_epoch = teacher, snapshot_epoch
        self.lam, self.tau, self.variant, self.k, self.seed, self.cache_dir = lam, tau, variant, k, seed, cache_dir
        self.regularizer = NO_REGULARIZER
        self._example_index: dict[tuple[int, ...], int] = {}
        self._step_counts: tuple[int, int, int] | None = None  # answer tokens, examples, micro-batches of the step
        self._scratch = None
        self.add_callback(_TeacherSchedule(self))

    def start_distillation(self, teacher) -> None:
        """Freeze `teacher` (a model, or a checkpoint path) as θ_i and distil toward it from the next step."""
        device = next(self.model.parameters()).device
        stamp = root = None
        if isinstance(teacher, (str, os.PathLike)):
            path = resolve_model_path(teacher)
            stamp = json.dumps(weights_stamp(path))
            root = Path(self.cache_dir) if self.cache_dir else Path(self.args.output_dir) / ".teacher-cache"
            teacher = load_causal_lm(path, device=device)
        teacher = transformers_model(teacher).to(device).eval().requires_grad_(False)
        if self.variant == "full":
            self.regularizer = FullDistillation(teacher, self.tau)
            return
        if root is None:  # an in-memory teacher has no stamp to share a cache by: a cache for this run only
            self._scratch = tempfile.TemporaryDirectory(prefix="teacher-cache-")
            root, stamp = Path(self._scratch.name), "in-memory"
        data = self.train_dataset
        column = data["input_ids"] if hasattr(data, "column_names") else [row["input_ids"] for row in data]
        examples = [Example(i, tuple(ids), len(ids)) for i, ids in enumerate(column)]
        for e in examples:
            self._example_index.setdefault(e.input_ids, e.index)
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        cache = build_teacher_cache(teacher, examples, tokenizer.pad_token_id, self.k, self.variant, self.seed,
                                    root, stamp)
        self.regularizer = CachedDistillation(cache, self.tau)

    def _dataset_rows(self, batch: TrainBatch) -> torch.Tensor:
        """Train-dataset row of each sequence in the batch (the teacher cache's key), found by its token ids."""
        rows = []
        for ids, n in zip(batch.input_ids.tolist(), batch.attention_mask.sum(-1).tolist()):
            if (row := self._example_index.get(tuple(ids[:n]))) is None:
                raise ProbekitError("a training sequence is not in train_dataset['input_ids'] as tokenized (was it "
                                    "truncated or changed by the collator?); the teacher cache cannot serve it")
            rows.append(row)
        return torch.tensor(rows, dtype=torch.long, device=batch.input_ids.device)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        labelled = batches and all("labels" in b for b in batches)
        self._step_counts = (sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches),
                             sum(len(b["input_ids"]) for b in batches), len(batches)) if labelled else None
        return batches, num_items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training:  # evaluation: the plain task loss
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        batch = train_batch(inputs)
        if self._example_index:
            batch.example_index = self._dataset_rows(batch)
        n_answer, n_examples, n_micro = self._step_counts or (batch.num_answer_tokens, len(batch.input_ids), 1)
        task_sum, reg_sum = Objective(transformers_model(model))(batch, len(batch.input_ids), self.regularizer)
        loss = task_sum / n_answer
        if self.regularizer.in_objective:
            loss = loss + self.lam * reg_sum / n_examples
        loss = loss * n_micro  # the Trainer divides by n_micro
        return (loss, None) if return_outputs else loss


class SelfDistillationTrainer(SelfDistillationMixin, Trainer):
    """``transformers.Trainer`` with the study's self-distillation; see ``SelfDistillationMixin``."""
