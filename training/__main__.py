"""``python -m training``: SLiCK classification, the study's splits, synthetic facts and training runs.

    python -m training slick --model embedded --relations P17,P36 --split dev --limit 300 --out data/slick
    python -m training splits --slick data/slick --out data/splits --known 8000 --unknown 8000
    python -m training synthetic --n 10000 --keys semantic --values real --out data/synthetic.jsonl
    python -m training run --known d/known.jsonl --unknown d/unknown.jsonl --held d/held.jsonl --out runs/sft

Errors a user can cause print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from probekit.errors import ProbekitError


def _slick(args) -> None:
    from probekit.models import EMBEDDED_NAME, load_model

    from .entityquestions import load_relation
    from .slick import PRESETS, Slick, category_shares, run_slick, with_overrides

    config = with_overrides(PRESETS[args.preset], runs=args.runs, shots=args.shots, samples=args.samples,
                            exemplars=args.exemplars, seed=args.seed, sample_all=args.sample_all or None)
    model, tokenizer = load_model(args.model, device=args.device)
    name = EMBEDDED_NAME if args.model == "embedded" else str(Path(args.model).resolve())
    relations = [r.strip() for r in args.relations.split(",") if r.strip()]
    pools = {r: load_relation(r, "train", args.data) for r in relations}
    slick = Slick(model, tokenizer, pools, config, batch_size=args.batch_size)
    print(f"SLiCK: {config.runs} runs × {config.shots} shots, {config.samples} samples/run "
          f"(T={config.temperature}, top-{config.top_k}), exemplar mode: {config.exemplars}")
    for rel in relations:
        facts = load_relation(rel, args.split, args.data)[: args.limit]
        start = time.perf_counter()
        records = run_slick(slick, facts, Path(args.out) / f"{rel}.{args.split}.jsonl", name)
        shares = ", ".join(f"{k} {v:.1%}" for k, v in category_shares(records).items())
        print(f"{rel} {args.split} ({len(records)} questions, {time.perf_counter() - start:.0f} s): {shares}")


def _read_slick(folder: Path, split: str) -> dict[str, list[dict]]:
    out = {}
    for f in sorted(folder.glob(f"*.{split}.jsonl")):
        out[f.name.split(".")[0]] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line]
    if not out:
        raise ProbekitError(f"no SLiCK results for split {split!r} in {folder}; run `python -m training slick` first")
    return out


def _splits(args) -> None:
    from .splits import SplitConfig, keep_relations, make_splits, write_splits

    config = SplitConfig(known=args.known, unknown=args.unknown, held=args.held, maybe_known=args.maybe_known,
                         weakly_known=args.weakly_known, min_highly_known=args.min_highly_known, mix=args.mix,
                         seed=args.seed)
    folder = Path(args.slick)
    train, dev = _read_slick(folder, "train"), _read_slick(folder, "dev")
    settings = sorted({f.read_text() for f in folder.glob("*.settings.json")})
    splits = make_splits(train, dev, config)
    manifest = write_splits(splits, args.out, config, keep_relations(dev, config.min_highly_known),
                            {"slick_settings": [json.loads(s) for s in settings], "slick_dir": str(folder.resolve())})
    print(f"relations kept: {', '.join(manifest['relations'])}; sizes: {manifest['sizes']}; wrote {args.out}")


def _synthetic(args) -> None:
    from probekit.models import load_tokenizer

    from probekit.io import write_jsonl

    from .synthetic import synthetic_facts

    start = time.perf_counter()
    facts = synthetic_facts(load_tokenizer(args.model), args.n, args.keys, args.values, args.seed, args.data)
    write_jsonl(args.out, facts)
    print(f"wrote {len(facts)} {args.keys}-key / {args.values}-value facts to {args.out} "
          f"in {time.perf_counter() - start:.1f} s")


def _run(args) -> None:
    import dataclasses
    import tomllib

    from .trainer import RunConfig, Trainer, TrainingError

    values = {}
    if args.config:
        try:
            values = tomllib.loads(Path(args.config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ProbekitError(f"cannot read config {args.config}: {exc}") from None
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(values) - fields
    if unknown:
        raise ProbekitError(f"unknown config key(s) {sorted(unknown)} in {args.config}")
    for name in fields:
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
    if "out" not in values:
        raise ProbekitError("give --out RUN_DIR (or out = ... in the config)")
    _init_distributed()
    try:
        Trainer(RunConfig(**values)).run()
    except TrainingError as exc:
        raise ProbekitError(str(exc)) from None


def _init_distributed() -> None:
    """Join the process group when started by torchrun (gloo on CPU, NCCL on GPU)."""
    import os

    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "an EntityQuestions dataset/ directory (default: the bundled copy)"

    p = sub.add_parser("slick", help="classify questions into SLiCK knowledge categories")
    p.add_argument("--model", default="embedded", help="checkpoint directory or 'embedded'")
    p.add_argument("--relations", default="P17,P36,P407,P495", help="comma-separated relation ids")
    p.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    p.add_argument("--limit", type=int, help="first N questions of each relation")
    p.add_argument("--preset", default="study", choices=["study", "gekhman"],
                   help="study: 20 runs × 3 shots, 1 sample/run; gekhman: 10 × 4 shots, 16 samples/run")
    p.add_argument("--runs", type=int)
    p.add_argument("--shots", type=int)
    p.add_argument("--samples", type=int, help="temperature samples per run")
    p.add_argument("--exemplars", choices=["independent", "shared"],
                   help="independent: exemplars per question and run; shared: per relation and run (KV reuse)")
    p.add_argument("--sample-all", action="store_true", help="sample every question, not only greedy-wrong ones")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", help=data_help)
    p.add_argument("--out", default="data/slick", help="folder for <relation>.<split>.jsonl (resumable)")
    p.set_defaults(func=_slick)

    p = sub.add_parser("splits", help="build D_Known, D_Unk, D_Held (+ MaybeKnown, WeaklyKnown) from SLiCK results")
    p.add_argument("--slick", required=True, help="folder with SLiCK results for train and dev")
    p.add_argument("--out", required=True)
    p.add_argument("--known", type=int, default=8000)
    p.add_argument("--unknown", type=int, default=8000)
    p.add_argument("--held", type=int, help="default: every HighlyKnown dev question")
    p.add_argument("--maybe-known", type=int)
    p.add_argument("--weakly-known", type=int)
    p.add_argument("--min-highly-known", type=float, default=0.30)
    p.add_argument("--mix", default="50/50", choices=["50/50", "only-known"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_splits)

    p = sub.add_parser("synthetic", help="synthetic P17 facts with semantic (token-mix) or UUID keys")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--keys", default="semantic", choices=["semantic", "uuid"])
    p.add_argument("--values", default="real", choices=["real", "semantic", "uuid"])
    p.add_argument("--model", default="embedded", help="whose tokenizer builds the token-mix names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help=data_help)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_synthetic)

    p = sub.add_parser("run", help="fine-tune and write a checkpoint series (SFT, freeze, self_distill, l2)",
                       description="Flags override --config run.toml. Run the same command again to resume; "
                                   "under torchrun --nproc-per-node N it trains with DDP, or with FSDP2 given "
                                   "--parallel fsdp.")
    p.add_argument("--config", help="TOML file with RunConfig fields")
    p.add_argument("--out", help="run directory")
    p.add_argument("--model", help="checkpoint directory or 'embedded' (default)")
    for name in ("train", "known", "unknown", "held", "maybe_known", "weakly_known", "new"):
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"JSONL facts: {name}")
    p.add_argument("--condition", choices=["sft", "freeze", "self_distill", "l2"])
    p.add_argument("--trainable", nargs="+", help="freeze: groups to train (attn q k v o ffn gate+up down all)")
    p.add_argument("--variant", choices=["full", "topk", "randomk"], help="self_distill variant")
    p.add_argument("--lam", type=float, help="λ of distillation / L2 (default 1)")
    p.add_argument("--tau", type=float, help="distillation temperature τ (default 0.5)")
    p.add_argument("--snapshot-epoch", dest="snapshot_epoch", type=int, help="i: teacher after i epochs on D_Known")
    p.add_argument("--teacher", help="'recipe' (default) or a checkpoint directory")
    p.add_argument("--k", type=int, help="top-k / random-k size (default 76)")
    p.add_argument("--lr", type=float, help="learning rate (default 5e-5)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="global batch size (default 16)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16-mixed", "bf16"])
    p.add_argument("--compile", action="store_true", default=None)
    p.add_argument("--keep", help="checkpoints to keep: all | every:K | last:N")
    p.add_argument("--eval-limit", dest="eval_limit", type=int, help="evaluate the first N facts of each set")
    p.add_argument("--probe", action="store_true", default=None, help="probe drift metrics every epoch")
    p.add_argument("--probe-layer", dest="probe_layer", type=int)
    p.add_argument("--device")
    p.add_argument("--parallel", choices=["auto", "ddp", "fsdp"],
                   help="under torchrun: ddp (auto) replicates the model, fsdp shards it (FSDP2)")
    p.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from probekit.cli import run_command

    return run_command(build_parser().parse_args(argv), "python -m training")


if __name__ == "__main__":
    sys.exit(main())
