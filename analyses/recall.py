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

Writes figures/recall.{png,pdf,csv} (shares per run, epoch, layer and probe variant; the stored-but-not-recalled
share and the probe's and model's accuracy with 95% intervals over facts, and seeds with ``--seeds``, in `<share> lo`
/ `<share> hi`) and recall_facts.csv (per run, epoch and held-out fact, and seed where there are several: model
correct, layer-l probe correct, forgotten by the end).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from transformers import AutoConfig

from probekit import stats
from probekit.capture import Prober
from probekit.checkpoints import weights_stamp
from probekit.config import option
from probekit.entities import Fact, read_facts
from probekit.errors import ProbekitError
from probekit.families import check_layer, default_layer
from probekit.interference import forgotten_facts, peak_epoch
from probekit.io import read_tensors, stable_hash, write_tensors
from probekit.linear_probe import AnswerProbe, fit_answer_probe, recall_shares
from probekit.models import default_device, load_causal_lm, load_tokenizer, resolve_model_path
from training.entityquestions import load_relation

from .comparisons import paired_line
from .epoch_tables import correct_matrix
from .outputs import band_of, interval_cell, save_csv, write_outputs
from .plots import band, lines
from .runs import STUDY_CONDITIONS, Trained
from .analysis import Analysis, standard_plan

NAME = "recall"
LABELS = STUDY_CONDITIONS
POOL = {"paper": 4000, "standard": 1500, "quick": 600, "micro": 60}  # probe training questions per relation
COLORS = {"SFT": "#1f77b4", "Self-distillation": "#ff7f0e", "Only Known": "#2ca02c"}


@dataclass
class Options:
    pool: int = option(600, "probe training questions per relation (EntityQuestions train, held-out entities left "
                       "out)")


def probe_pool(relations, held: list[Fact], n: int) -> list[Fact]:
    """The first `n` training questions of each relation whose entity is not a held-out one."""
    held_entities = {(f.relation, f.entity) for f in held}
    pool = []
    for r in relations:
        pool += [f for f in load_relation(r, "train") if (r, f.entity) not in held_entities][:n]
    return pool


def layer_states(path: Path, tokenizer, facts: list[Fact], prompt_format: str, cache: Path) -> torch.Tensor:
    """Entity states of `facts` at every layer of the model at `path` → [L, N, d], cached in `cache`."""
    device = default_device()
    precision = [] if device == "cpu" else [device]  # on a GPU in bfloat16 (CPU: float32, keys as before)
    key = stable_hash([str(path.resolve()), weights_stamp(path), prompt_format,
                       [[f.question, f.entity_span] for f in facts], *precision], None)
    if (hit := read_tensors(cache, key)) is not None:
        return hit["states"]
    model = load_causal_lm(path, device=device)
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


@dataclass
class Setup:
    """What every run is measured with: the probe's training questions and the held-out facts, θ0's states of both
    [L, P + N, d], one fixed probe per layer (C per relation from cross-validation at `layer`), the held-out facts
    counted ([N] bool: an answer among the probe's classes), the tokenizer and prompt format for checkpoints."""

    pool: list[Fact]
    held: list[Fact]
    theta0: torch.Tensor
    fixed: list[dict[str, AnswerProbe]]
    C: dict[str, float]
    counted: np.ndarray
    layer: int
    tokenizer: object
    prompt_format: str


def setup(ctx, trained: list[Trained]) -> Setup:
    """θ0's states and the fixed probes, fitted on the base model (cached under the runs folder)."""
    profile, config = ctx.profile, trained[0].run.config
    held = read_facts(config.held)[: profile.run.eval_limit]
    pool = probe_pool(profile.relations, held, ctx.options.pool)
    base = resolve_model_path(profile.model)
    tokenizer = load_tokenizer(base)
    model_config = AutoConfig.from_pretrained(base)
    layer = check_layer(model_config, profile.probe.layer or default_layer(model_config))
    fmt = config.prompt_format
    cache = ctx.runs_dir / "recall" / f"base-{stable_hash(weights_stamp(base))}.safetensors"
    theta0 = layer_states(base, tokenizer, pool + held, fmt, cache)
    C = {r: p.C for r, p in fit_probes(theta0[layer - 1, : len(pool)], pool).items()}  # CV at layer l
    fixed = [fit_probes(s[: len(pool)], pool, C) for s in theta0]  # one fixed probe per layer
    counted = answerable(fixed[layer - 1], held)
    if not counted.any():
        raise ProbekitError(f"no held-out fact's answer is among the probe's answers; raise --pool "
                            f"({ctx.options.pool})")
    return Setup(pool, held, theta0, fixed, C, counted, layer, tokenizer, fmt)


