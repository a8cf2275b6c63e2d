"""The drift metrics of a trained run item by item, from the states its per-epoch probe cached, with 95% bands.

The trainer's probe records only each metric's mean (metrics.jsonl "probe"), but it caches every model's captured
tensors (probes/states/<epoch>.safetensors). From them this module recomputes the per-item values whose mean each
metric is (``probekit.metrics``): RD and MTD per held-out fact, NS per fact of its subsample S, Rank-ρ, NTR and JSD
per (unknown, held) answer pair, with the probe's default settings (the trainer's: k, |S|, pair cap and seed). A
metric whose item mean does not reproduce the recorded value (other settings, missing states) gets no interval.
The per-item values are kept in the run (probes/items.safetensors, a few kB), so a run archived without its states
(results/) keeps its intervals and paired tests.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch
from scipy.stats import wilcoxon

from probekit import metrics
from probekit import stats
from probekit.drift_probe import ProbeConfig
from probekit.entities import read_facts
from probekit.errors import ProbekitError
from probekit.io import read_tensors, stable_hash, write_tensors
from probekit.pooled import pooled_mean
from training.config import RunConfig

from .comparisons import Paired, outcome_line
from .epoch_tables import probe_frame, seed_frame
from .runs import Trained

TOLERANCE = 1e-6  # relative: NS sums in another order


def _pairs(config: RunConfig, held_answers: list[str]) -> torch.Tensor | None:
    if not config.unknown:
        return None
    probe = ProbeConfig()
    return metrics.answer_pairs([f.answer for f in read_facts(config.unknown)], held_answers, probe.max_pairs,
                          probe.seed)


def _items(b: dict, s: dict, ns_rows: torch.Tensor, pairs: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per-item values of every metric the states allow: θ0's tensors `b`, a checkpoint's `s` (as DriftProbe)."""
    out = {"RD": metrics.rd_items(b["held_states"], s["held_states"]),
           "NS": metrics.ns_items(b["held_states"][ns_rows], s["held_states"][ns_rows])}
    new_key = "new_states" if "new_states" in s else "unk_states" if "unk_states" in s else None
    if new_key:
        out["MTD"] = metrics.mtd_items(b["held_states"], s["held_states"], b[new_key], s[new_key])
    if pairs is not None and "unk_at_base_topk" in s and len(pairs) == len(s["unk_at_base_topk"]):
        u, h = pairs[:, 0], pairs[:, 1]
        base_at_i = b["held_topk_values"][h]
        out["Rank-rho"] = metrics.spearman_rows(s["unk_at_base_topk"], base_at_i)
        out["NTR"] = metrics.ntr_rows(s["unk_topk"][u], s["held_topk"][h])
        out["JSD"] = metrics.jsd_rows(s["unk_at_base_topk"], base_at_i)
    return out


def _items_key(probed: list[dict]) -> str:
    """What the cached per-item values depend on: the probed epochs and the settings that choose the NS subsample
    and the answer pairs (the states are the run's own)."""
    probe = ProbeConfig()
    settings = {"ns_sample": probe.ns_sample, "max_pairs": probe.max_pairs, "seed": probe.seed}
    return stable_hash(["drift items v2", [m["epoch"] for m in probed], settings])


def _all_items(t: Trained, probed: list[dict]) -> dict[str, torch.Tensor]:
    """Metric → [epochs, items] for the `probed` records: from the run's item cache, else from its cached states
    (and then cached); empty when neither is there."""
    key = _items_key(probed)
    cached = read_tensors(t.dir.probe_items, key)
    if cached is not None or not probed:
        return cached or {}
    held = read_facts(t.run.config.held)
    ns_rows = metrics.ns_subsample(len(held), ProbeConfig().ns_sample, ProbeConfig().seed)
    pairs = _pairs(t.run.config, [f.answer for f in held])
    try:
        base = t.dir.probe_states(None)
        per_epoch = [_items(base, t.dir.probe_states(m["epoch"]), ns_rows, pairs) for m in probed]
    except ProbekitError:
        return {}
    items = {metric: torch.stack([e[metric] for e in per_epoch]) for metric in per_epoch[0]}
    try:
        write_tensors(t.dir.probe_items, items, key)
    except OSError:  # a read-only run folder: recomputed next time
        pass
    return items


