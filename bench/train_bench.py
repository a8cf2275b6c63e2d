"""Training step throughput: our SFT and distillation steps vs the obvious baseline, same examples, same run.

From the repository root with ``PYTHONPATH=.`` (it imports the checkout's ``training``, not installed):

    python bench/train_bench.py                        # embedded SmolLM2-135M on CPU, fp32
    python bench/train_bench.py --arch qwen2.5-1.5b --device cuda --batch-sizes 64 256   # random-weight Qwen2.5-1.5B
    python bench/train_bench.py --arch qwen2.5-1.5b --device cuda --batch-sizes 256 --compile --only ours_sft_packed
    python bench/train_bench.py --arch tiny --steps 2 --rounds 1 --batch-sizes 8       # a smoke run on the CPU

Baseline: a plain loop over its own copy of the model — HF model called with ``labels`` (full-vocabulary logits at
every position), ``torch.optim.AdamW`` with the run's weight decay, the same precision as ours (``auto`` on GPU:
fp32 weights with bf16 autocast; ``bf16``: bf16 weights), every batch right-padded to one width; its distillation
step adds an online teacher (the trainer's own, in the student's precision) and a full-vocabulary KL at every
non-padded position. Ours: ``training.trainer.Trainer.step`` — LM head only at answer positions, fused AdamW on GPU
(on an fp32 master copy under ``bf16``), optionally ``torch.compile``; ``ours_sft`` one example per row padded to
the same width, ``*_packed`` examples packed into rows of ``--pack-tokens`` (a fixed row count per batch size, so
``--compile`` compiles once), top-k distillation against the cached teacher (k logits per position) or full
distillation chunked; batches are prepared one step ahead as in training (pinned, non-blocking copies). Neither
side reads anything back from the device inside the timed steps. Reports tokens/s (non-padded tokens), ratios, and
on GPU the model FLOPs utilisation (6·N·tokens/s over the card's dense bf16 peak, N = every parameter, the tied
embedding once).
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

from probekit.distillation.batches import collate, pack
from probekit.distillation.objective import Objective
from probekit.distillation.regularizers import NO_REGULARIZER
from probekit.entities import fact_to_record
from probekit.io import write_json
from probekit.models import embedded_model_dir
from archs import ARCHS, bench_tokenizer, random_config
from training.entityquestions import load_relation
from training.config import RunConfig
from training.run_regularizer import make_regularizer
from training.step_batch import step_batch
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


STEPS = ("baseline_sft", "ours_sft", "ours_sft_packed", "ours_distill_topk_packed", "ours_distill_full_packed",
         "baseline_distill_full")


def arguments():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["embedded", *ARCHS], default="embedded")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16], help="examples per step, each measured")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16-mixed", "bf16"])
    ap.add_argument("--pack-tokens", type=int, default=256, help="tokens per packed row")
    ap.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), help="the steps to time")
    ap.add_argument("--compile", action="store_true",
                    help="after the eager rounds, also time ours packed SFT at the largest batch size with the model "
                         "torch.compiled (compile time reported apart; the baseline stays eager)")
    ap.add_argument("--layers", type=int, help="override the layer count (a quick smoke test of --arch)")
    ap.add_argument("--profile", metavar="PATH",
                    help="also profile one round of ours (packed) and the baseline's SFT steps; write the tables here")
    ap.add_argument("--out")
    return ap.parse_args()


def setup(args, work: Path):
    """(trainer, model dir): a Trainer over P17 facts enough for the largest batch size × steps."""
    if args.arch == "embedded":
        model_dir = embedded_model_dir()
    else:
        from transformers import AutoModelForCausalLM

        model_dir = work / "model"
        with torch.device(args.device):  # initialised on the device: seconds on a GPU
            AutoModelForCausalLM.from_config(random_config(args.arch, args.layers)).save_pretrained(model_dir)
        bench_tokenizer().save_pretrained(model_dir)
    facts = random.Random(0).sample(load_relation("P17", "train"), max(args.batch_sizes) * args.steps)
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(fact_to_record(f)) + "\n" for f in facts))
    cfg = RunConfig(out=str(work / "run"), model=str(model_dir), train=str(data), condition="self_distill",
                    teacher=str(model_dir), variant="topk", k=76, batch_size=max(args.batch_sizes),
                    device=args.device, precision=args.precision)
    return Trainer(cfg), model_dir


def time_steps(fns: dict, tokens: int, rounds: int, device) -> dict[str, list[float]]:
    """tokens/s of each function per round, after one warm-up call each; rounds alternate the functions."""
    runs = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            runs[name].append(tokens / (time.perf_counter() - t))
    return runs


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="train-bench-") as work:  # the model and its teacher cache: scratch
        bench(args, Path(work))


def bench(args, work: Path) -> None:
    """Every side at every batch size (then compiled), written to ``args.out`` as each batch size ends."""
    device = torch.device(args.device)
    trainer, model_dir = setup(args, work)
    cfg = trainer.config
    model = trainer.load_model(model_dir)
    full = make_regularizer(dataclasses.replace(cfg, variant="full"), trainer.run_dir, base_path=trainer.base_path,
                            model=model, examples=trainer.train_examples, pad_id=trainer.pad_id, device=device)
    teacher = full.teacher  # the trainer's online teacher, in the student's precision; the baseline's too
    topk = trainer.make_regularizer(model)  # the cached teacher
    base_model = trainer.load_model(model_dir)  # the baseline's own copy: compiling ours must not speed it up
    objective = Objective(model)
    ours_opt = trainer.optimizer([p for p in model.parameters() if p.requires_grad])
    base_opt = torch.optim.AdamW(base_model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    base_model.train()
    width = max(len(e.input_ids) for e in trainer.train_examples)  # one shape for every unpacked batch
    result = {"arch": args.arch, "layers": model.config.num_hidden_layers, "device": args.device,
              "precision": trainer.precision, "compile": args.compile, "pack_tokens": args.pack_tokens,
              "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
              "batch_sizes": {}}
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name()
    for batch_size in args.batch_sizes:
        examples = trainer.train_examples[: batch_size * args.steps]
        batches = [examples[s : s + batch_size] for s in range(0, len(examples), batch_size)]
        rows = max(pack([len(e.input_ids) for e in b], args.pack_tokens)[1] for b in batches)

        def ours(reg, packed):
            # each batch prepared while the step before it runs on the device, as in training
            for b in (step_batch(b, 0, 1, trainer.pad_id, device, reg, width, args.pack_tokens if packed else None,
                                 rows) for b in batches):
                trainer.step(model, objective, ours_opt, b, reg)

        def base(distill):
            for b in batches:
                baseline_step(base_model, teacher, base_opt, collate(b, trainer.pad_id, width).to(device), device,
                              cfg.tau, distill, trainer.autocast)

        fns = {"baseline_sft": lambda: base(False), "ours_sft": lambda: ours(NO_REGULARIZER, False),
               "ours_sft_packed": lambda: ours(NO_REGULARIZER, True),
               "ours_distill_topk_packed": lambda: ours(topk, True),
               "ours_distill_full_packed": lambda: ours(full, True), "baseline_distill_full": lambda: base(True)}
        fns = {k: fns[k] for k in args.only}
        tokens = sum(len(e.input_ids) for e in examples)
        runs = time_steps(fns, tokens, args.rounds, device)
        result["batch_sizes"][batch_size] = measure = summary(runs, model, batch_size, len(batches), tokens,
                                                              width, rows * args.pack_tokens)
        print(json.dumps({batch_size: measure}, indent=2), flush=True)
        if args.profile:
            write_profile(f"{args.profile}.b{batch_size}.txt",
                          {k: fns[k] for k in ("ours_sft_packed", "baseline_sft") if k in fns}, device)
        if args.out:  # after each batch size: a run stopped later keeps what it measured
            write_json(args.out, result)
    if args.compile:
        result["compiled"] = compiled(model, fns["ours_sft_packed"], tokens, args.rounds, device)
        result["compiled"]["vs_eager"] = (result["compiled"]["tokens_per_s_median"]
                                          / measure["tokens_per_s_median"]["ours_sft_packed"])
        print(json.dumps({"compiled": result["compiled"]}, indent=2), flush=True)
        if args.out:
            write_json(args.out, result)


def compiled(model, step, tokens: int, rounds: int, device) -> dict:
    """ours packed SFT with ``model.base_model.compile()``: the first call's seconds (compiling), then tokens/s
    per round and how many graphs dynamo compiled (fixed row shapes: one forward, one backward)."""
    import torch._dynamo

    torch._dynamo.reset()
    model.base_model.compile()
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - start
    runs = time_steps({"compiled": step}, tokens, rounds, device)["compiled"]
    counters = dict(torch._dynamo.utils.counters["stats"])
    return {"first_call_seconds": first, "tokens_per_s_all": runs, "tokens_per_s_median": statistics.median(runs),
            "dynamo_stats": counters}


def summary(runs: dict, model, batch_size: int, steps: int, tokens: int, width: int, packed_tokens: int) -> dict:
    """Medians, the ratios the targets name and, on a GPU, MFU (6·N·tokens/s over the dense bf16 peak)."""
    tps = {k: statistics.median(v) for k, v in runs.items()}
    ratio = lambda a, b: tps[a] / tps[b] if a in tps and b in tps else None  # noqa: E731
    out = {"steps_per_round": steps, "tokens_per_step": tokens / steps, "padded_tokens_per_step": batch_size * width,
           "packed_tokens_per_step": packed_tokens, "tokens_per_s_median": tps, "tokens_per_s_all": runs,
           "ours_sft_packed_vs_baseline_sft": ratio("ours_sft_packed", "baseline_sft"),
           "ours_sft_vs_baseline_sft": ratio("ours_sft", "baseline_sft"),
           "ours_topk_step_cost_vs_ours_sft": ratio("ours_sft_packed", "ours_distill_topk_packed"),
           "ours_full_step_cost_vs_ours_sft": ratio("ours_sft_packed", "ours_distill_full_packed"),
           "baseline_full_distill_cost_vs_baseline_sft": ratio("baseline_sft", "baseline_distill_full")}
    name = torch.cuda.get_device_name() if next(model.parameters()).is_cuda else ""
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    if peak:
        n_params = sum(p.numel() for p in model.parameters())
        out["mfu"] = {k: 6 * n_params * v / peak for k, v in tps.items()}
    return out


if __name__ == "__main__":
    main()
