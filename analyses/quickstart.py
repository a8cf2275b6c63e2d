"""Quickstart: fine-tune the embedded model on a few facts, then probe the checkpoint series it wrote.

    python -m analyses.quickstart [--out runs/quickstart] [--facts 64] [--epochs 3]

Trains plain SFT with ``training.trainer`` on `--facts` P17 train questions (no knowledge filtering: this is a tour
of the tools, not a result), writes ``<out>/run/checkpoints/epoch-000..N``, then probes the series against the base
model with ``probekit.probe_series`` (``<out>/probes/probes.csv``) and plots RD (``figures/quickstart_rd.png``).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path

from probekit.entities import fact_to_record
from probekit.io import write_jsonl
from probekit.plot import plot_metric
from probekit.series import ProbeConfig, probe_series
from training.entityquestions import load_relation
from training.trainer import RunConfig, Trainer


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/quickstart", type=Path)
    ap.add_argument("--relation", default="P17")
    ap.add_argument("--facts", type=int, default=64, help="training facts (and held-out facts)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    train = random.Random(args.seed).sample(load_relation(args.relation, "train"), args.facts)
    held = random.Random(args.seed).sample(load_relation(args.relation, "dev"), args.facts)
    train_file, held_file = str(args.out / "train.jsonl"), str(args.out / "held.jsonl")
    write_jsonl(train_file, map(fact_to_record, train))
    write_jsonl(held_file, map(fact_to_record, held))
    run = args.out / "run"
    Trainer(RunConfig(out=str(run), train=train_file, unknown=train_file, held=held_file, epochs=args.epochs,
                      lr=args.lr, seed=args.seed)).run()
    df = probe_series(run, held=held, unknown=train, out=args.out / "probes", config=ProbeConfig(seed=args.seed))
    print(df.pivot_table(index="index", columns="metric", values="value").to_string(float_format="{:.4f}".format))
    title = f"RD at layer {df['layer'].iloc[0]}, SmolLM2-135M, {args.facts} {args.relation} facts"
    for path in plot_metric(df, "RD", Path("figures") / "quickstart_rd", title=title):
        print(f"wrote {path}")
    print(f"held-out facts: {held_file}; probe table: {args.out / 'probes' / 'probes.csv'}")


if __name__ == "__main__":
    main()