def item_values(t: Trained) -> dict[str, np.ndarray]:
    """Metric → [epochs, items] for one seed's run (the epochs that were probed); only metrics whose item means
    reproduce the recorded values. Empty when the run's per-item values and states are both missing."""
    probed = [m for m in t.records if m.get("probe")]
    values = {}
    for metric, tensor in _all_items(t, probed).items():
        items = tensor.numpy()
        recorded = np.array([m["probe"].get(metric, np.nan) for m in probed])
        with np.errstate(invalid="ignore"):
            means = np.array([np.nanmean(row) if (~np.isnan(row)).any() else np.nan for row in items])
        if np.allclose(means, recorded, rtol=TOLERANCE, atol=1e-12, equal_nan=True):
            values[metric] = items
    return values


def drift_frame(t: Trained) -> pd.DataFrame:
    """run, epoch, metric, value (the recorded metric, mean over seeds), lo, hi (95% band over seeds and items:
    facts for RD, NS, MTD, pairs for Rank-ρ, NTR, JSD; NaN where the items are not available)."""
    df = seed_frame(t, probe_frame, ["run", "epoch", "metric"])
    if df.empty:
        return df.assign(lo=[], hi=[])
    per_seed = [item_values(r) for r in t.replicates]
    epochs = [m["epoch"] for m in t.records if m.get("probe")]
    bands = []
    for metric in dict.fromkeys(df["metric"]):
        if not all(metric in v for v in per_seed) or len({v[metric].shape for v in per_seed}) > 1:
            continue
        band = stats.seeds_curve_ci(np.stack([v[metric] for v in per_seed]))
        bands.append(pd.DataFrame({"run": t.label, "epoch": epochs, "metric": metric, "lo": band.lo, "hi": band.hi}))
    if not bands:
        return df.assign(lo=np.nan, hi=np.nan)
    return df.merge(pd.concat(bands, ignore_index=True), how="left", on=["run", "epoch", "metric"])


def missing_intervals(df: pd.DataFrame) -> str:
    """A note naming the metrics of a drift table that have no interval (empty when every one has)."""
    missing = sorted(set(df.loc[df["lo"].isna(), "metric"]))
    return (f"note: no per-item values for {', '.join(missing)} in the runs' cached probe states, so no interval"
            if missing else "")


PAIRED_OVER = {"RD": "held", "NS": "held", "MTD": "held", "Rank-rho": "unknown", "NTR": "unknown", "JSD": "unknown"}


def drift_differences(a: Trained, b: Trained, names=("RD",)) -> list[Paired]:
    """`a` − `b` in each drift metric of `names` at the last probed epoch, item by item on the same held-out facts
    (or answer pairs). One seed: the mean difference with its item-bootstrap interval and an exact-where-possible
    Wilcoxon signed-rank p; several: ``probekit.pooled`` over items × seeds. A metric is left out where the runs do
    not share its items or lack their states. Each run's per-item values are computed once for all the metrics."""
    x_all, y_all = [item_values(r) for r in a.replicates], [item_values(r) for r in b.replicates]
    out = []
    for metric in names:
        items = PAIRED_OVER[metric]
        if any(getattr(a.run.config, k) != getattr(b.run.config, k) for k in {"held", items}):
            continue
        x, y = [v.get(metric) for v in x_all], [v.get(metric) for v in y_all]
        if any(v is None for v in x + y) or len(x) != len(y) or len({v.shape for v in x + y}) > 1:
            continue
        x, y = np.stack(x), np.stack(y)  # [S, E, N]
        kind = "facts" if items == "held" else "pairs"
        what = f"{metric} at the last epoch"
        if len(x) > 1:
            try:
                pooled = pooled_mean(x[:, -1] - y[:, -1])
            except ValueError:  # fewer than 2 items defined at every seed: not a comparison
                continue
            out.append(Paired.of_pooled(a.label, b.label, what, pooled, "", kind))
            continue
        diff = stats.paired_difference(x[0], y[0], "last")
        p = float(wilcoxon(x[0, -1], y[0, -1], nan_policy="omit").pvalue)
        out.append(Paired(a.label, b.label, what, diff, p, x.shape[2], "", kind, test="Wilcoxon signed-rank"))
    return out


def drift_difference_lines(a: Trained, b: Trained, names=("RD",)) -> list[str]:
    """``drift_differences`` as lines with their verdicts."""
    return [outcome_line(c) for c in drift_differences(a, b, names)]
