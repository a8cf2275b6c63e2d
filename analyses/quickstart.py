"""Quickstart: fine-tune the embedded model on a few facts, then probe the checkpoint series it wrote.

    python -m analyses.quickstart [--out runs/quickstart] [--facts 64] [--epochs 3]

Writes ``<out>/run/epoch-000..N`` (epoch 0 is the base model), held-out and training facts as JSONL, the probe
table ``<out>/probes/probes.csv`` and ``figures/quickstart_rd.png``. The few-line SFT loop here (AdamW on the
answer tokens of ``Q: …\\nA: …``) only makes a small real series to probe; the study's trainer lives in
``training/`` and the study's figures in ``analyses/fig*``.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

import torch
from tqdm.auto import tqdm

from probekit.entities import fact_to_record
from probekit.io import write_json
from probekit.models import embedded_model_dir, load_model
from probekit.plot import plot_metric
from probekit.series import ProbeConfig, probe_series
from training.entityquestions import load_relation


def write_jsonl(path: Path, facts) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(fact_to_record(f)) + "\n" for f in facts), encoding="utf-8")
    return path


def sft_series(model, tokenizer, facts, run: Path, epochs: int, lr: float, batch_size: int, seed: int) -> None:
    """Plain SFT on the answer tokens; saves epoch-000 (untouched) .. epoch-NNN, skipping those already there."""
    torch.manual_seed(seed)
    examples = [(f"Q: {f.question}\nA:", f" {f.answer}") for f in facts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for epoch in range(epochs + 1):
        if epoch > 0:
            model.train()
            order = random.Random(seed + epoch).sample(examples, len(examples))
            bar = tqdm(range(0, len(order), batch_size), desc=f"epoch {epoch}", leave=False)
            for s in bar:
                prompts, answers = zip(*order[s : s + batch_size])
                full = tokenizer([p + a for p, a in zip(prompts, answers)], padding=True, padding_side="right",
                                 return_tensors="pt")
                labels = full.input_ids.clone()
                for i, p in enumerate(prompts):  # loss on the answer tokens only
                    labels[i, : len(tokenizer(p).input_ids)] = -100
                labels[full.attention_mask == 0] = -100
                loss = model(**full, labels=labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                bar.set_postfix(loss=f"{loss.item():.3f}")
            model.eval()
        target = run / f"epoch-{epoch:03d}"
        if not (target / "config.json").exists():
            tmp = run / f".epoch-{epoch:03d}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            tmp.rename(target)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/quickstart", type=Path)
    ap.add_argument("--relation", default="P17")
    ap.add_argument("--facts", type=int, default=64, help="training facts (and held-out facts)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    train = random.Random(args.seed).sample(load_relation(args.relation, "train"), args.facts)
    held = random.Random(args.seed).sample(load_relation(args.relation, "dev"), args.facts)
    unk_file = write_jsonl(args.out / "train.jsonl", train)
    held_file = write_jsonl(args.out / "held.jsonl", held)
    run = args.out / "run"
    if not (run / f"epoch-{args.epochs:03d}" / "config.json").exists():
        model, tokenizer = load_model("embedded")
        sft_series(model, tokenizer, train, run, args.epochs, args.lr, args.batch_size, args.seed)
    write_json(run / "run.json", {"base_model": str(embedded_model_dir()), "facts": str(unk_file),
                                  "epochs": args.epochs, "lr": args.lr, "seed": args.seed})
    df = probe_series(run, held=held, unknown=train, out=args.out / "probes", config=ProbeConfig(seed=args.seed))
    print(df.pivot_table(index="index", columns="metric", values="value").to_string(float_format="{:.4f}".format))
    for path in plot_metric(df, "RD", Path("figures") / "quickstart_rd",
                            title=f"RD at layer {df['layer'].iloc[0]}, SmolLM2-135M, "
                                  f"{args.facts} {args.relation} facts"):
        print(f"wrote {path}")
    print(f"held-out facts: {held_file}; probe table: {args.out / 'probes' / 'probes.csv'}")


if __name__ == "__main__":
    main()
