"""The training loop: SFT, frozen parameter groups, self-distillation and ℓ2, writing a checkpoint series into a
run directory (``run_dir`` lists what one holds).

Conditions: ``sft``; ``freeze`` (train only ``trainable`` groups); ``self_distill`` (λ, τ, ``variant`` full / topk
/ randomk with ``k``); ``l2`` (λ‖θ − θ_i‖²). The teacher / snapshot θ_i is, with ``teacher="recipe"`` (the study's),
the model after ``snapshot_epoch`` epochs of SFT on D_Known (those are epochs 1..i of the run, phase "snapshot";
i = 0 makes the base model the teacher), or any checkpoint path. Epochs count from the start of the run.

Running the same command again continues after the last complete epoch and ends with the same metrics as an
uninterrupted run. Under ``torchrun`` the global batch is split over processes (gloo on CPU, NCCL on GPU) and losses are
normalised by global counts, so the loss curve equals a single process's. ``parallel="ddp"`` (the default under
torchrun) replicates the model; ``parallel="fsdp"`` shards it with FSDP2 (``fully_shard`` per decoder block and on the
whole), for models whose weights, gradients and optimizer state do not fit one card. Either way the whole loss, LM head
included, is one module's forward (``Objective``), so the wrapper's hooks see every use of a weight. Under FSDP2 rank 0
evaluates and saves from a full copy of the weights gathered each epoch (inference needs far less memory than training).
"""
from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm.auto import tqdm

from probekit.decoding import GPU_BATCH
from probekit.distillation.batches import Example, epoch_batches, make_examples, pack
from probekit.distillation.objective import Objective
from probekit.distillation.regularizers import NO_REGULARIZER, Regularizer
from probekit.entities import read_facts
from probekit.errors import ProbekitError
from probekit.io import append_jsonl
from probekit.models import load_causal_lm, load_tokenizer, resolve_model_path

from . import checkpointing as ckpt
from .base_outcomes import BaseOutcomes
from .base_probe import epoch_states, run_probe
from .config import EVAL_SETS, RunConfig, check_same_settings
from .distributed import all_sum, barrier, full_weights, parallelize, world
from .evaluation import evaluate
from .freeze import set_trainable
from .master_weights import adamw
from .run_dir import RunDir
from .run_record import write_run_record
from .run_regularizer import make_regularizer
from .step_batch import StepBatch, step_batch

__all__ = ["RunConfig", "Trainer", "TrainingError"]


class TrainingError(ProbekitError):
    """The run cannot go on (a NaN/inf loss); the last good checkpoint is kept. A ProbekitError: every command line
    (``python -m training``, the analyses) prints it as one line."""


