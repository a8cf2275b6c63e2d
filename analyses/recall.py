"""Stored vs recalled: is held-out knowledge lost under fine-tuning, or still in the states but no longer produced?

A multinomial logistic-regression probe (probekit.linear_probe) is fitted per relation on θ0's layer-l entity states
of EntityQuestions *training* questions (the held-out entities left out) to predict the gold answer; its C comes from
cross-validation at layer l on θ0 and is reused everywhere else. The probe then stays fixed while the
representations move: at every epoch it reads the held-out facts' cached layer-l states of the SFT,
self-distillation and Only Known runs, and a fact is *stored but not recalled* when the probe names its answer and
the model's greedy answer is wrong. Only held-out facts whose answer is one of the probe's classes are counted.

On every checkpoint kept on disk (θ0 and the last epoch in the quick profile), the same is done at every layer,
with the fixed probe and with a probe refitted on that checkpoint's own states of the training questions (same C):
when the fixed probe fails but the refit reads the answer, the answer is still linearly present and only the θ0
read-out has gone stale; when both fail, it is gone from that layer.

    python -m analyses.recall [--profile quick|paper|micro] [--pool N] ...

Writes figures/recall.{png,pdf,csv} (shares per run, epoch, layer and probe variant) and recall_facts.csv (per run,
epoch and held-out fact: model correct, layer-l probe correct, forgotten by the end).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from transformers import AutoConfig

from probekit.capture import Prober
from probekit.checkpoints import find_checkpoints, weights_stamp
from probekit.entities import DEFAULT_PROMPT_FORMAT, Fact, read_facts
from probekit.errors import ProbekitError
from probekit.families import check_layer, default_layer
from probekit.io import read_tensors, write_tensors
from probekit.interference import forgotten_facts, peak_epoch
from probekit.linear_probe import AnswerProbe, fit_answer_probe, recall_shares
from probekit.models import load_causal_lm, load_tokenizer, resolve_model_path
from probekit.series import read_states
from training.entityquestions import load_relation

from .common import (
    Timer, caption, correct_matrix, dry_run, ensure_run, parser, placeholder_data, prepare_splits, profile_from,
    run_dir,
    save_csv, standard_runs, write_outputs,
)

NAME = "recall"
LABELS = ["SFT", "Self-distillation", "Only Known"]
POOL = {"paper": 4000, "quick": 600, "micro": 60}  # probe training questions per relation
COLORS = {"SFT": "#1f77b4", "Self-distillation": "#ff7f0e", "Only Known": "#2ca02c"}


def probe_pool(relations, held: list[Fact], n: int) -> list[Fact]:
    """The first `n` training questions of each relation whose entity is not a held-out one."""
    held_entities = {(f.relation, f.entity) for f in held}
    pool = []
    for r in relations:
        pool += [f for f in load_relation(r, "train") if (r, f.entity) not in held_entities][:n]
    return pool


def layer_states(path: Path, tokenizer, facts: list[Fact], prompt_format: str, cache: Path) -> torch.Tensor:
    """Entity states of `facts` at every layer of the model at `path` → [L, N, d], cached in `cache`."""
    key = hashlib.sha256(json.dumps([str(path.resolve()), weights_stamp(path), prompt_format,
                                     [[f.question, f.entity_span] for f in facts]]).encode()).hexdigest()
    if (hit := read_tensors(cache, key)) is not None:
        return hit["states"]
    model = load_causal_lm(path)
    states = Prober(model, tokenizer, prompt_format=prompt_format).capture_layers(facts, progress=f"{path.name} layers")
    write_tensors(cache, {"states": states}, key)
    return states


def fit_probes(states: torch.Tensor, pool: list[Fact], C: dict[str, float] | None = None
               ) -> dict[str, AnswerProbe]:
    """One probe per relation on pool states [P, d]; C per relation by cross-validation unless given."""
    probes = {}
    for r in sorted({f.relation for f in pool}):
        rows = [i for i, f in enumerate(pool) if f.relation == r]
        probes[r] = fit_answer_probe(states[rows], [pool[i].answer for i in rows], C=(C or {}).get(r))
    return probes


def probe_correct(probes: dict[str, AnswerProbe], states: torch.Tensor, facts: list[Fact]) -> np.ndarray:
    """[N] bool: each fact's relation probe names one of its gold answers, from states [N, d]."""
    out = np.zeros(len(facts), bool)
    for r, probe in probes.items():
        rows = [i for i, f in enumerate(facts) if f.relation == r]
        if rows:
            out[rows] = probe.correct(states[rows], [facts[i].answers for i in rows])
    return out


