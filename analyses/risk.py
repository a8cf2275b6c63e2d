"""Fit and validate the forgetting-risk predictor (``probekit.risk``) on the archived standard-profile runs.

Ground truth: every archived plain fine-tune (SFT on D_Known ∪ new facts) records, per held-out fact and epoch,
whether the model answers it. A fact is *forgotten* when it is answered at the run's peak epoch and not at its last
(the study's ΔD_Held, fact by fact; facts not answered at the peak are left out); it is *lost* when it is not
answered at the last epoch (every D_Held fact was known to θ0, by SLiCK). Features come from one θ0 pass per data
setting (``probekit.risk.features``), cached beside the runs.

Validation holds out what a user's run would differ in: whole training seeds (fig3's SFT), whole relations (fig3's
four), and the other model family (SmolLM2 ↔ Gemma-3-270M on fig5's semantic-key setting, label *lost*: Gemma's SFT
run peaks at its last epoch, so none of its facts is *forgotten*). Each row: the predictor's ROC AUC with its 95%
interval (bootstrap stratified by class), baselines (θ0's answer margin, the best single feature chosen on the
training rows) and, for held-out seeds, the ceiling (the mean outcome of the same fact at the other seeds), plus
expected (Σ p) against observed counts. The shipped predictor is then fitted on every SmolLM2 SFT run (label
*forgotten*) and written with the hash of its table.

    python -m analyses.risk [--runs-dir results/standard-runs] [--figures-dir figures] [--no-save-predictor]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve

import probekit.risk
from probekit import stats
from probekit.entities import read_facts
from probekit.io import atomic_write, stable_hash
from training.run_dir import RunDir

from .epoch_tables import correct_matrix

FEATURE_VERSION = 1  # bump when a feature's definition changes: the cache key carries it
FAMILY = {"embedded": "SmolLM2-135M", "gemma3-270m": "Gemma-3-270M"}
FACT_FOLDS = 2  # folds over questions for the held-out seed and method rows


def archived_runs(runs_dir: Path) -> pd.DataFrame:
    """One row per finished archived run: folder, model, condition, seed, the data paths and whether it trains on
    new facts (SFT or self-distillation on D_Known ∪ new)."""
    rows = []
    for record in sorted(Path(runs_dir).glob("*/run.json")):
        c = json.loads(record.read_text())["config"]
        run = RunDir(record.parent)
        records = run.records()
        if not records or records[-1]["epoch"] != c["epochs"] or "held" not in records[-1].get("correct", {}):
            continue
        rows.append(dict(folder=record.parent.name, model=c["model"], condition=c.get("condition", "sft"),
                         seed=c["seed"], held=c["held"], new=c.get("unknown"), known=c.get("known"),
                         trains_new=c.get("train") is None and c.get("unknown") is not None, records=records))
    return pd.DataFrame(rows)


def setting_features(runs_dir: Path, model: str, held: str, new: str, known: str, n_held: int) -> pd.DataFrame:
    """θ0 features of the first `n_held` held facts against `new` and `known` (cached under runs_dir/.risk)."""
    key = stable_hash([FEATURE_VERSION, model, held, new, known, n_held, probekit.risk.TOP, probekit.risk.NEAR,
                       probekit.risk.CONFIDENCE_K], 16)
    cache = Path(runs_dir) / ".risk" / f"features-{key}.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    from probekit.models import load_model

    facts = {name: read_facts(path) for name, path in (("held", held), ("new", new), ("known", known))}
    facts["held"] = facts["held"][:n_held]
    net, tokenizer = load_model(model, device="cpu")
    theta0 = probekit.risk.theta0_pass(net, tokenizer, facts["held"], facts["new"], facts["known"])
    table = probekit.risk.features(theta0.held, theta0.new, theta0.known, theta0.held_topk, facts["held"], facts["new"])
    table.insert(0, "relation", [f.relation for f in facts["held"]])
    table.insert(0, "fact", range(n_held))
    with atomic_write(cache) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def labels(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(forgotten, lost) per evaluated held fact: forgotten is NaN where the fact is not answered at the peak."""
    correct = correct_matrix(records, "held")
    forgotten = np.where(correct[correct.mean(1).argmax()], stats.fact_drops(correct), np.nan)
    return forgotten, (~correct[-1]).astype(float)


