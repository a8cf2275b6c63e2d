"""Per-epoch records (metrics.jsonl) → the tables behind the figures, and the forgetting measures read from them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from probekit.errors import ProbekitError

from .runs import Trained


def accuracy_frame(label: str, records: list[dict]) -> pd.DataFrame:
    """Long table: run, epoch, split, accuracy."""
    rows = [{"run": label, "epoch": m["epoch"], "split": s, "accuracy": a}
            for m in records for s, a in m.get("accuracy", {}).items()]
    return pd.DataFrame(rows)


def probe_frame(label: str, records: list[dict]) -> pd.DataFrame:
    """Long table: run, epoch, metric, value (the per-epoch probe's drift metrics)."""
    rows = [{"run": label, "epoch": m["epoch"], "metric": k, "value": v}
            for m in records for k, v in m.get("probe", {}).items()]
    return pd.DataFrame(rows)


def split_accuracy(trained: list[Trained], splits) -> pd.DataFrame:
    """The accuracy of every run on `splits` over epochs (run, epoch, split, accuracy)."""
    df = pd.concat([accuracy_frame(t.label, t.records) for t in trained], ignore_index=True)
    return df[df["split"].isin(splits)]


def last_accuracy(records: list[dict], split: str) -> float | None:
    """The last epoch's accuracy on `split` (None where the run does not evaluate it)."""
    return records[-1]["accuracy"].get(split)


def correct_matrix(records: list[dict], split: str = "held") -> np.ndarray:
    """[epochs, facts] bool: each fact's greedy correctness per epoch, from metrics.jsonl's per-fact record."""
    bits = [m.get("correct", {}).get(split) for m in records]
    if any(b is None for b in bits):
        raise ProbekitError("this run predates per-fact correctness in metrics.jsonl; delete its folder to train it "
                            "again")
    return np.array([[c == "1" for c in b] for b in bits], bool)


def forgetting(records: list[dict], split: str = "held") -> float:
    """ΔD_Held: percentage-point drop from the peak accuracy during training to the last epoch."""
    acc = [m["accuracy"][split] for m in records if split in m.get("accuracy", {})]
    return 100 * (max(acc) - acc[-1]) if acc else math.nan
