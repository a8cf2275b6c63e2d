"""Quickstart: fine-tune the embedded model on a few facts, then probe the checkpoint series it wrote.

    python -m analyses.quickstart [--out runs/quickstart] [--facts 64] [--epochs 3]

Trains plain SFT with ``training.trainer`` on `--facts` P17 train questions (no knowledge filtering: this is a tour
of the tools, not a result), writes ``<out>/run/checkpoints/epoch-000..N``, then probes the series against the base
model with ``probekit.probe_series`` (``<out>/probes/probes.csv``) and plots RD (``figures/quickstart_rd.png``).
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

from probekit.config import add_arguments, from_namespace, option
from probekit.entities import fact_to_record
from probekit.io import write_jsonl
from probekit.plot import plot_metric, save_figure
from probekit.series import ProbeConfig, probe_series
from training.config import RunConfig
from training.entityquestions import load_relation
from training.run_dir import RunDir
from training.trainer import Trainer

from .outputs import FIGURES
from .analysis import HelpFormatter, cli

PROG = "python -m analyses.quickstart"


@dataclass
class Tour:
    """The quickstart's settings."""

    out: str = option("runs/quickstart", "folder of the facts, the run and the probe table")
    relation: str = option("P17", "EntityQuestions relation the facts come from")
    facts: int = option(64, "training facts (and as many held-out facts)")
    epochs: int = option(3, "training epochs")
    lr: float = option(5e-5, "learning rate (AdamW)")
    seed: int = option(0, "seed of the fact sample, training and the probe")
    figures_dir: str = option(str(FIGURES), "where the RD plot goes")


def parser() -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=HelpFormatter), Tour)


def main(argv=None) -> None:
    tour = from_namespace(Tour, parser().parse_args(argv))
    out = Path(tour.out)
    train = random.Random(tour.seed).sample(load_relation(tour.relation, "train"), tour.facts)
    held = random.Random(tour.seed).sample(load_relation(tour.relation, "dev"), tour.facts)
    train_file, held_file = str(out / "train.jsonl"), str(out / "held.jsonl")
    write_jsonl(train_file, map(fact_to_record, train))
    write_jsonl(held_file, map(fact_to_record, held))
    run = RunDir(out / "run")
    Trainer(RunConfig(out=str(run.path), train=train_file, unknown=train_file, held=held_file, epochs=tour.epochs,
                      lr=tour.lr, seed=tour.seed)).run()
    df = probe_series(run.path, held=held, unknown=train, out=out / "probes", config=ProbeConfig(seed=tour.seed))
    print(df.pivot_table(index="index", columns="metric", values="value").to_string(float_format="{:.4f}".format))
    title = f"RD at layer {df['layer'].iloc[0]}, SmolLM2-135M, {tour.facts} {tour.relation} facts"
    for path in save_figure(plot_metric(df, "RD", title=title), Path(tour.figures_dir) / "quickstart_rd"):
        print(f"wrote {path}")
    print(f"held-out facts: {held_file}; probe table: {out / 'probes' / 'probes.csv'}")


if __name__ == "__main__":
    cli(PROG, main)
