"""What every analysis shares: profiles, data preparation, runs reused by config hash, figure and table output.

A *profile* fixes the scale: ``quick`` (default) runs on the embedded SmolLM2-135M on CPU; ``paper`` uses the study's
settings for a GPU (Qwen2.5-1.5B given with ``--model PATH``); ``micro`` is a plumbing test for tiny random models
(no SLiCK: facts are assigned to splits without asking the model what it knows). Every field is also a flag.

Data (SLiCK results, splits, synthetic facts) and training runs live under ``--runs-dir`` (default ``runs/``), each
in a folder named by a hash of everything it depends on, so figures that need the same run share it, a second
invocation reuses it, and a half-finished run resumes.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from probekit.entities import fact_to_record
from probekit.errors import ProbekitError
from probekit.io import atomic_write, write_jsonl, write_text
from probekit.models import EMBEDDED, EMBEDDED_NAME, load_model, load_tokenizer, resolve_model_path
from training.entityquestions import load_relation
from training.slick import Slick, SlickConfig, category_shares, run_slick
from training.splits import SplitConfig, keep_relations, make_splits, write_splits
from training.synthetic import synthetic_facts
from training.trainer import RunConfig, Trainer, read_metrics

FIGURES = Path("figures")
SPLIT_COLORS = {"known": "#005b8f", "unknown": "#dc7626", "held": "#cc78a8"}  # the study's D_Known, D_Unk, D_Held
SPLIT_LABELS = {"known": "D_Known", "unknown": "D_Unk", "held": "D_Held", "maybe_known": "MaybeKnown (held-out)",
                "weakly_known": "WeaklyKnown (held-out)"}


@dataclass(frozen=True)
class Profile:
    """The scale of an analysis. Question counts are per relation; sizes cap the splits."""

    name: str
    model: str = EMBEDDED
    relations: tuple[str, ...] = ("P17", "P36", "P407", "P495")
    slick: bool = True
    slick_runs: int = 20
    slick_shots: int = 3
    slick_samples: int = 1
    slick_exemplars: str = "independent"
    train_questions: int | None = None  # per relation; None = all
    dev_questions: int | None = None
    min_highly_known: float = 0.30
    known: int = 8000
    unknown: int = 8000
    held: int | None = None
    synthetic: int = 10_000
    epochs: int = 10
    lr: float = 5e-5
    batch_size: int = 16
    snapshot_epoch: int = 1
    lam: float = 1.0
    tau: float = 0.5
    layer: int | None = None
    eval_limit: int | None = None
    keep: str = "all"
    seed: int = 0
    device: str | None = None


PROFILES = {
    "paper": Profile("paper", epochs=20, batch_size=32, layer=14),
    "quick": Profile("quick", relations=("P17",), slick_runs=4, slick_samples=1, slick_exemplars="shared",
                     train_questions=400, dev_questions=200, min_highly_known=0.0, known=64, unknown=64, held=64,
                     synthetic=192, epochs=5, lr=1e-4, batch_size=16, eval_limit=96, keep="last:1"),
    "micro": Profile("micro", relations=("P17",), slick=False, train_questions=24, dev_questions=12, known=8,
                     unknown=8, held=6, synthetic=12, epochs=2, lr=1e-3, batch_size=4, eval_limit=8, keep="last:1"),
}


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def model_name(profile: Profile) -> str:
    return EMBEDDED_NAME if profile.model == EMBEDDED else Path(profile.model).name


# --- the command line every analysis shares ----------------------------------------------------------------------

def parser(name: str, description: str) -> argparse.ArgumentParser:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # loading/saving bars would drown the training progress
    ap = argparse.ArgumentParser(prog=f"python -m analyses.{name}", description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="scale (default quick)")
    ap.add_argument("--runs-dir", default="runs", type=Path, help="where data and runs are kept and reused")
    ap.add_argument("--figures-dir", default=FIGURES, type=Path)
    ap.add_argument("--dry-run", action="store_true", help="print the runs, sizes and an estimate; train nothing")
    for f in fields(Profile):
        if f.name == "name":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "relations":
            ap.add_argument(flag, help="comma-separated relation ids")
        elif f.type in ("bool",):
            ap.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), help="true/false")
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            ap.add_argument(flag, type=kind)
    return ap


def profile_from(args) -> Profile:
    profile = PROFILES[args.profile]
    overrides = {}
    for f in fields(Profile):
        value = getattr(args, f.name, None) if f.name != "name" else None
        if value is not None:
            overrides[f.name] = tuple(r.strip() for r in value.split(",")) if f.name == "relations" else value
    return replace(profile, **overrides)


# --- data ----------------------------------------------------------------------------------------------------------

def _slick_records(profile: Profile, runs_dir: Path) -> tuple[dict, dict]:
    """SLiCK (or, in the micro profile, plain assignment) of the profile's questions → relation → records."""
    train = {r: load_relation(r, "train")[: profile.train_questions] for r in profile.relations}
    dev = {r: load_relation(r, "dev")[: profile.dev_questions] for r in profile.relations}
    if not profile.slick:  # micro: no knowledge test; alternate categories so every split has members
        cats = ("HighlyKnown", "Unknown")
        label = lambda facts, d: [{**fact_to_record(f), "category": cats[i % 2] if d else cats[0]}  # noqa: E731
                                  for i, f in enumerate(facts)]
        return ({r: label(v, True) for r, v in train.items()}, {r: label(v, False) for r, v in dev.items()})
    config = SlickConfig(runs=profile.slick_runs, shots=profile.slick_shots, samples=profile.slick_samples,
                         exemplars=profile.slick_exemplars, seed=profile.seed)
    folder = runs_dir / "slick" / _hash([profile.model, asdict(config)])
    model, tokenizer = load_model(profile.model, device=profile.device or "cpu")
    pools = {r: load_relation(r, "train") for r in profile.relations}
    slick = Slick(model, tokenizer, pools, config)
    out = ({}, {})
    for i, (split, facts) in enumerate((("train", train), ("dev", dev))):
        for r, fs in facts.items():
            out[i][r] = run_slick(slick, fs, folder / f"{r}.{split}.jsonl", model_name(profile))
    return out


