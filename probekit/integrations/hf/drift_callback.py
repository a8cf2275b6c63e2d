"""Drift probes inside a transformers ``Trainer`` or TRL ``SFTTrainer`` run, from the model in memory.

``DriftCallback(held, unknown, new, layer, every, out)`` captures θ0 once when training begins (before any
step; no checkpoint is written), then at every epoch end (``every="epoch"``) or every N optimizer steps
(``every=N``) captures the current model (eval mode, no grad, then back to train mode) and computes RD, NS, MTD,
Rank-ρ, NTR and JSD against θ0 exactly as ``probekit probe`` does, and (unless ``accuracy=False``) the greedy
exact match of every fact set (``accuracy_held``, ...: one greedy decode of each fact per measurement). Each
measurement is

- logged as ``drift/<metric>`` through ``trainer.log`` when the callback is attached with ``attach(trainer)``,
  so every reporter (TensorBoard, W&B, ...) receives it; given only as ``callbacks=[...]``, a callback cannot
  reach the trainer, so the values go to ``state.log_history`` (and trainer_state.json) only;
- appended to ``callback.table`` and, with ``out``, to ``out/probes.csv`` / ``probes.parquet`` (the columns of
  ``probekit probe``; name ``checkpoint-<step>``, checkpoint the folder the Trainer saves that step to, so the
  rows line up with a later probe of saved checkpoints; θ0 is ``checkpoint-0``).

θ0 is the model as training begins, so a run resumed with ``trainer.train(resume_from_checkpoint=...)`` (whose
weights are loaded before any callback runs) needs θ0 given: ``DriftCallback(..., base_model=...)`` (a model in
memory or a folder / repo id, as ``probekit.load_causal_lm`` takes); a resumed run keeps the rows its ``out``
already holds up to the step it resumes from.

A PEFT model is probed with its adapters active (the merged view). Only the main process measures. The model
runs as it does in training: under a Trainer's bf16 / fp16 mixed precision (TRL's default) accelerate makes its
forward autocast, so the values then carry that precision's noise (~1e-3) against an fp32 probe of the checkpoints.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback

from ... import metrics
from ...drift_probe import COLUMNS, DriftProbe, ProbeConfig, as_facts, base_view, evaluating, probed_module
from ...errors import ProbekitError
from ...series import write_table


class DriftCallback(TrainerCallback):
    """Measures drift from θ0 during training; see the module docstring.

    held / unknown / new: lists of Facts, or a file or ``datasets.Dataset`` of facts. layer: 1-based, default
    the middle layer. every: "epoch" or a number of optimizer steps. out: a folder for probes.csv / .parquet.
    tokenizer: default the Trainer's ``processing_class``. base_model: θ0 when it is not the model as training
    begins (a resumed run): a model or what ``probekit.load_causal_lm`` loads. `settings`: other ``ProbeConfig``
    fields (ns_sample, max_pairs, seed, jsd_log_base, prompt_format, batch_size, layers, accuracy).
    """

    def __init__(self, held, unknown=None, new=None, layer: int | None = None, every: str | int = "epoch",
                 out: str | Path | None = None, k: int = metrics.DEFAULT_K, *, tokenizer=None, run: str | None = None,
                 base_model=None, **settings):
        if every != "epoch" and not (isinstance(every, int) and every > 0):
            raise ProbekitError(f"every must be 'epoch' or a positive number of steps, not {every!r}")
        self.facts = (as_facts(held), as_facts(unknown), as_facts(new))
        self.config = ProbeConfig(layer=layer, k=k, **settings)
        self.every, self.tokenizer, self.run, self.base_model = every, tokenizer, run, base_model
        self.out = Path(out) if out is not None else None
        self.trainer = None
        self.rows: list[list] = []
        self._probe = self._prober = self._base = None

    def attach(self, trainer) -> "DriftCallback":
        """Add this callback to `trainer` and log through ``trainer.log``, so reporters see the metrics."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    @property
    def table(self) -> pd.DataFrame:
        """Every measurement so far, in the columns of probes.csv."""
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not state.is_world_process_zero or self._base is not None:
            return
        if state.global_step > 0 and self.base_model is None:
            raise ProbekitError(f"the Trainer resumed at step {state.global_step}, so the model is no longer θ0: "
                                "pass DriftCallback(..., base_model=...), the model or folder training started from")
        tokenizer = self.tokenizer or getattr(processing_class, "tokenizer", processing_class)
        if self.trainer is None:
            warnings.warn("DriftCallback was given as callbacks=[...]: its metrics reach state.log_history but not "
                          "the reporters; use DriftCallback(...).attach(trainer) to log them everywhere")
        if tokenizer is None:
            raise ProbekitError("DriftCallback needs a tokenizer: pass DriftCallback(tokenizer=...) or give the "
                                "Trainer processing_class=tokenizer")
        self._probe = DriftProbe(tokenizer, probed_module(model), *self.facts, config=self.config)
        self._prober = self._probe.prober(model)
        if self.base_model is None:
            with torch.no_grad(), evaluating(model):
                self._base = self._probe.capture(self._prober)
        else:
            self._base = self._capture_base(model)
        if state.global_step == 0:
            self._record(args, state, self._base, index=0)
        else:
            self._keep_earlier_rows(state.global_step)

    def _capture_base(self, model) -> dict[str, torch.Tensor]:
        """θ0's tensors from `base_model`: a model, or loaded (in the model's dtype, on its device) from a folder
        or repo id."""
        theta0 = self.base_model
        if isinstance(theta0, (str, Path)):
            from ...models import load_causal_lm

            lm = probed_module(model)
            theta0 = load_causal_lm(theta0, dtype=lm.dtype, device=lm.device)
        with torch.no_grad(), evaluating(theta0), base_view(theta0, model):
            return self._probe.capture(self._probe.prober(theta0))

    def _keep_earlier_rows(self, step: int) -> None:
        """A resumed run's table: the rows `out` holds for the steps up to `step` (where it resumes)."""
        if self.out is None or not (self.out / "probes.parquet").is_file():
            return
        earlier = pd.read_parquet(self.out / "probes.parquet")
        trained = earlier["name"].str.removeprefix("checkpoint-").astype(int)
        self.rows = earlier[trained <= step][COLUMNS].values.tolist()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every != "epoch" and state.global_step % self.every == 0:
            self._measure(args, state, model, index=state.global_step)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.every == "epoch":
            self._measure(args, state, model, index=round(state.epoch))

    def _measure(self, args, state, model, index: int) -> None:
        if not state.is_world_process_zero:
            return
        with torch.no_grad(), evaluating(model):
            states = self._probe.capture(self._prober, self._base)
        self._record(args, state, states, index)

    def _record(self, args, state, states: dict[str, torch.Tensor], index: int) -> None:
        values = self._probe.layer_metrics(self._base, states)
        name = f"checkpoint-{state.global_step}"
        run = self.run or Path(args.output_dir).name
        kind = "epoch" if self.every == "epoch" else "step"
        self.rows += [[run, str(Path(args.output_dir) / name), name, kind, index, layer, metric, value]
                      for layer, metric, value in values]
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            write_table(self.table, self.out)
        one_layer = self._probe.layer is not None
        self._log({f"drift/{metric}" if one_layer else f"drift/layer{layer}/{metric}": value
                   for layer, metric, value in values}, state)

    def _log(self, logs: dict[str, float], state) -> None:
        if self.trainer is not None:
            self.trainer.log(logs)
            return
        state.log_history.append({**logs, "epoch": state.epoch, "step": state.global_step})