def dataset(runs_dir: Path) -> pd.DataFrame:
    """One row per (run, evaluated held fact) of every archived run that trains on new facts: run descriptors,
    features, labels."""
    runs = archived_runs(runs_dir)
    runs = runs[runs["trains_new"]]
    tables = []
    for (model, held, new, known), group in runs.groupby(["model", "held", "new", "known"], sort=True):
        n_held = len(group.iloc[0]["records"][-1]["correct"]["held"])
        try:
            feats = setting_features(runs_dir, model, held, new, known, n_held)
        except Exception as exc:  # noqa: BLE001 - a family whose package is missing is skipped, said in one line
            print(f"skipping {FAMILY.get(model, model)} on {Path(new).name}: {str(exc).splitlines()[0]}")
            continue
        questions = [f.question for f in read_facts(held)[:n_held]]
        for _, run in group.iterrows():
            forgotten, lost = labels(run["records"])
            tables.append(feats.assign(run=run["folder"], model=model, condition=run["condition"], seed=run["seed"],
                                       setting=Path(new).stem, question=questions, forgotten=forgotten, lost=lost))
    return pd.concat(tables, ignore_index=True)


def fit(train: pd.DataFrame, label: str) -> probekit.risk.Predictor:
    """A logistic model on standardised features (NaN → the training mean) of the rows with a label."""
    train = train[train[label].notna()]
    x = train[list(probekit.risk.FEATURES)].to_numpy(float)
    mean = np.nanmean(x, 0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    scale = np.nanstd(x, 0)
    scale = np.where((scale > 0) & ~np.isnan(scale), scale, 1.0)
    z = np.where(np.isnan(x), 0.0, (x - mean) / scale)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(z, train[label].to_numpy(int))
    return probekit.risk.Predictor(list(probekit.risk.FEATURES), mean.tolist(), scale.tolist(), model.coef_[0].tolist(),
                       float(model.intercept_[0]), label=label)


def auc_of(score: np.ndarray, y: np.ndarray):
    """AUC of `score` for label y (1 = forgotten) with its interval."""
    return stats.auc_ci(score[y == 1], score[y == 0])


def auc_value(score: np.ndarray, y: np.ndarray) -> float:
    """AUC of `score` for label y without an interval (Mann–Whitney from ranks, ties counting half)."""
    ranks = rankdata(score)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")


def best_single(train: pd.DataFrame, label: str) -> tuple[str, int]:
    """The feature (and its sign) with the highest AUC on the training rows."""
    train = train[train[label].notna()]
    y = train[label].to_numpy(int)
    best = ("margin", -1, 0.0)
    for f in probekit.risk.FEATURES:
        s = train[f].to_numpy(float)
        if np.isnan(s).all():
            continue
        a = auc_value(np.nan_to_num(s, nan=np.nanmean(s)), y)
        for sign, value in ((1, a), (-1, 1 - a)):
            if value > best[2]:
                best = (f, sign, value)
    return best[0], best[1]


def evaluate(group: str, setting: str, folds: list[tuple[pd.DataFrame, pd.DataFrame]], label: str,
             ceiling: pd.Series | None = None) -> dict:
    """One validation row: per fold (train, test), the predictor fitted on train scored on test; the scores of every
    fold's test rows pooled, with the baselines (the best single feature chosen on the first fold's train)."""
    folds = [(train, test[test[label].notna()]) for train, test in folds]
    test = pd.concat([t for _, t in folds])
    y = test[label].to_numpy(int)
    p = np.concatenate([fit(train, label).probability(t) for train, t in folds])
    feature, sign = best_single(folds[0][0], label)
    est = auc_of(p, y)
    row = dict(group=group, setting=setting, label=label, n=len(y), positives=int(y.sum()), auc=est.value,
               lo=est.lo, hi=est.hi, margin_auc=auc_value(-test["margin"].to_numpy(float), y),
               best_feature=f"{'−' if sign < 0 else ''}{feature}",
               best_feature_auc=auc_value(sign * test[feature].to_numpy(float), y),
               expected=float(p.sum()), observed=int(y.sum()))
    if ceiling is not None:
        c = ceiling.loc[test.index].to_numpy(float)
        row["ceiling_auc"] = auc_value(np.where(np.isnan(c), np.nanmean(c), c), y)
    return row | {"_p": p, "_y": y}


def fact_folds(train: pd.DataFrame, test: pd.DataFrame, k: int = FACT_FOLDS) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """k (train, test) folds over the test's questions: each fold's training rows leave out its test questions, in
    every setting (fig5's held P17 facts may be fig3's too), so a held-out seed is also tested on unseen facts."""
    questions = sorted(set(test["question"]))
    fold_of = {q: i % k for i, q in enumerate(np.random.default_rng(0).permutation(questions))}
    out = []
    for i in range(k):
        held_out = {q for q, f in fold_of.items() if f == i}
        out.append((train[~train["question"].isin(held_out)], test[test["question"].isin(held_out)]))
    return out


def validate(data: pd.DataFrame) -> list[dict]:
    """Every held-out group: seeds (and facts) and relations on fig3's SmolLM2 SFT runs, families on fig5's semantic
    keys, and self-distillation runs (unseen facts too)."""
    smol = data[(data["model"] == "embedded") & (data["condition"] == "sft")]
    fig3 = smol[smol["setting"] == "unknown"]
    rows = []
    # the same fact's outcome at the other seeds: the ceiling of any predictor of a held-out seed
    for seed in sorted(fig3["seed"].unique()):
        test = fig3[fig3["seed"] == seed]
        others = fig3[fig3["seed"] != seed].groupby("fact")["forgotten"].mean()
        ceiling = pd.Series(test["fact"].map(others).to_numpy(float), index=test.index)
        rows.append(evaluate("held-out seed and facts", f"fig3 SFT, seed {seed}",
                             fact_folds(smol[smol["seed"] != seed], test), "forgotten", ceiling))
    for relation in sorted(fig3["relation"].unique()):
        train = smol[smol["relation"] != relation]
        test = fig3[fig3["relation"] == relation]
        rows.append(evaluate("held-out relation", f"fig3 SFT, {relation}", [(train, test)], "forgotten"))
    semantic = data[(data["condition"] == "sft") & data["setting"].str.contains("semantic")]
    for a, b in (("embedded", "gemma3-270m"), ("gemma3-270m", "embedded")):
        train, test = semantic[semantic["model"] == a], semantic[semantic["model"] == b]
        if len(train) and len(test):
            rows.append(evaluate("held-out family", f"fit on {FAMILY[a]}, test on {FAMILY[b]} (semantic keys)",
                                 [(train, test)], "lost"))
    sd = data[(data["model"] == "embedded") & (data["condition"] == "self_distill") & (data["setting"] == "unknown")]
    if len(sd):
        rows.append(evaluate("other method and facts", "fit on SmolLM2 SFT, test on fig3 self-distillation",
                             fact_folds(smol, sd), "forgotten"))
    return rows


def plot(rows: list[dict], note: str):
    """ROC per validation row and the reliability curve of the held-out seeds."""
    fig, (roc, rel) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in rows:
        fpr, tpr, _ = roc_curve(r["_y"], r["_p"])
        roc.plot(fpr, tpr, lw=1, label=f"{r['setting']}: {r['auc']:.2f}")
    roc.plot([0, 1], [0, 1], color="0.6", ls=":")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.legend(fontsize=6, loc="lower right")
    roc.set_title("ROC on held-out groups (AUC)", fontsize=10)
    seeds = [r for r in rows if r["group"] == "held-out seed and facts"]
    if seeds:
        p, y = np.concatenate([r["_p"] for r in seeds]), np.concatenate([r["_y"] for r in seeds])
        bins = np.quantile(p, np.linspace(0, 1, 11))
        which = np.clip(np.searchsorted(bins, p, side="right") - 1, 0, 9)
        xs = [p[which == b].mean() for b in range(10) if (which == b).any()]
        ys = [y[which == b].mean() for b in range(10) if (which == b).any()]
        rel.plot(xs, ys, marker="o")
        rel.plot([0, max(xs + ys)], [0, max(xs + ys)], color="0.6", ls=":")
    rel.set_xlabel("predicted probability (deciles)")
    rel.set_ylabel("observed share forgotten")
    rel.set_title("Reliability, held-out seeds", fontsize=10)
    fig.text(0.5, -0.03, note, ha="center", fontsize=7)
    fig.tight_layout()
    return fig


def table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    df.insert(4, "AUC [95%]", [f"{r['auc']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]" for r in rows])
    df["validated"] = np.where(df["lo"] > 0.5, "yes", "no: the interval holds 0.5")
    return df.drop(columns=["auc", "lo", "hi"])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(prog="python -m analyses.risk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs-dir", default="results/standard-runs", help="the archived runs (default: %(default)s)")
    parser.add_argument("--figures-dir", default="figures", help="where risk.png / risk.md go (default: %(default)s)")
    parser.add_argument("--no-save-predictor", action="store_true",
                        help="do not rewrite probekit/data/risk_predictor.json")
    args = parser.parse_args(argv)
    matplotlib.use("Agg")  # a command line only saves files
    data = dataset(Path(args.runs_dir))
    rows = validate(data)
    df = table(rows)
    print(df.to_string(index=False))
    runs = data.groupby(["model", "condition"])["run"].nunique().to_dict()
    note = (f"archived standard-profile runs in {args.runs_dir}: " +
            ", ".join(f"{FAMILY.get(m, m)} {c} {n} runs" for (m, c), n in runs.items()))
    figures = Path(args.figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    fig = plot(rows, note)
    fig.savefig(figures / "risk.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    (figures / "risk.md").write_text(f"# Forgetting risk: validation on held-out groups\n\n{note}\n\n"
                                     + df.to_markdown(index=False, floatfmt=".3f") + "\n")
    print(f"wrote {figures / 'risk.png'} and {figures / 'risk.md'}")
    if not args.no_save_predictor:
        smol = data[(data["model"] == "embedded") & (data["condition"] == "sft")]
        predictor = fit(smol, "forgotten")
        predictor.data_hash = training_hash(smol)
        predictor.runs = sorted(smol["run"].unique())
        predictor.fitted_on = (f"SmolLM2-135M SFT runs of the standard profile ({smol['run'].nunique()} runs, "
                               f"{int(smol['forgotten'].notna().sum())} fact-runs, label: answered at the peak, "
                               "lost by the last epoch)")
        predictor.validation = [{k: r[k] for k in ("group", "setting", "auc", "lo", "hi")} for r in rows]
        predictor.save(probekit.risk.PREDICTOR_FILE)
        print(f"wrote {probekit.risk.PREDICTOR_FILE} (data hash {predictor.data_hash})")
    return df


def training_hash(train: pd.DataFrame) -> str:
    """The hash of the table a predictor is fitted on: its features and labels, rounded to 6 decimals."""
    cols = list(probekit.risk.FEATURES) + ["forgotten"]
    return stable_hash(np.round(train[cols].to_numpy(float), 6).tolist(), 16)


if __name__ == "__main__":
    main()