def answerable(probes: dict[str, AnswerProbe], facts: list[Fact]) -> np.ndarray:
    """[N] bool: the fact's relation has a probe and one of its answers is a probe class."""
    return np.array([f.relation in probes and bool(probes[f.relation].knows([f.answers])[0]) for f in facts])


def main(argv=None) -> pd.DataFrame | None:
    ap = parser(NAME, __doc__)
    ap.add_argument("--pool", type=int, help="probe training questions per relation")
    args = ap.parse_args(argv)
    profile = profile_from(args)
    n_pool = args.pool or POOL[profile.name]
    if args.dry_run:
        runs = standard_runs(profile, placeholder_data())
        dry_run(NAME, profile, [runs[label] for label in LABELS])
        print(f"  probe: {n_pool} training questions per relation; every layer on θ0 and each kept checkpoint")
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        runs = standard_runs(profile, data)
        metrics = {label: ensure_run(runs[label], args.runs_dir) for label in LABELS}
        held = read_facts(data["held"])[: profile.eval_limit]
        pool = probe_pool(profile.relations, held, n_pool)
        base = resolve_model_path(profile.model)
        tokenizer = load_tokenizer(base)
        config = AutoConfig.from_pretrained(base)
        layer = check_layer(config, profile.layer or default_layer(config))
        fmt = runs["SFT"].config.get("prompt_format", DEFAULT_PROMPT_FORMAT)
        cache = args.runs_dir / "recall"
        theta0 = layer_states(base, tokenizer, pool + held, fmt, cache / f"base-{_stamp(base)}.safetensors")
        C = {r: p.C for r, p in fit_probes(theta0[layer - 1, : len(pool)], pool).items()}  # CV at layer l
        fixed = [fit_probes(s[: len(pool)], pool, C) for s in theta0]  # one fixed probe per layer
        counted = answerable(fixed[layer - 1], held)
        if not counted.any():
            raise ProbekitError(f"no held-out fact's answer is among the probe's answers; raise --pool ({n_pool})")
        rows, facts = [], []
        for label in LABELS:
            folder = run_dir(runs[label], args.runs_dir)
            forgotten = _forgotten(metrics[label], counted)
            summary, per_fact = _over_epochs(label, folder, metrics[label], fixed[layer - 1], held, counted,
                                             forgotten, layer)
            rows, facts = rows + summary, facts + per_fact
            rows += _over_layers(label, folder, metrics[label], fixed, C, pool, held, counted, forgotten, tokenizer,
                                 fmt, theta0)
    df = pd.DataFrame(rows)
    fig = _plot(df, layer, caption(profile, f"{int(counted.sum())} held-out facts, probe on {len(pool)} questions"))
    write_outputs(fig, df, NAME, args.figures_dir, timer.seconds)
    save_csv(pd.DataFrame(facts), f"{NAME}_facts", args.figures_dir)
    last = df[df["scope"] == "epochs"]
    last = last[last["epoch"] == last.groupby("run")["epoch"].transform("max")]
    for _, r in last.iterrows():
        print(f"{r['run']}: epoch {r['epoch']}, layer {layer}: stored but not recalled {r['stored_not_recalled']:.3f} "
              f"(probe {r['probe_accuracy']:.3f}, model {r['model_accuracy']:.3f}, n={r['n']}); of the "
              f"{r['forgotten']} facts it forgot, the probe reads {r['forgotten_stored']:.2f}")
    return df


def _stamp(path: Path) -> str:
    return hashlib.sha256(json.dumps(weights_stamp(path)).encode()).hexdigest()[:12]


def _row(scope, label, epoch, layer, variant, probe_ok, model_ok, forgotten) -> dict:
    """One CSV row; `forgotten` [n] marks the facts the run forgot (right at its peak epoch, wrong at the last):
    forgotten_stored is the share of those the probe still reads."""
    return {"scope": scope, "run": label, "epoch": epoch, "layer": layer, "variant": variant, "n": int(len(probe_ok)),
            **recall_shares(probe_ok, model_ok), "forgotten": int(forgotten.sum()),
            "forgotten_stored": float(probe_ok[forgotten].mean()) if forgotten.any() else float("nan")}