def prepare_splits(profile: Profile, runs_dir: Path) -> dict[str, str]:
    """D_Known, D_Unk, D_Held and held-out MaybeKnown / WeaklyKnown as JSONL paths (cached)."""
    folder = runs_dir / "data" / f"splits-{_hash(['splits', _data_key(profile)])}"
    names = ("known", "unknown", "held", "maybe_known", "weakly_known")
    if not (folder / "manifest.json").exists():
        train, dev = _slick_records(profile, runs_dir)
        kept = keep_relations(dev, profile.min_highly_known)

        def cap(records: dict, category: str, asked: int | None, name: str) -> int | None:
            available = sum(r["category"] == category for rel in kept for r in records.get(rel, []))
            if asked is not None and asked > available:
                print(f"note: {name}: {asked} asked, {available} {category} questions available; using {available}")
                return available
            return asked

        config = SplitConfig(known=cap(train, "HighlyKnown", profile.known, "D_Known"),
                             unknown=cap(train, "Unknown", profile.unknown, "D_Unk"),
                             held=cap(dev, "HighlyKnown", profile.held, "D_Held"),
                             min_highly_known=profile.min_highly_known, seed=profile.seed)
        shares = {s: {r: category_shares(v) for r, v in recs.items()} for s, recs in (("train", train), ("dev", dev))}
        write_splits(make_splits(train, dev, config), folder, config, kept,
                     {"profile": asdict(profile), "slick_shares": shares})  # manifest.json last: marks it complete
    return {n: str(folder / f"{n}.jsonl") for n in names}


def _data_key(profile: Profile) -> dict:
    keys = ("model", "relations", "slick", "slick_runs", "slick_shots", "slick_samples", "slick_exemplars",
            "train_questions", "dev_questions", "min_highly_known", "known", "unknown", "held", "seed")
    return {k: getattr(profile, k) for k in keys}