class Trainer:
    def __init__(self, config: RunConfig):
        config.validate()
        if config.out is None:
            raise ProbekitError("a run needs its folder: give out (--out RUN_DIR)")
        self.config = c = config
        self.rank, self.world = world()
        self.run_dir = RunDir(c.out)
        self.device = torch.device(c.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        self.base_path = resolve_model_path(c.model)
        self.tokenizer = load_tokenizer(self.base_path)
        self.pad_id = self.tokenizer.pad_token_id
        self.facts = {name: read_facts(getattr(c, name)) for name in (*EVAL_SETS, "train", "new") if getattr(c, name)}
        train = self.facts.get("train") or self.facts.get("known", []) + self.facts.get("unknown", [])
        self.train_examples = make_examples(self.tokenizer, train, c.prompt_format)
        self.known_examples = make_examples(self.tokenizer, self.facts.get("known", []), c.prompt_format)
        if c.batch_size % self.world:
            raise ProbekitError(f"batch size {c.batch_size} must divide evenly over {self.world} processes")
        precision = c.precision if c.precision != "auto" else ("bf16-mixed" if self.device.type == "cuda" else "fp32")
        self.precision = precision
        self.autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if precision == "bf16-mixed"
                         else nullcontext())
        if self.device.type == "cuda" and precision != "fp32":  # TF32 for what still runs in fp32 (asked: true fp32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        self.pack_tokens = self._row_tokens()
        self._full_copy = None  # FSDP2: rank 0's full copy of the weights for evaluation and saving

    def _row_tokens(self) -> int | None:
        """Tokens per packed row (--pack on, or auto on a GPU), or None: one example per row."""
        c = self.config
        if not (c.pack == "on" or (c.pack == "auto" and self.device.type == "cuda")):
            return None
        longest = max((len(e.input_ids) for e in self.train_examples + self.known_examples), default=1)
        return c.pack_tokens or max(256, -(-longest // 64) * 64)

    # phases: epochs 1..i train the snapshot on D_Known when the teacher recipe applies
    @property
    def recipe(self) -> bool:
        return self.config.condition in ("self_distill", "l2") and self.config.teacher == "recipe"

    def phase(self, epoch: int) -> str:
        if epoch == 0:
            return "base"
        return "snapshot" if self.recipe and epoch <= self.config.snapshot_epoch else "train"

    # --- model, optimizer, regulariser -----------------------------------------------------------------------------

    def load_model(self, path: Path) -> torch.nn.Module:
        """The model at `path` in the run's dtype and device, with only the trainable groups requiring grad."""
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        model = load_causal_lm(path, dtype=dtype, device=self.device)
        set_trainable(model, self.config.trainable if self.config.condition == "freeze" else ["all"])
        return model

    def optimizer(self, params) -> torch.optim.Optimizer:
        """AdamW (``master_weights.adamw``)."""
        return adamw(params, self.config.lr, self.config.weight_decay, self.device, self.precision == "bf16")

    @property
    def fsdp(self) -> bool:
        return self.world > 1 and self.config.parallel == "fsdp"

    def wrap(self, model) -> torch.nn.Module:
        """The Objective over `model`, compiled if asked, wrapped for several processes (DDP or FSDP2)."""
        objective = Objective(model)
        if self.config.compile:
            model.base_model.compile()
        return parallelize(objective, model, self.fsdp, self.device)

    def make_regularizer(self, model) -> Regularizer:
        """The condition's regulariser toward θ_i (loads the teacher; builds its cache on first use)."""
        return make_regularizer(self.config, self.run_dir, base_path=self.base_path, model=model,
                                examples=self.train_examples, pad_id=self.pad_id, device=self.device)

    def _rank0_view(self, model):
        """What rank 0 evaluates and saves: the model itself, or under FSDP2 a full copy gathered from the shards
        (every rank takes part; the others get None)."""
        if not self.fsdp:
            return model if self.rank == 0 else None
        weights = full_weights(model)
        if self.rank != 0:
            return None
        if self._full_copy is None:
            self._full_copy = self.load_model(self.base_path)
        self._full_copy.load_state_dict(weights)
        return self._full_copy

    # --- one step, one epoch -------------------------------------------------------------------------------------

    def prepare(self, global_batch: list[Example], regularizer: Regularizer = NO_REGULARIZER,
                width: int | None = None, rows: int | None = None) -> StepBatch:
        """This process's share of `global_batch`, on the device (pinned, non-blocking copies on a GPU): packed into
        `rows` rows when packing, else one example per row (padded to `width` if given)."""
        return step_batch(global_batch, self.rank, self.world, self.pad_id, self.device, regularizer, width,
                          self.pack_tokens, rows)

    def packed_rows(self, batches: list[list[Example]]) -> int | None:
        """Rows per step when packing: the most that any process's share of `batches` needs, so that every step
        has one shape (``--compile`` compiles once)."""
        if not self.pack_tokens:
            return None
        return max(pack([len(e.input_ids) for e in (b[r :: self.world] or b[:1])], self.pack_tokens)[1]
                   for b in batches for r in range(self.world))

    def step(self, model, objective, optimizer, local: StepBatch, regularizer: Regularizer = NO_REGULARIZER
             ) -> torch.Tensor:
        """One optimizer step on this process's share of a global batch → [global loss, global non-padded tokens]
        (float64, on the device; the caller reads them back in bulk: nothing here waits for the device)."""
        lam = self.config.lam
        n_answer, n_examples, n_tokens = all_sum(local.counts, self.device)
        with self.autocast:
            task_sum, reg_sum = objective(local.batch, local.examples, regularizer, local.teacher)
            if local.weight is not None:  # a stand-in example: the same collectives, no contribution
                task_sum, reg_sum = task_sum * local.weight, reg_sum * local.weight
            task = task_sum / n_answer.to(task_sum.dtype)
            reg = reg_sum / n_examples.to(reg_sum.dtype)
            loss = task + lam * reg if regularizer.in_objective else task
        # DDP and FSDP2 average gradients over processes: scale local sums so the result is the global mean
        loss = loss * self.world
        penalty = regularizer.parameter_loss(model)
        if penalty is not None:  # every process computes the whole penalty: not summed
            loss = loss + lam * penalty
            task_part, reg_part = all_sum(task.detach(), self.device), penalty.detach().double()
        else:
            task_part, reg_part = all_sum(torch.stack([task.detach().double(), reg.detach().double()]), self.device)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return torch.stack([task_part + lam * reg_part, n_tokens])

    def _train_epoch(self, epoch: int, model, objective, optimizer, regularizer: Regularizer
                     ) -> tuple[list[float], float]:
        """One epoch's steps (the snapshot phase trains on D_Known) → (loss per step, tokens/s). Each batch is
        collated and copied while the step before it runs; losses come back every ``log_every`` steps in one
        transfer and are checked for NaN/inf then (a run stops at most that many steps late)."""
        c = self.config
        model.train()
        phase = self.phase(epoch)
        examples = self.known_examples if phase == "snapshot" else self.train_examples
        losses, tokens, pending, start = [], 0, [], time.perf_counter()
        batches = epoch_batches(examples, c.batch_size, c.seed, epoch)
        rows = self.packed_rows(batches)
        bar = tqdm(total=len(batches), desc=f"epoch {epoch} ({phase})", disable=self.rank != 0, leave=False)
        # each batch is prepared (lazily) while the step before it runs
        for i, local in enumerate(self.prepare(b, regularizer, rows=rows) for b in batches):
            pending.append(self.step(model, objective, optimizer, local, regularizer))
            if len(pending) < c.log_every and i < len(batches) - 1:
                continue
            for value, n in torch.stack(pending).tolist():
                if not math.isfinite(value):
                    raise TrainingError(f"epoch {epoch}: loss became nan or inf; stopping with the last good "
                                        "checkpoint kept (lower the learning rate or use fp32)")
                losses.append(value)
                tokens += int(n)
            bar.update(len(pending))
            bar.set_postfix(loss=f"{value:.4f}", tok_s=f"{tokens / (time.perf_counter() - start):.0f}")
            pending = []
        return losses, tokens / (time.perf_counter() - start)

    # --- the run -------------------------------------------------------------------------------------------------

    def run(self) -> list[dict]:
        """Train (or resume, or read back a finished run) → the per-epoch records of metrics.jsonl."""
        c, run = self.config, self.run_dir
        run.path.mkdir(parents=True, exist_ok=True)
        done = ckpt.completed_epoch(run)
        if done >= 0 and run.record_file.exists():
            check_same_settings(run.record()["config"], c, run.path)
        if done >= c.epochs:
            return run.records()
        model, objective, optimizer = self._start(done)
        if self.rank == 0:  # the optimizer as resumed: a saved state keeps the implementation it was made with
            write_run_record(run, c, base_path=self.base_path, precision=self.precision, world_size=self.world,
                             parallel="fsdp" if self.fsdp else "ddp" if self.world > 1 else "none",
                             optimizer="AdamW, " + ("fused" if optimizer.param_groups[0].get("fused") else "foreach"))
        probe = self._probe() if c.probe and self.rank == 0 else None
        regularizer = None  # built at the first "train" epoch: the teacher may be this run's snapshot
        for epoch in range(done + 1, c.epochs + 1):
            phase = self.phase(epoch)
            if phase == "train" and regularizer is None:
                regularizer = self.make_regularizer(model)
            record = {"epoch": epoch, "phase": phase}
            if epoch > 0:
                record["losses"], record["tokens_per_s"] = self._train_epoch(
                    epoch, model, objective, optimizer, regularizer if phase == "train" else NO_REGULARIZER)
                record["train_loss"] = sum(record["losses"]) / len(record["losses"])
            self._end_epoch(model, optimizer, record, probe)
            barrier()
        return run.records()

    def _start(self, done: int):
        """(model, its wrapped Objective, optimizer): from the base model with every generator seeded from
        ``--seed`` (dropout, sampling), or from the state after epoch `done` with the generators it saved."""
        if done < 0:
            torch.manual_seed(self.config.seed)  # the CUDA generators too
        model = self.load_model(self.run_dir.state if done >= 0 else self.base_path)
        objective = self.wrap(model)  # FSDP2 swaps parameters for sharded ones: the optimizer comes after
        optimizer = self.optimizer([p for p in model.parameters() if p.requires_grad])
        if done >= 0:
            ckpt.restore_state(self.run_dir, model, optimizer, full_state_dict=self.fsdp)
        return model, objective, optimizer

    def _end_epoch(self, model, optimizer, record: dict, probe) -> None:
        """Evaluate, checkpoint (and the recipe's teacher), probe, prune, append the record, save the state."""
        c, run, epoch = self.config, self.run_dir, record["epoch"]
        view = self._rank0_view(model)  # collective under FSDP2, like the optimizer state below
        last = epoch == c.epochs  # nothing is left to resume: no optimizer state saved
        optimizer_state = None if last else ckpt.optimizer_state(model, optimizer)
        if self.rank != 0:
            return
        with self.autocast:  # decoding in the precision the model trains in
            record["accuracy"], record["correct"] = evaluate(
                view, self.tokenizer, self.facts, c.eval_limit,
                c.eval_batch_size or (64 if self.device.type == "cpu" else GPU_BATCH), c.prompt_format,
                BaseOutcomes(run.outcome_cache(c.cache_dir), self.base_path, device_type=self.device.type,
                             precision=self.precision) if epoch == 0 else None)  # θ0's: shared by the runs beside
        checkpoint = ckpt.save_pretrained(view, self.tokenizer, run.checkpoint(epoch))
        if self.recipe and epoch == c.snapshot_epoch > 0:
            ckpt.save_pretrained(view, self.tokenizer, run.teacher)
        if probe is not None:
            record["probe"] = probe.metrics(epoch_states(probe, checkpoint, epoch, run.probe_cache(c.cache_dir)))
        ckpt.prune(run, c.keep, epoch)
        append_jsonl(run.metrics_file, record)
        ckpt.save_state(run, checkpoint, optimizer_state, epoch, self.phase(epoch), last)
        print(_summary(record), flush=True)

    def _probe(self):
        return run_probe(self.config, self.facts, self.base_path, self.run_dir.probes, self.device, self.precision,
                         self.run_dir.probe_cache(self.config.cache_dir))


def _summary(record: dict) -> str:
    acc = " ".join(f"{k}={v:.3f}" for k, v in record.get("accuracy", {}).items())
    loss = f" loss={record['train_loss']:.4f}" if "train_loss" in record else ""
    return f"epoch {record['epoch']} ({record['phase']}){loss} {acc}"
