"""Training step throughput: our SFT and distillation steps vs the obvious baseline, same batch, same run.

    python bench/train_bench.py                        # embedded SmolLM2-135M on CPU, fp32
    python bench/train_bench.py --arch qwen2.5-1.5b --device cuda --batch-size 64     # random-weight Qwen2.5-1.5B
    python bench/train_bench.py --arch qwen2.5-1.5b --device cuda --batch-size 64 --precision bf16 --compile
    python bench/train_bench.py --arch tiny --steps 2 --rounds 1 --batch-size 8       # a smoke run on the CPU

Baseline: a plain loop over its own copy of the model — HF model called with ``labels`` (full-vocabulary logits at
every position), ``torch.optim.AdamW`` with the run's weight decay, the same precision as ours (``auto`` on GPU:
fp32 weights with bf16 autocast; ``bf16``: bf16 weights); its distillation step adds an online teacher (the
trainer's own, in the student's precision) and a full-vocabulary KL at every non-padded position. Ours:
``training.trainer.Trainer.step`` — LM head only at answer positions, fused AdamW on GPU (on an fp32 master copy
under ``bf16``), optionally ``torch.compile``, top-k distillation against the cached teacher (k logits per
position), or full distillation chunked; its batches are prepared as in training (pinned, non-blocking copies).
Neither side reads anything back from the device inside the timed steps. Every batch of both sides is padded to
one width, so ``--compile`` compiles once. Reports tokens/s (non-padded tokens), ratios, and on GPU the model
FLOPs utilisation (6·N·tokens/s over the card's dense bf16 peak, N = every parameter, the tied embedding once).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from probekit.entities import fact_to_record
from probekit.io import write_json
from probekit.models import embedded_model_dir, load_tokenizer
from archs import ARCHS, random_config
from training.batches import collate
from training.entityquestions import load_relation
from training.config import RunConfig
from training.objective import Objective
from training.regularizers import NO_REGULARIZER, make_regularizer
from training.trainer import Trainer

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline_step(model, teacher, optimizer, batch, device, tau, distill, amp):
    with amp:
        labels = batch.input_ids.clone()
        labels[:] = -100
        labels[batch.answer_rows, batch.answer_cols + 1] = batch.targets
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels)
        loss = out.loss
        if distill:
            with torch.no_grad():
                t = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            mask = batch.attention_mask.bool()
            kl = F.kl_div(torch.log_softmax(out.logits[mask].float() / tau, -1),
                          torch.log_softmax(t[mask].float() / tau, -1), log_target=True, reduction="none").sum(-1)
            per_ex = torch.zeros(len(mask), device=device).index_add(0, mask.nonzero()[:, 0], kl) / mask.sum(-1)
            loss = loss + tau**2 * per_ex.mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def write_profile(path, fns, device) -> None:
    """torch.profiler tables (top operators by device and by CPU self time) of one call of each function."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    parts = []
    for name, fn in fns.items():
        sync(device)
        start = time.perf_counter()
        with profile(activities=activities) as prof:
            fn()
            sync(device)
        wall = time.perf_counter() - start
        events = prof.key_averages()
        parts.append(f"## {name}: {wall * 1e3:.1f} ms wall under the profiler\n")
        keys = (["self_device_time_total"] if device.type == "cuda" else []) + ["self_cpu_time_total"]
        parts += [f"### by {k}\n{events.table(sort_by=k, row_limit=20)}\n" for k in keys]
    Path(path).write_text("\n".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["embedded", *ARCHS], default="embedded")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16-mixed", "bf16"])
    ap.add_argument("--compile", action="store_true", help="torch.compile our model (the baseline stays eager)")
    ap.add_argument("--layers", type=int, help="override the layer count (a quick smoke test of --arch)")
    ap.add_argument("--profile", metavar="PATH",
                    help="also profile one round of ours and the baseline's SFT steps; write the tables here")
    ap.add_argument("--out")
    args = ap.parse_args()
    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="train-bench-"))
    if args.arch == "embedded":
        model_dir = embedded_model_dir()
    else:
        from transformers import AutoModelForCausalLM

        model_dir = work / "qwen"
        AutoModelForCausalLM.from_config(random_config(args.arch, args.layers)).save_pretrained(model_dir)
        load_tokenizer("embedded").save_pretrained(model_dir)
    facts = random.Random(0).sample(load_relation("P17", "train"), args.batch_size * args.steps)
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(fact_to_record(f)) + "\n" for f in facts))
    cfg = RunConfig(out=str(work / "run"), model=str(model_dir), train=str(data), condition="self_distill",
                    teacher=str(model_dir), variant="topk", k=76, batch_size=args.batch_size, device=args.device,
                    precision=args.precision, compile=args.compile)
    trainer = Trainer(cfg)
    model = trainer.load_model(model_dir)
    full = make_regularizer(dataclasses.replace(cfg, variant="full"), trainer.run_dir, base_path=trainer.base_path,
                            model=model, examples=trainer.train_examples, pad_id=trainer.pad_id, device=device)
    teacher = full.teacher  # the trainer's online teacher, in the student's precision; the baseline's too
    regularizers = {"sft": NO_REGULARIZER, "distill_topk": trainer.make_regularizer(model),  # the cached teacher
                    "distill_full": full}
    base_model = trainer.load_model(model_dir)  # the baseline's own copy: compiling ours must not speed it up
    objective = Objective(model)
    if args.compile:
        model.base_model.compile()
    ours_opt = trainer.optimizer([p for p in model.parameters() if p.requires_grad])
    base_opt = torch.optim.AdamW(base_model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = trainer.autocast
    batches = [trainer.train_examples[s : s + args.batch_size]
               for s in range(0, len(trainer.train_examples), args.batch_size)]
    tokens = sum(len(e.input_ids) for b in batches for e in b)
    width = max(len(e.input_ids) for e in trainer.train_examples)  # one shape for every batch

    def ours(kind):
        for b in batches:
            trainer.step(model, objective, ours_opt, trainer.prepare(b, regularizers[kind], width), regularizers[kind])

    def base(kind):
        for b in batches:
            baseline_step(base_model, teacher, base_opt, collate(b, trainer.pad_id, width)
                          .to(device), device, cfg.tau, kind != "sft", amp)

    runs = {k: [] for k in ("baseline_sft", "ours_sft", "ours_distill_topk", "ours_distill_full",
                            "baseline_distill_full")}
    fns = {"baseline_sft": lambda: base("sft"), "ours_sft": lambda: ours("sft"),
           "ours_distill_topk": lambda: ours("distill_topk"), "ours_distill_full": lambda: ours("distill_full"),
           "baseline_distill_full": lambda: base("distill_full")}
    model.train()
    base_model.train()
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(args.rounds):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            runs[name].append(tokens / (time.perf_counter() - t))
    tps = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "arch": args.arch, "layers": model.config.num_hidden_layers, "device": args.device,
        "precision": trainer.precision, "compile": args.compile, "batch_size": args.batch_size,
        "steps_per_round": len(batches), "tokens_per_step": tokens / len(batches),
        "padded_tokens_per_step": statistics.mean(len(b) * width for b in batches),
        "tokens_per_s_median": tps, "tokens_per_s_all": runs,
        "ours_sft_vs_baseline_sft": tps["ours_sft"] / tps["baseline_sft"],
        "ours_topk_step_cost_vs_ours_sft": tps["ours_sft"] / tps["ours_distill_topk"],
        "ours_full_step_cost_vs_ours_sft": tps["ours_sft"] / tps["ours_distill_full"],
        "baseline_full_distill_cost_vs_baseline_sft": tps["baseline_sft"] / tps["baseline_distill_full"],
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
    }
    if device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        n_params = sum(p.numel() for p in model.parameters())
        result["gpu"] = name
        if peak:
            result["mfu"] = {k: 6 * n_params * v / peak for k, v in tps.items()}
    print(json.dumps(result, indent=2))
    if args.profile:
        write_profile(args.profile, {k: fns[k] for k in ("ours_sft", "baseline_sft")}, device)
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
