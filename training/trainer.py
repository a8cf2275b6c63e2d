"""The training loop: SFT, frozen parameter groups, self-distillation and L2, writing a checkpoint series.

One run directory holds everything::

    run.json                  full config, base model, versions, seeds, data hashes and manifests
    metrics.jsonl             one line per epoch: phase, losses per step, greedy EM per eval set (and per fact, as
                              a string of 0/1 in file order), tokens/s
    checkpoints/epoch-NNN/    HF safetensors + tokenizer (epoch 0 is the base model), kept per `keep`
    state/                    latest weights, optimizer and RNG state: the run resumes from here (once the last
                              epoch is done only trainer_state.json stays: the final checkpoint holds the weights)
    teacher/                  the frozen snapshot θ_i for self_distill / l2
    probes/                   per-epoch drift metrics when `probe` is on

Conditions: ``sft``; ``freeze`` (train only ``trainable`` groups); ``self_distill`` (λ, τ, ``variant`` full / topk
/ randomk with ``k``); ``l2`` (λ‖θ − θ_i‖²). The teacher / snapshot θ_i is, with ``teacher="recipe"`` (the study's),
the model after ``snapshot_epoch`` epochs of SFT on D_Known (those are epochs 1..i of the run, phase "snapshot";
i = 0 makes the base model the teacher), or any checkpoint path. Epochs count from the start of the run.

Running the same command again continues after the last complete epoch and ends with the same metrics as an
uninterrupted run. Under ``torchrun`` the global batch is split over processes (gloo on CPU, NCCL on GPU) and losses
are normalised by global counts, so the loss curve equals a single process's. ``parallel="ddp"`` (the default under
torchrun) replicates the model; ``parallel="fsdp"`` shards it with FSDP2 (``fully_shard`` per decoder block and on
the whole), for models whose weights, gradients and optimizer state do not fit one card. Either way the whole loss,
LM head included, is one module's forward (``Objective``), so the wrapper's hooks see every use of a weight. Under
FSDP2 rank 0 evaluates and saves from a full copy of the weights gathered each epoch (inference needs far less
memory than training).
"""
from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from tqdm.auto import tqdm

from probekit.entities import DEFAULT_PROMPT_FORMAT, read_facts
from probekit.checkpoints import weights_stamp
from probekit.errors import ProbekitError
from probekit.families import family_of
from probekit.io import write_json
from probekit.models import EMBEDDED, load_causal_lm, load_tokenizer, resolve_model_path

from . import losses as L
from .batches import Example, collate, epoch_batches, make_examples
from .decoding import AnswerDecoder
from .freeze import set_trainable
from .heads import final_hidden, head_logits, head_logits_at
from .slick import is_correct, qa_text
from .teacher_cache import build_teacher_cache

CONDITIONS = ("sft", "freeze", "self_distill", "l2")
RUNTIME = ("device", "parallel", "eval_batch_size")  # how a run computes, not what: free to differ on resume
EVAL_SETS = ("known", "unknown", "held", "maybe_known", "weakly_known")


class TrainingError(RuntimeError):
    """The run cannot go on (a NaN/inf loss); the last good checkpoint is kept."""