def prepare_synthetic(profile: Profile, runs_dir: Path, key_type: str, value_type: str = "real",
                      n: int | None = None) -> str:
    """Synthetic P17 facts (JSONL path, cached) for the profile's model."""
    n = n or profile.synthetic
    path = runs_dir / "data" / f"synthetic-{key_type}-{value_type}-{n}-{_hash([profile.model, profile.seed])}.jsonl"
    if not path.exists():
        tokenizer = load_tokenizer(resolve_model_path(profile.model))
        write_jsonl(path, synthetic_facts(tokenizer, n, key_type, value_type, profile.seed))
    return str(path)


def synthetic_profile(profile: Profile) -> Profile:
    """The §5 setting holds the relation fixed: P17 only."""
    return replace(profile, relations=("P17",))


# --- runs ----------------------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One training run an analysis needs: a label for the plot and its RunConfig (without `out`)."""

    label: str
    config: dict = field(default_factory=dict)

    def key(self) -> str:
        return _hash({k: v for k, v in self.config.items() if k not in ("out", "device")})


def _nonempty(path: str | None) -> str | None:
    return path if path and Path(path).is_file() and Path(path).stat().st_size > 0 else None


def run_config(profile: Profile, data: dict[str, str], **overrides) -> dict:
    """A RunConfig dict for the profile: every non-empty eval set of `data`, the profile's optimisation settings."""
    base = dict(model=str(profile.model), known=data.get("known"), unknown=data.get("unknown"),
                held=data.get("held"), maybe_known=_nonempty(data.get("maybe_known")),
                weakly_known=_nonempty(data.get("weakly_known")), lr=profile.lr, batch_size=profile.batch_size,
                epochs=profile.epochs,
                seed=profile.seed, lam=profile.lam, tau=profile.tau, snapshot_epoch=profile.snapshot_epoch,
                eval_limit=profile.eval_limit, keep=profile.keep, probe_layer=profile.layer, device=profile.device)
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def run_dir(run: Run, runs_dir: Path) -> Path:
    """The run's folder: an existing one with the same config hash (whatever label made it), else a new one."""
    same = sorted(runs_dir.glob(f"*-{run.key()}"))
    return same[0] if same else runs_dir / f"{re.sub(r'[^a-z0-9]+', '-', run.label.lower()).strip('-')}-{run.key()}"


def ensure_run(run: Run, runs_dir: Path) -> list[dict]:
    """Train (or resume, or reuse) a run; returns its per-epoch metrics."""
    out = run_dir(run, runs_dir)
    metrics = read_metrics(out)
    if metrics and metrics[-1]["epoch"] == run.config["epochs"]:
        return metrics
    print(f"== run: {run.label} → {out}", flush=True)
    return Trainer(RunConfig(out=str(out), **run.config)).run()


def standard_runs(profile: Profile, data: dict[str, str]) -> dict[str, Run]:
    """The EntityQuestions runs the figures share (D_Known ∪ D_Unk unless noted); a figure takes what it needs."""
    rc = lambda **kw: run_config(profile, data, **kw)  # noqa: E731
    return {
        "SFT": Run("SFT", rc(condition="sft", probe=True)),
        "Only Known": Run("Only Known", rc(condition="sft", train=data.get("known"), probe=True)),
        "Self-distillation": Run("Self-distillation", rc(condition="self_distill", variant="full", probe=True)),
        "Top-k distillation": Run("Top-k distillation", rc(condition="self_distill", variant="topk", probe=True)),
        "Random-k distillation": Run("Random-k distillation", rc(condition="self_distill", variant="randomk",
                                                                 probe=True)),
        **{f"Train {g}": Run(f"Train {g}", rc(condition="freeze", trainable=[g]))
           for g in ("attn", "ffn", "q", "k", "v", "o", "gate+up", "down")},
    }


def placeholder_data() -> dict[str, str]:
    return {k: f"<{k}>.jsonl" for k in ("known", "unknown", "held", "maybe_known", "weakly_known")}