def _forgotten(metrics: list[dict], counted: np.ndarray) -> np.ndarray:
    """[n] bool over the counted held-out facts: right at the run's peak epoch, wrong at the last."""
    correct = correct_matrix(metrics)[:, counted]  # [E, n]
    return forgotten_facts(correct, peak_epoch(correct))[1]


def _model_correct(record: dict, counted: np.ndarray) -> np.ndarray:
    return correct_matrix([record])[0][counted]


def _over_epochs(label, folder, metrics, probes, held, counted, forgotten, layer) -> tuple[list[dict], list[dict]]:
    """The fixed layer-l probe at every epoch, on the run's cached probe states → (summary rows, per-fact rows)."""
    rows, facts = [], []
    kept = [f for f, c in zip(held, counted) if c]
    for m in metrics:
        states = read_states(folder / "probes", f"epoch-{m['epoch']:03d}")["held_states"][: len(held)]
        probe_ok, model_ok = probe_correct(probes, states, held)[counted], _model_correct(m, counted)
        rows.append(_row("epochs", label, m["epoch"], layer, "fixed", probe_ok, model_ok, forgotten))
        facts += [{"run": label, "epoch": m["epoch"], "entity": f.entity, "answer": f.answer, "model_correct": mo,
                   "probe_correct": po, "forgotten": fo} for f, mo, po, fo in zip(kept, model_ok, probe_ok, forgotten)]
    return rows, facts


def _over_layers(label, folder, metrics, fixed, C, pool, held, counted, forgotten, tokenizer, fmt, theta0
                 ) -> list[dict]:
    """Every layer on θ0 and on each checkpoint kept on disk: the fixed probe and a refitted one."""
    rows = []
    by_epoch = {m["epoch"]: m for m in metrics}
    for ckpt in find_checkpoints(folder):
        if ckpt.index not in by_epoch:
            continue
        states = theta0 if ckpt.index == 0 else layer_states(
            ckpt.path, tokenizer, pool + held, fmt, folder / "recall" / f"{ckpt.name}.safetensors")
        model_ok = _model_correct(by_epoch[ckpt.index], counted)
        for i, s in enumerate(states):
            held_states = s[len(pool):]
            rows.append(_row("layers", label, ckpt.index, i + 1, "fixed",
                             probe_correct(fixed[i], held_states, held)[counted], model_ok, forgotten))
            refit = fixed[i] if ckpt.index == 0 else fit_probes(s[: len(pool)], pool, C)
            rows.append(_row("layers", label, ckpt.index, i + 1, "refit",
                             probe_correct(refit, held_states, held)[counted], model_ok, forgotten))
    return rows


def _plot(df: pd.DataFrame, layer: int, note: str):
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    at_l = df[df["scope"] == "epochs"]
    sns.lineplot(data=at_l, x="epoch", y="stored_not_recalled", hue="run", palette=COLORS, marker="o", ax=axes[0])
    axes[0].set_title(f"Stored but not recalled (fixed probe, layer {layer})", fontsize=10)
    axes[0].set_ylabel("Share of held-out facts")
    for label, sub in at_l.groupby("run"):
        axes[1].plot(sub["epoch"], sub["probe_accuracy"], marker="o", color=COLORS.get(label), label=f"{label}: probe")
        axes[1].plot(sub["epoch"], sub["model_accuracy"], marker="s", ls="--", color=COLORS.get(label),
                     label=f"{label}: model")
    axes[1].set_title("Probe vs model accuracy on D_Held", fontsize=10)
    axes[1].set_xlabel("epoch")
    axes[1].legend(fontsize=7)
    sweep = df[df["scope"] == "layers"]
    last = sweep[sweep["epoch"] == sweep.groupby("run")["epoch"].transform("max")]
    sns.lineplot(data=last, x="layer", y="stored_not_recalled", hue="run", style="variant", palette=COLORS,
                 ax=axes[2])
    axes[2].axvline(layer, color="grey", lw=0.8, ls=":")
    axes[2].set_title("Last kept checkpoint, every layer", fontsize=10)
    axes[2].set_ylabel("Stored but not recalled")
    fig.text(0.5, -0.03, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