@dataclass
class RunConfig:
    """Everything a run depends on (recorded in run.json). Paths are JSONL fact files."""

    out: str
    model: str = EMBEDDED
    train: str | None = None  # the training mix; default: known ∪ unknown
    known: str | None = None
    unknown: str | None = None
    held: str | None = None
    maybe_known: str | None = None
    weakly_known: str | None = None
    new: str | None = None  # new/synthetic entities for the probe's MTD
    condition: str = "sft"
    trainable: list[str] = field(default_factory=lambda: ["all"])
    variant: str = "full"
    lam: float = 1.0
    tau: float = 0.5
    snapshot_epoch: int = 1
    teacher: str = "recipe"
    k: int = 76
    lr: float = 5e-5
    weight_decay: float = 0.0
    batch_size: int = 16
    epochs: int = 10
    seed: int = 0
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU; or fp32 / bf16-mixed / bf16
    compile: bool = False
    keep: str = "all"  # all | every:K | last:N
    eval_limit: int | None = None
    eval_batch_size: int = 64
    probe: bool = False
    probe_layer: int | None = None
    prompt_format: str = DEFAULT_PROMPT_FORMAT
    device: str | None = None
    parallel: str = "auto"  # under torchrun: auto (= ddp) | ddp | fsdp; how the work is split, not what is computed
    cache_dir: str | None = None  # teacher caches; default <out>/../.teacher-cache

    def validate(self) -> None:
        if self.condition not in CONDITIONS:
            raise ProbekitError(f"condition must be one of {', '.join(CONDITIONS)}, not {self.condition!r}")
        if self.variant not in ("full", "topk", "randomk"):
            raise ProbekitError(f"variant must be full, topk or randomk, not {self.variant!r}")
        if self.condition in ("self_distill", "l2") and self.teacher == "recipe":
            if self.snapshot_epoch > 0 and not self.known:
                raise ProbekitError("the teacher recipe trains on D_Known first: give --known (or --teacher PATH)")
            if not 0 <= self.snapshot_epoch < self.epochs:
                raise ProbekitError(f"snapshot epoch {self.snapshot_epoch} must be in 0..{self.epochs - 1} "
                                    "(0: the base model is the teacher)")
        if not (self.train or self.known or self.unknown):
            raise ProbekitError("no training data: give --train, or --known / --unknown")
        if self.parallel not in ("auto", "ddp", "fsdp"):
            raise ProbekitError(f"parallel must be auto, ddp or fsdp, not {self.parallel!r}")
        if self.parallel == "fsdp" and self.condition == "l2":
            raise ProbekitError("l2 is not supported under FSDP2 (its penalty reads whole parameters); use ddp")
        if not (self.keep == "all" or self.keep.split(":")[0] in ("every", "last")):
            raise ProbekitError(f"keep must be all, every:K or last:N, not {self.keep!r}")


# --- distributed helpers ---------------------------------------------------------------------------------------

def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_sum(x: float | torch.Tensor) -> float:
    t = torch.as_tensor(x, dtype=torch.float64)
    if _world()[1] > 1:
        dist.all_reduce(t)
    return float(t)


def _barrier() -> None:
    if _world()[1] > 1:
        dist.barrier()


# --- the trainer -----------------------------------------------------------------------------------------------