def render(ctx, trained: list[Trained]) -> pd.DataFrame:
    s = setup(ctx, trained)
    rows, facts = [], []
    for t in trained:
        forgotten = np.stack([_forgotten(r.records, s.counted) for r in t.replicates])  # [seeds, n]
        summary, per_fact = _over_epochs(t, s, forgotten)
        rows, facts = rows + summary, facts + per_fact
        rows += _over_layers(t, s, forgotten)
    df = pd.DataFrame(rows)
    fig = _plot(df, s.layer, ctx.caption(f"{int(s.counted.sum())} held-out facts, probe on {len(s.pool)} "
                                                  "questions"))
    write_outputs(fig, df, NAME, ctx.figures_dir, ctx.seconds())
    save_csv(pd.DataFrame(facts), f"{NAME}_facts", ctx.figures_dir)
    last = df[df["scope"] == "epochs"]
    last = last[last["epoch"] == last.groupby("run")["epoch"].transform("max")]
    for _, r in last.iterrows():
        cell = lambda c: interval_cell(r[c], r[f"{c} lo"], r[f"{c} hi"])  # noqa: E731
        print(f"{r['run']}: epoch {r['epoch']}, layer {s.layer}: stored but not recalled {cell('stored_not_recalled')} "
              f"(probe {cell('probe_accuracy')}, model {cell('model_accuracy')}, n={r['n']}); of the "
              f"{r['forgotten']} facts it forgot, the probe reads {r['forgotten_stored']:.2f}")
    print("\n".join(_against_first(pd.DataFrame(facts), [t.label for t in trained])))
    return df


def _against_first(facts: pd.DataFrame, labels: list[str]) -> list[str]:
    """Each later run against the first on the share stored but not recalled at the last epoch, paired by fact."""
    last = facts[facts["epoch"] == facts["epoch"].max()]
    first, *others = labels
    return [paired_line(label, first, _stored_not_recalled(last, label), _stored_not_recalled(last, first), "last",
                        "stored but not recalled at the last epoch") for label in others]


def _stored_not_recalled(facts: pd.DataFrame, label: str) -> np.ndarray:
    """[seeds, 1, n] bool: the probe reads the fact and the model gets it wrong, per seed (the per-fact rows)."""
    rows = facts[facts["run"] == label]
    per_seed = [g for _, g in rows.groupby("seed")] if "seed" in rows else [rows]
    return np.stack([(g["probe_correct"] & ~g["model_correct"]).to_numpy(bool)[None] for g in per_seed])


def _row(scope, label, epoch, layer, variant, probe_ok, model_ok, forgotten) -> dict:
    """One CSV row from [seeds, n] bool arrays over the counted held-out facts: ``recall_shares`` averaged over the
    seeds, the main shares followed by their 95% interval over seeds and facts; `forgotten` marks the facts
    each seed's run forgot (right at its peak epoch, wrong at the last): forgotten_stored is the share of those the
    probe still reads."""
    shares = [{**recall_shares(p, m), "forgotten": int(f.sum()),
               "forgotten_stored": float(p[f].mean()) if f.any() else float("nan")}
              for p, m, f in zip(probe_ok, model_ok, forgotten)]
    values = shares[0] if len(shares) == 1 else {k: float(pd.Series([x[k] for x in shares]).mean()) for k in shares[0]}
    items = {"stored_not_recalled": probe_ok & ~model_ok, "probe_accuracy": probe_ok, "model_accuracy": model_ok}
    row = {"scope": scope, "run": label, "epoch": epoch, "layer": layer, "variant": variant,
           "n": int(probe_ok.shape[1])}
    for name, value in values.items():
        row[name] = value
        if name in items:
            est = stats.seeds_curve_ci(items[name][:, None, :])
            row[f"{name} lo"], row[f"{name} hi"] = float(est.lo[0]), float(est.hi[0])
    return row


def _forgotten(records: list[dict], counted: np.ndarray) -> np.ndarray:
    """[n] bool over the counted held-out facts: right at the run's peak epoch, wrong at the last."""
    correct = correct_matrix(records)[:, counted]  # [E, n]
    return forgotten_facts(correct, peak_epoch(correct))[1]


def _model_correct(record: dict, counted: np.ndarray) -> np.ndarray:
    return correct_matrix([record])[0][counted]


