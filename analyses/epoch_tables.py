"""Per-epoch records (metrics.jsonl) → the tables behind the figures, and the forgetting measures read from them.

A table of a trained run (``run_accuracy``, ``split_accuracy``, ``run_interval``) averages its training seeds
(``Trained.replicates``; one seed: the records' numbers as they are) and carries the 95% interval of each number in
`lo` / `hi`: bootstrap over seeds, then over facts, one fact resample for every epoch (``probekit.stats``), so a
curve's band and a run's ΔD_Held (peak → last, the peak found inside each resample) share their resamples.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from probekit import stats
from probekit.errors import ProbekitError

from .runs import Trained

KEYS = ["run", "epoch", "split"]


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


def seed_frame(t: Trained, frame: Callable[[str, list[dict]], pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    """frame(label, records) of the run; with several seeds, its numeric columns averaged over them by `keys`."""
    if len(t.replicates) == 1:
        return frame(t.label, t.records)
    df = pd.concat([frame(t.label, r.records) for r in t.replicates], ignore_index=True)
    return df.groupby(keys, sort=False, as_index=False).mean(numeric_only=True)


def run_accuracy(t: Trained) -> pd.DataFrame:
    """run, epoch, split, accuracy (mean over seeds), lo, hi: the 95% band of every split's curve."""
    df = seed_frame(t, accuracy_frame, KEYS)
    if df.empty:
        return df
    epochs = [m["epoch"] for m in t.records]
    bands = []
    for split in dict.fromkeys(df["split"]):
        band = stats.seeds_curve_ci(outcomes(t, split))
        bands.append(pd.DataFrame({"run": t.label, "epoch": epochs, "split": split, "lo": band.lo, "hi": band.hi}))
    return df.merge(pd.concat(bands, ignore_index=True), how="left", on=KEYS)


def split_accuracy(trained: list[Trained], splits) -> pd.DataFrame:
    """The accuracy of every run on `splits` over epochs with its 95% band (run, epoch, split, accuracy, lo, hi)."""
    df = pd.concat([run_accuracy(t) for t in trained], ignore_index=True)
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


def outcomes(t: Trained, split: str = "held") -> np.ndarray:
    """[seeds, epochs, facts] bool: each fact's correctness per epoch at each of the run's training seeds."""
    matrices = [correct_matrix(r.records, split) for r in t.replicates]
    if len({m.shape for m in matrices}) > 1:
        raise ProbekitError(f"the seeds of {t.label} differ in epochs or {split} facts "
                            f"({', '.join(str(m.shape) for m in matrices)}); delete the odd run folders")
    return np.stack(matrices)


def forgetting(records: list[dict], split: str = "held") -> float:
    """ΔD_Held: percentage-point drop from the peak accuracy during training to the last epoch."""
    acc = [m["accuracy"][split] for m in records if split in m.get("accuracy", {})]
    return 100 * (max(acc) - acc[-1]) if acc else math.nan


def seed_mean(t: Trained, value: Callable[[list[dict]], float | None]) -> float | None:
    """value(records) of the run, averaged over its seeds (one seed: as it is; None if a seed has none)."""
    values = [value(r.records) for r in t.replicates]
    if len(values) == 1 or any(v is None for v in values):
        return values[0] if len(values) == 1 else None
    return float(np.mean(values))


def run_interval(t: Trained, statistic: str, split: str = "held") -> stats.Estimate:
    """The run's last-epoch accuracy ("last") or forgetting in pp ("forgetting") on `split`: the records' number
    (mean over seeds) with its 95% interval over seeds and facts (lo = hi = NaN where `split` is not evaluated)."""
    of_records = {"last": lambda records: last_accuracy(records, split),
                  "forgetting": lambda records: forgetting(records, split)}[statistic]
    value = seed_mean(t, of_records)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return stats.Estimate(value, math.nan, math.nan)
    ci = stats.seeds_curve_ci(outcomes(t, split), statistic)
    return stats.Estimate(value, ci.lo, ci.hi)


def last_accuracies(t: Trained) -> dict[str, float | None]:
    """The last epoch's accuracy on every evaluated split, averaged over the run's seeds."""
    return {split: seed_mean(t, lambda records: last_accuracy(records, split)) for split in t.records[-1]["accuracy"]}