class Trainer:
    def __init__(self, config: RunConfig):
        config.validate()
        self.config = c = config
        self.rank, self.world = _world()
        self.out = Path(c.out)
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
        self._full_copy = None  # FSDP2: rank 0's full copy of the weights for evaluation and saving

    # phases: epochs 1..i train the snapshot on D_Known when the teacher recipe applies
    @property
    def recipe(self) -> bool:
        return self.config.condition in ("self_distill", "l2") and self.config.teacher == "recipe"

    def phase(self, epoch: int) -> str:
        if epoch == 0:
            return "base"
        return "snapshot" if self.recipe and epoch <= self.config.snapshot_epoch else "train"

    # --- model, optimizer, state ---------------------------------------------------------------------------------

    def _load_model(self, path: Path) -> torch.nn.Module:
        """The model at `path` in the run's dtype and device, with only the trainable groups requiring grad."""
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        model = load_causal_lm(path, dtype=dtype, device=self.device)
        set_trainable(model, self.config.trainable if self.config.condition == "freeze" else ["all"])
        return model

    def _optimizer(self, params) -> torch.optim.Optimizer:
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay, fused=fused)

    def _save_checkpoint(self, model, epoch: int) -> Path:
        target = self.out / "checkpoints" / f"epoch-{epoch:03d}"
        _save_dir(model, self.tokenizer, target)
        return target

    def _prune(self, epoch: int) -> None:
        kind, _, n = self.config.keep.partition(":")
        if kind == "all":
            return
        for d in sorted((self.out / "checkpoints").glob("epoch-*")):
            e = int(d.name.split("-")[1])
            if e in (0, epoch):
                continue
            drop = (kind == "every" and e % int(n) != 0) or (kind == "last" and e <= epoch - int(n))
            if drop:
                shutil.rmtree(d)

    def _save_state(self, model, optimizer_state: dict | None, epoch: int) -> None:
        tmp = self.out / "state.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp, safe_serialization=True)
        torch.save({"optimizer": optimizer_state, "rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                   tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "phase": self.phase(epoch)}))
        old = self.out / "state.old"
        shutil.rmtree(old, ignore_errors=True)
        if (self.out / "state").exists():
            os.replace(self.out / "state", old)
        os.replace(tmp, self.out / "state")
        shutil.rmtree(old, ignore_errors=True)

    # --- several processes ------------------------------------------------------------------------------------

    @property
    def fsdp(self) -> bool:
        return self.world > 1 and self.config.parallel == "fsdp"

    def _wrap(self, model) -> torch.nn.Module:
        """The Objective over `model`, compiled if asked, wrapped for several processes (DDP or FSDP2)."""
        objective = Objective(model, self.config.tau, self.config.variant)
        if self.config.compile:
            model.base_model.compile()
        if self.fsdp:
            from torch.distributed.fsdp import fully_shard

            for block in family_of(model).decoder_layers(model):
                fully_shard(block)
            fully_shard(objective)
        elif self.world > 1:
            objective = torch.nn.parallel.DistributedDataParallel(
                objective, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return objective

    def _optimizer_state(self, model, optimizer) -> dict | None:
        """The full optimizer state keyed by parameter name (gathered from the shards under FSDP2; every rank calls);
        None before the first step. (torch.distributed.checkpoint fills an empty state by stepping with zero
        gradients, which would count as an Adam step and change every later update.)"""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        if not optimizer.state:
            return None
        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def _load_optimizer_state(self, model, optimizer, state: dict | None) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        if state is not None:
            set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=self.fsdp))

    def _rank0_view(self, model):
        """What rank 0 evaluates and saves: the model itself, or under FSDP2 a full copy gathered from the shards
        (every rank takes part; the others get None)."""
        if not self.fsdp:
            return model if self.rank == 0 else None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank != 0:
            return None
        if self._full_copy is None:
            self._full_copy = self._load_model(self.base_path)
        self._full_copy.load_state_dict(weights)
        return self._full_copy

    def _release_state(self) -> None:
        """After the last epoch: keep only the epoch marker (weights and optimizer are gigabytes, no longer needed)."""
        for f in (self.out / "state").iterdir():
            if f.name != "trainer_state.json":
                f.unlink()

    def _completed_epoch(self) -> int:
        f = self.out / "state" / "trainer_state.json"
        return json.loads(f.read_text())["epoch"] if f.exists() else -1

    # --- evaluation ----------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def evaluate(self, model) -> tuple[dict[str, float], dict[str, str]]:
        """Greedy exact match on every eval set given (first `eval_limit` facts of each) → (accuracy per set,
        per-fact correctness per set as a string of '0'/'1' in file order)."""
        model.eval()
        decoder = AnswerDecoder(model, self.tokenizer, batch_size=self.config.eval_batch_size)
        acc, correct = {}, {}
        for name in EVAL_SETS:
            facts = self.facts.get(name, [])[: self.config.eval_limit]
            if facts:
                answers = decoder.decode([qa_text(f) for f in facts])
                hits = [is_correct(a[0], f.answers) for a, f in zip(answers, facts)]
                acc[name] = sum(hits) / len(facts)
                correct[name] = "".join("1" if h else "0" for h in hits)
        return acc, correct

    # --- one epoch -----------------------------------------------------------------------------------------------

    def step(self, model, objective, optimizer, local: list[Example], *, distill: bool = False, l2: bool = False,
             teacher=None, cache=None, snapshot=None) -> tuple[float, int]:
        """One optimizer step on this process's share of a global batch → (global loss, global tokens)."""
        c = self.config
        batch = collate(local, self.pad_id).to(self.device)
        n_answer = _all_sum(batch.num_answer_tokens)
        n_examples = _all_sum(len(local))
        with self.autocast:
            task_sum, reg_sum = objective(batch, len(local), teacher=teacher, cache=cache, distill=distill)
            task = task_sum / n_answer
            reg = reg_sum / n_examples
            loss = task + c.lam * reg if distill else task
        # DDP and FSDP2 average gradients over processes: scale local sums so the result is the global mean
        loss = loss * self.world
        if l2:
            reg = L.l2_to_snapshot({n: p for n, p in model.named_parameters() if p.requires_grad}, snapshot)
            loss = loss + c.lam * reg
        value = _all_sum(task.detach()) + c.lam * (float(reg.detach()) if l2 else _all_sum(reg.detach()))
        if not math.isfinite(value):
            raise TrainingError("loss became nan or inf; stopping with the last good checkpoint kept "
                                "(lower the learning rate or use fp32)")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return value, int(_all_sum(batch.attention_mask.sum()))

    def _train_epoch(self, model, objective, optimizer, examples: list[Example], epoch: int, teacher, cache,
                     snapshot):
        c = self.config
        model.train()
        phase = self.phase(epoch)
        kw = dict(distill=phase == "train" and c.condition == "self_distill",
                  l2=phase == "train" and c.condition == "l2", teacher=teacher, cache=cache, snapshot=snapshot)
        losses, tokens, start = [], 0, time.perf_counter()
        batches = epoch_batches(examples, c.batch_size, c.seed, epoch)
        bar = tqdm(batches, desc=f"epoch {epoch} ({phase})", disable=self.rank != 0, leave=False)
        for global_batch in bar:
            try:
                value, n = self.step(model, objective, optimizer, global_batch[self.rank :: self.world], **kw)
            except TrainingError as exc:
                raise TrainingError(f"epoch {epoch}: {exc}") from None
            losses.append(value)
            tokens += n
            bar.set_postfix(loss=f"{value:.4f}", tok_s=f"{tokens / (time.perf_counter() - start):.0f}")
        return losses, tokens / (time.perf_counter() - start)

    # --- the run ------------------------------------------------------------------------------------------------

    def run(self) -> list[dict]:
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        done = self._completed_epoch()
        record = self.out / "run.json"
        if done >= 0 and record.exists():
            defaults = asdict(RunConfig(out=c.out))
            stored = {**defaults, **json.loads(record.read_text())["config"]}  # fields added since take defaults
            before = {k: v for k, v in json.loads(json.dumps(stored, default=str)).items() if k not in RUNTIME}
            now = {k: v for k, v in json.loads(json.dumps(asdict(c), default=str)).items() if k not in RUNTIME}
            if before != now:
                changed = sorted(k for k in now if before.get(k) != now[k])
                raise ProbekitError(f"{self.out} holds a run with other settings ({', '.join(changed)}); "
                                    "resume with the same settings or choose another --out")
        if done >= c.epochs:
            return read_metrics(self.out)
        if self.rank == 0:
            self._write_record()
        model = self._load_model(self.out / "state" if done >= 0 else self.base_path)
        objective = self._wrap(model)  # FSDP2 swaps parameters for sharded ones: the optimizer comes after
        optimizer = self._optimizer([p for p in model.parameters() if p.requires_grad])
        if done >= 0:
            state = torch.load(self.out / "state" / "optimizer.pt", weights_only=True)
            self._load_optimizer_state(model, optimizer, state["optimizer"])
            torch.set_rng_state(state["rng"])
            if state["cuda_rng"] is not None:
                torch.cuda.set_rng_state_all(state["cuda_rng"])
        probe = self._probe() if c.probe and self.rank == 0 else None
        teacher = cache = snapshot = None
        for epoch in range(done + 1, c.epochs + 1):
            phase = self.phase(epoch)
            if phase == "train" and c.condition in ("self_distill", "l2") and teacher is None:
                teacher, cache, snapshot = self._teacher(model)
            record = {"epoch": epoch, "phase": phase}
            if epoch > 0:
                examples = self.known_examples if phase == "snapshot" else self.train_examples
                record["losses"], record["tokens_per_s"] = self._train_epoch(
                    model, objective, optimizer, examples, epoch, teacher, cache, snapshot)
                record["train_loss"] = sum(record["losses"]) / len(record["losses"])
            view = self._rank0_view(model)  # collective under FSDP2, like the optimizer state below
            optimizer_state = self._optimizer_state(model, optimizer)
            if self.rank == 0:
                record["accuracy"], record["correct"] = self.evaluate(view)
                ckpt = self._save_checkpoint(view, epoch)
                if self.recipe and epoch == c.snapshot_epoch > 0:
                    _save_dir(view, self.tokenizer, self.out / "teacher")
                if probe is not None:
                    record["probe"] = probe.metrics(probe.states(ckpt.name, ckpt))
                self._prune(epoch)
                _append_jsonl(self.out / "metrics.jsonl", record)
                self._save_state(view, optimizer_state, epoch)
                print(_summary(record), flush=True)
            _barrier()
        if self.rank == 0:
            self._release_state()
        return read_metrics(self.out)

    def _teacher(self, model):
        """The frozen teacher θ_i (model, top-k cache, or parameter snapshot for L2)."""
        c = self.config
        if c.teacher != "recipe":
            path = resolve_model_path(c.teacher)
        else:
            path = self.out / "teacher" if c.snapshot_epoch > 0 else self.base_path
        if c.condition == "l2":
            teacher_sd = {k: v for f in sorted(path.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
            names = {n for n, p in model.named_parameters() if p.requires_grad}
            return None, None, {n: teacher_sd[n].to(self.device) for n in names if n in teacher_sd}
        teacher = load_causal_lm(path, device=self.device)
        teacher.requires_grad_(False)
        if c.variant == "full":
            return teacher, None, None
        stamp = json.dumps(weights_stamp(path))
        root = Path(c.cache_dir) if c.cache_dir else self.out.parent / ".teacher-cache"
        cache = None
        if self.rank == 0:
            cache = build_teacher_cache(teacher, self.train_examples, self.pad_id, c.k, c.variant, c.seed, root, stamp)
        _barrier()
        if cache is None:
            cache = build_teacher_cache(teacher, self.train_examples, self.pad_id, c.k, c.variant, c.seed, root, stamp)
        return None, cache, None

    def _probe(self):
        from probekit.series import ProbeConfig, SeriesProbe

        c = self.config
        if "held" not in self.facts:
            raise ProbekitError("the probe callback needs held-out facts: give --held")
        return SeriesProbe(self.base_path, self.facts["held"], self.facts.get("unknown"), self.facts.get("new"),
                           self.out / "probes", ProbeConfig(layer=c.probe_layer, prompt_format=c.prompt_format),
                           require_pairs=False)

    def _write_record(self) -> None:
        import transformers

        c = self.config
        data = {}
        for name in (*EVAL_SETS, "train", "new"):
            path = getattr(c, name)
            if path:
                manifest = Path(path).parent / "manifest.json"
                data[name] = {"path": str(Path(path).resolve()), "sha256": _sha256(Path(path)),
                              "manifest": json.loads(manifest.read_text()) if manifest.exists() else None}
        write_json(self.out / "run.json", {
            "base_model": str(self.base_path.resolve()), "config": asdict(c), "precision": self.precision,
            "world_size": self.world, "parallel": "fsdp" if self.fsdp else "ddp" if self.world > 1 else "none",
            "data": data, "versions": {
                "python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__},
        })


def _full_kl(model, teacher, h_student, h_teacher, tau):
    with torch.no_grad():
        t = head_logits(teacher, h_teacher)
    return L.kl_rows(t, head_logits(model, h_student), tau)


class Objective(torch.nn.Module):
    """One batch's loss terms as a single forward, which DDP or FSDP2 wrap so their hooks see every use of a weight:
    (task loss summed over answer tokens, distillation KL summed per example as in DESIGN.md or 0). The LM head runs
    only where a loss needs logits: at answer positions, at the teacher's k ids, or chunk by chunk for full KL."""

    def __init__(self, lm, tau: float, variant: str):
        super().__init__()
        self.lm, self.tau, self.variant = lm, tau, variant

    def forward(self, batch, local_examples: int, *, teacher=None, cache=None, distill: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = final_hidden(self.lm, batch.input_ids, batch.attention_mask)  # [B, T, d]
        logits = head_logits(self.lm, hidden[batch.answer_rows, batch.answer_cols])  # [answer tokens, V]
        task = L.task_loss_sum(logits, batch.targets)
        if not distill:
            return task, torch.zeros((), device=hidden.device)
        return task, self._distill_sum(teacher, cache, batch, hidden, local_examples)

    def _distill_sum(self, teacher, cache, batch, hidden, local_examples: int) -> torch.Tensor:
        h = hidden[batch.seq_rows, batch.seq_cols]
        example = batch.seq_rows
        if self.variant == "full":  # online teacher, logits chunk by chunk and recomputed in backward
            with torch.no_grad():
                th = final_hidden(teacher, batch.input_ids, batch.attention_mask)[batch.seq_rows, batch.seq_cols]
            kl = torch.cat([
                torch.utils.checkpoint.checkpoint(_full_kl, self.lm, teacher, h[s : s + 256], th[s : s + 256],
                                                  self.tau, use_reentrant=False)
                for s in range(0, len(h), 256)
            ])
            return L.distill_sum_from_kl(kl, example, local_examples, self.tau)
        ids, t_logp = cache.lookup(batch.example_index, batch.seq_rows, batch.seq_cols)
        s_logits = head_logits_at(self.lm, h, ids.to(h.device))
        return L.distill_loss_sum(t_logp.to(h.device), s_logits, example, local_examples, self.tau)


def _save_dir(model, tokenizer, target: Path) -> None:
    tmp = target.parent / f".{target.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def _append_jsonl(path: Path, record: dict) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _summary(record: dict) -> str:
    acc = " ".join(f"{k}={v:.3f}" for k, v in record.get("accuracy", {}).items())
    loss = f" loss={record['train_loss']:.4f}" if "train_loss" in record else ""
    return f"epoch {record['epoch']} ({record['phase']}){loss} {acc}"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-epoch records of a run (the last record of an epoch wins, if one was written twice)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    by_epoch = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            by_epoch[rec["epoch"]] = rec
    return [by_epoch[e] for e in sorted(by_epoch)]