def _over_epochs(t: Trained, s: Setup, forgotten: np.ndarray) -> tuple[list[dict], list[dict]]:
    """The fixed layer-l probe at every epoch, on each seed's cached probe states → (summary rows, per-fact rows;
    these with a seed column where there are several seeds)."""
    rows, facts = [], []
    kept = [f for f, c in zip(s.held, s.counted) if c]
    several = len(t.replicates) > 1
    for i, m in enumerate(t.records):
        probe_ok = np.stack([probe_correct(s.fixed[s.layer - 1], r.dir.probe_states(m["epoch"])["held_states"]
                                           [: len(s.held)], s.held)[s.counted] for r in t.replicates])
        model_ok = np.stack([_model_correct(r.records[i], s.counted) for r in t.replicates])
        rows.append(_row("epochs", t.label, m["epoch"], s.layer, "fixed", probe_ok, model_ok, forgotten))
        for r, po, mo, fo in zip(t.replicates, probe_ok, model_ok, forgotten):
            seed = {"seed": r.seed} if several else {}
            facts += [{"run": t.label, **seed, "epoch": m["epoch"], "entity": f.entity, "answer": f.answer,
                       "model_correct": a, "probe_correct": b, "forgotten": c} for f, a, b, c in zip(kept, mo, po, fo)]
    return rows, facts


def _over_layers(t: Trained, s: Setup, forgotten: np.ndarray) -> list[dict]:
    """Every layer on θ0 and on each checkpoint kept on disk (at every seed): the fixed probe and a refitted one."""
    rows = []
    for k, m in enumerate(t.records):
        paths = [r.dir.checkpoint(m["epoch"]) for r in t.replicates]
        if not all((path / "config.json").is_file() for path in paths):  # not kept
            continue
        states = [s.theta0 if m["epoch"] == 0 else layer_states(
            path, s.tokenizer, s.pool + s.held, s.prompt_format, r.dir.path / "recall" / f"{path.name}.safetensors")
            for r, path in zip(t.replicates, paths)]  # per seed [L, P + N, d]
        model_ok = np.stack([_model_correct(r.records[k], s.counted) for r in t.replicates])
        for i in range(len(states[0])):
            held = [at[i][len(s.pool):] for at in states]
            refits = [s.fixed[i] if m["epoch"] == 0 else fit_probes(at[i][: len(s.pool)], s.pool, s.C)
                      for at in states]
            for variant, probes in (("fixed", [s.fixed[i]] * len(states)), ("refit", refits)):
                probe_ok = np.stack([probe_correct(p, h, s.held)[s.counted] for p, h in zip(probes, held)])
                rows.append(_row("layers", t.label, m["epoch"], i + 1, variant, probe_ok, model_ok, forgotten))
    return rows


def _plot(df: pd.DataFrame, layer: int, note: str):
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    at_l = df[df["scope"] == "epochs"]
    lines(axes[0], band_of(at_l, "stored_not_recalled"), "epoch", "stored_not_recalled", "run", palette=COLORS)
    axes[0].set_title(f"Stored but not recalled (fixed probe, layer {layer})", fontsize=10)
    axes[0].set_ylabel("Share of held-out facts")
    for label, sub in at_l.groupby("run"):
        for column, marker, ls in (("probe_accuracy", "o", "-"), ("model_accuracy", "s", "--")):
            axes[1].plot(sub["epoch"], sub[column], marker=marker, ls=ls, color=COLORS.get(label),
                         label=f"{label}: {column.split('_')[0]}")
            band(axes[1], sub["epoch"], sub[f"{column} lo"], sub[f"{column} hi"], COLORS.get(label))
    axes[1].set_title("Probe vs model accuracy on D_Held", fontsize=10)
    axes[1].set_xlabel("epoch")
    axes[1].legend(fontsize=7)
    sweep = df[df["scope"] == "layers"]
    last = sweep[sweep["epoch"] == sweep.groupby("run")["epoch"].transform("max")]
    lines(axes[2], band_of(last, "stored_not_recalled"), "layer", "stored_not_recalled", "run", palette=COLORS,
          style="variant", marker="")
    axes[2].axvline(layer, color="grey", lw=0.8, ls=":")
    axes[2].set_title("Last kept checkpoint, every layer", fontsize=10)
    axes[2].set_ylabel("Stored but not recalled")
    fig.text(0.5, -0.03, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig


ANALYSIS = Analysis(NAME, __doc__, standard_plan(LABELS), render, options=Options,
                    defaults={preset: {"pool": n} for preset, n in POOL.items()},
                    describe=lambda ctx: f"  probe: {ctx.options.pool} training questions per relation; every layer "
                                         "on θ0 and each kept checkpoint")
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