def dry_run(name: str, profile: Profile, runs: list[Run]) -> None:
    """Print the plan: runs, sizes and a rough estimate of tokens and time."""
    print(f"analyses.{name} — profile {profile.name}, model {model_name(profile)}")
    per_fact_tokens = 24
    for run in runs:
        c = run.config
        n_train = c.get("_train_size") or (profile.known if c.get("train") == c.get("known") else
                                           profile.known + profile.unknown)
        tokens = n_train * per_fact_tokens * c["epochs"]
        print(f"  {run.label:<34} condition={c.get('condition', 'sft'):<12} epochs={c['epochs']:<3} "
              f"train≈{n_train} facts, ≈{tokens / 1e6:.2f} M tokens")
    print("  estimate: tokens × 6 × params FLOPs; a 1.5B model at 40% MFU on an H100 trains ≈ 40k tokens/s")


# --- output --------------------------------------------------------------------------------------------------------

def caption(profile: Profile, extra: str = "", models: list[str] | None = None) -> str:
    """The figure's model(s) (default: the profile's), flagged unless all are the study's, its profile, `extra`."""
    models = models or [model_name(profile)]
    study = all("qwen2.5-1.5b" in m.lower() for m in models)
    note = "" if study else " (not the study's Qwen2.5-1.5B)"
    return f"{', '.join(models)}{note}, profile {profile.name}{', ' + extra if extra else ''}"


def save_figure(fig, name: str, figures_dir: Path) -> list[Path]:
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ("png", "pdf"):
        path = figures_dir / f"{name}.{suffix}"
        with atomic_write(path) as tmp:
            fig.savefig(tmp, format=suffix, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def write_outputs(fig, df: pd.DataFrame, name: str, figures_dir: Path, seconds: float) -> list[Path]:
    """Save the numbers behind a figure as CSV and the figure as PNG + PDF; close it; say where and how long."""
    import matplotlib.pyplot as plt

    save_csv(df, name, figures_dir)
    paths = save_figure(fig, name, figures_dir)
    plt.close(fig)
    print(f"wrote {', '.join(map(str, paths))} and {name}.csv in {seconds:.0f} s")
    return paths


def save_csv(df: pd.DataFrame, name: str, figures_dir: Path) -> Path:
    path = figures_dir / f"{name}.csv"
    with atomic_write(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def markdown(df: pd.DataFrame) -> str:
    """A Markdown table, 3 decimals, missing values as —."""
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=".3f", missingval="—")


def save_table(df: pd.DataFrame, name: str, figures_dir: Path, title: str) -> Path:
    text = f"{title}\n\n{markdown(df)}\n"
    print(text)
    path = figures_dir / f"{name}.md"
    write_text(path, text)
    return path


def accuracy_frame(label: str, metrics: list[dict]) -> pd.DataFrame:
    """Long table: run, epoch, split, accuracy."""
    rows = [{"run": label, "epoch": m["epoch"], "split": s, "accuracy": a}
            for m in metrics for s, a in m.get("accuracy", {}).items()]
    return pd.DataFrame(rows)


def probe_frame(label: str, metrics: list[dict]) -> pd.DataFrame:
    rows = [{"run": label, "epoch": m["epoch"], "metric": k, "value": v}
            for m in metrics for k, v in m.get("probe", {}).items()]
    return pd.DataFrame(rows)


def correct_matrix(metrics: list[dict], split: str = "held") -> np.ndarray:
    """[epochs, facts] bool: each fact's greedy correctness per epoch, from metrics.jsonl's per-fact record."""
    bits = [m.get("correct", {}).get(split) for m in metrics]
    if any(b is None for b in bits):
        raise ProbekitError("this run predates per-fact correctness in metrics.jsonl; delete its folder to train it "
                            "again")
    return np.array([[c == "1" for c in b] for b in bits], bool)


def forgetting(metrics: list[dict], split: str = "held") -> float:
    """ΔD_Held: percentage-point drop from the peak accuracy during training to the last epoch."""
    acc = [m["accuracy"][split] for m in metrics if split in m.get("accuracy", {})]
    return 100 * (max(acc) - acc[-1]) if acc else math.nan


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
