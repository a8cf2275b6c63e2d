"""Forgetting risk before fine-tuning: which held facts a planned fine-tune on new facts is likely to break, from θ0.

The study's mechanism: a known fact is forgotten when its key entity sits close, in representation space, to the new
entities being written in. One pass of the base model over the held facts (those the user wants to keep), the new
facts (those the fine-tune will teach) and optionally the rest of the training set (known facts it also trains on)
gives per held fact the features below, and a logistic model fitted on this project's archived runs
(``analyses.risk``, shipped as ``probekit/data/risk_predictor.json``) turns them into a probability that the fact, if
answered at the fine-tune's peak, is lost by its end (the model is fitted on facts answered at the peak).

    df = probekit.risk("embedded", held="held.jsonl", new="new.jsonl", known="known.jsonl")
    df.attrs["expected_lost"]   # (expected number lost, 95% interval)

Features (per held fact h; H: ℓ2-normalised layer-l entity states; cos = H_h · H_x):
  max_cos_new, top10_cos_new      the highest / mean of the 10 highest cos to a new entity
  share_new_cos_above             the share of new entities with cos above ``NEAR`` (0.5)
  max_cos_known, top10_cos_known  the same against the known training entities (NaN without --known)
  max_cos_new_minus_known         max_cos_new − max_cos_known (NaN without --known)
  new_sharing_answer              how many new facts share h's gold answer (normalised text)
  new_sharing_relation            the share of new facts with h's relation (NaN where relations are unknown)
  margin, top1_prob               θ0's answer-position top-1 − top-2 logit, and top-1 probability over its top 76
  held_density                    mean of the 10 highest cos to the other held entities (NS's neighbourhood)
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .entities import Fact
from .errors import ProbekitError

TOP = 10  # neighbours averaged by the top-k features
NEAR = 0.5  # cos above which a new entity counts as near
CONFIDENCE_K = 76  # answer-position logits kept for the confidence features (the drift metrics' k)
PREDICTOR_FILE = Path(__file__).parent / "data" / "risk_predictor.json"
FEATURES = ("max_cos_new", "top10_cos_new", "share_new_cos_above", "max_cos_known", "top10_cos_known",
            "max_cos_new_minus_known", "new_sharing_answer", "new_sharing_relation", "margin", "top1_prob",
            "held_density")


def normalise(states: torch.Tensor) -> torch.Tensor:
    """[N, d] → rows of unit ℓ2 norm."""
    return torch.nn.functional.normalize(states.float(), dim=-1)


def top_mean(cos: torch.Tensor, k: int) -> np.ndarray:
    """cos [H, M] → the mean of each row's k highest values [H] (all M where M < k; NaN where M = 0)."""
    if cos.shape[1] == 0:
        return np.full(cos.shape[0], np.nan)
    return cos.topk(min(k, cos.shape[1]), dim=1).values.mean(1).numpy()


def share_above(cos: torch.Tensor, threshold: float) -> np.ndarray:
    """cos [H, M] → the share of each row's values above `threshold` [H] (NaN where M = 0)."""
    if cos.shape[1] == 0:
        return np.full(cos.shape[0], np.nan)
    return (cos > threshold).float().mean(1).numpy()


def answer_key(text: str) -> str:
    """A gold answer as compared across facts: case- and space-folded."""
    return " ".join(text.lower().split())


def sharing_counts(held: list[str], new: list[str]) -> np.ndarray:
    """For each held value, how many of the new values equal it → [H] floats."""
    counts: dict[str, int] = {}
    for v in new:
        counts[v] = counts.get(v, 0) + 1
    return np.array([counts.get(v, 0) for v in held], float)


def confidence(topk_values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """θ0's answer-position top-k logits [H, k] (descending) → (top-1 − top-2 margin, top-1 probability of the
    softmax over those k) [H] each."""
    v = topk_values.float()
    return (v[:, 0] - v[:, 1]).numpy(), torch.softmax(v, dim=-1)[:, 0].numpy()


def held_density(held: torch.Tensor, k: int = TOP) -> np.ndarray:
    """Normalised held states [H, d] → each one's mean cos to its k nearest other held entities [H]."""
    cos = held @ held.T
    cos.fill_diagonal_(-math.inf)
    if held.shape[0] < 2:
        return np.full(held.shape[0], np.nan)
    return cos.topk(min(k, held.shape[0] - 1), dim=1).values.mean(1).numpy()


def features(held_states: torch.Tensor, new_states: torch.Tensor, known_states: torch.Tensor | None,
             held_topk: torch.Tensor, held: list[Fact], new: list[Fact]) -> pd.DataFrame:
    """Every feature of ``FEATURES`` per held fact, from θ0's layer-l entity states (held [H, d], new [M, d], known
    [K, d] or None) and held answer-position top-k logits [H, k] → DataFrame [H rows, FEATURES]."""
    h, n = normalise(held_states), normalise(new_states)
    cos_new = h @ n.T
    out = {"max_cos_new": top_mean(cos_new, 1), "top10_cos_new": top_mean(cos_new, TOP),
           "share_new_cos_above": share_above(cos_new, NEAR)}
    if known_states is not None and len(known_states):
        cos_known = h @ normalise(known_states).T
        out |= {"max_cos_known": top_mean(cos_known, 1), "top10_cos_known": top_mean(cos_known, TOP)}
    else:
        out |= {"max_cos_known": np.full(len(held), np.nan), "top10_cos_known": np.full(len(held), np.nan)}
    out["max_cos_new_minus_known"] = out["max_cos_new"] - out["max_cos_known"]
    out["new_sharing_answer"] = sharing_counts([answer_key(f.answer) for f in held],
                                               [answer_key(f.answer) for f in new])
    if all(f.relation for f in held) and all(f.relation for f in new):
        out["new_sharing_relation"] = sharing_counts([f.relation for f in held], [f.relation for f in new]) / len(new)
    else:
        out["new_sharing_relation"] = np.full(len(held), np.nan)
    out["margin"], out["top1_prob"] = confidence(held_topk)
    out["held_density"] = held_density(h)
    return pd.DataFrame(out, columns=list(FEATURES))


@dataclass
class ThetaZero:
    """θ0's pass: layer-l entity states of held [H, d], new [M, d], known [K, d] (or None) and the held facts'
    answer-position top-k logits [H, k]."""

    held: torch.Tensor
    new: torch.Tensor
    known: torch.Tensor | None
    held_topk: torch.Tensor


def theta0_pass(model, tokenizer, held: list[Fact], new: list[Fact], known: list[Fact] | None,
                layer: int | None = None, progress: bool = True) -> ThetaZero:
    """One pass of the base model: logits only for the held facts; new and known stop at layer l."""
    from .capture import Prober

    prober = Prober(model, tokenizer, layer)
    h = prober.capture(held, topk=CONFIDENCE_K, progress="θ0 held" if progress else False)
    n = prober.capture(new, progress="θ0 new" if progress else False)
    k = prober.capture(known, progress="θ0 known" if progress else False) if known else None
    return ThetaZero(h.states, n.states, k.states if k else None, h.topk_values)


@dataclass
class Predictor:
    """A logistic model on standardised features: p = σ(intercept + Σ coef · (x − mean) / scale); missing features
    (NaN) take their training mean. `data_hash`: the hash of the table it was fitted on; `validation`: rows of the
    validation table (group, setting, AUC and its interval) it ships with."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    version: int = 1
    data_hash: str = ""
    fitted_on: str = ""
    label: str = ""
    runs: list[str] = field(default_factory=list)  # the archived run folders it was fitted on
    validation: list[dict] = field(default_factory=list)

    def probability(self, table: pd.DataFrame) -> np.ndarray:
        """P(lost by the end | answered at the peak) per row of a features table → [rows]."""
        x = table[self.features].to_numpy(float)
        mean, scale = np.array(self.mean), np.array(self.scale)
        z = np.where(np.isnan(x), 0.0, (x - mean) / scale)
        return 1 / (1 + np.exp(-(self.intercept + z @ np.array(self.coef))))

    def save(self, path: str | Path) -> None:
        from .io import atomic_write

        with atomic_write(Path(path)) as tmp:
            Path(tmp).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path | None = None) -> Predictor:
        path = Path(path) if path else PREDICTOR_FILE
        if not path.is_file():
            raise ProbekitError(f"no risk predictor at {path}: fit one with `python -m analyses.risk`")
        return cls(**json.loads(path.read_text()))


def expected_lost(p: np.ndarray, confidence_level: float = 0.95) -> tuple[float, int, int]:
    """The expected number of facts lost, Σ p, and the central interval of the count (the exact Poisson-binomial
    distribution of independent facts with those probabilities: the spread of outcomes, not the model's error)."""
    pmf = np.ones(1)
    for q in np.asarray(p, float):
        pmf = np.convolve(pmf, [1 - q, q])
    cdf = np.cumsum(pmf)
    tail = (1 - confidence_level) / 2
    return float(np.sum(p)), int(np.searchsorted(cdf, tail)), int(np.searchsorted(cdf, 1 - tail))


def risk(base, held, new, known=None, *, layer: int | None = None, predictor: Predictor | None = None,
         device: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Per held fact: fact (its position in `held`), question, entity, answer, relation, the probability that a
    fine-tune on `new` (∪ `known`) forgets it, and the features behind it, ranked by probability. `held`, `new`,
    `known`: fact files (or lists of Fact); `base`: a checkpoint folder, a cached repo id or "embedded".
    ``df.attrs``: expected_lost (Σ p, lo, hi), layer, predictor (its label, fit and validation)."""
    from .entities import read_facts
    from .families import default_layer
    from .models import load_model

    facts = {name: (read_facts(v) if not isinstance(v, list) else v) if v is not None else None
             for name, v in (("held", held), ("new", new), ("known", known))}
    predictor = predictor or Predictor.load()
    model, tokenizer = load_model(base, device=device)
    layer = layer if layer is not None else default_layer(model)
    theta0 = theta0_pass(model, tokenizer, facts["held"], facts["new"], facts["known"], layer, progress)
    table = features(theta0.held, theta0.new, theta0.known, theta0.held_topk, facts["held"], facts["new"])
    p = predictor.probability(table)
    df = pd.DataFrame({"fact": range(len(facts["held"])),  # its position in the held file
                       "question": [f.question for f in facts["held"]], "entity": [f.entity for f in facts["held"]],
                       "answer": [f.answer for f in facts["held"]],
                       "relation": [f.relation for f in facts["held"]], "probability": p})
    df = pd.concat([df, table], axis=1).sort_values("probability", ascending=False, kind="stable")
    df.insert(0, "rank", range(1, len(df) + 1))
    df.attrs.update(expected_lost=expected_lost(p), layer=layer, model_type=model.config.model_type,
                    predictor={k: getattr(predictor, k) for k in ("label", "fitted_on", "version", "data_hash")},
                    validation=predictor.validation)
    return df.reset_index(drop=True)


def validation_notes(df: pd.DataFrame) -> list[str]:
    """What the shipped validation says, one line per held-out group (seeds, relations, families, ...): its AUCs
    and, where an interval holds 0.5, that the ranking is not validated there."""
    groups: dict[str, list[dict]] = {}
    for row in df.attrs.get("validation", []):
        groups.setdefault(row["group"], []).append(row)
    notes = []
    for group, rows in groups.items():
        shown = ", ".join(f"{r['setting']} {r['auc']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}]" for r in rows)
        weak = [r["setting"] for r in rows if not r["lo"] > 0.5]
        verdict = (f"not validated for {len(weak)} of {len(rows)} (the interval holds 0.5: {'; '.join(weak)})"
                   if weak else "validated in each")
        notes.append(f"{group}: AUC {shown} — {verdict}")
    return notes


def write_report(df: pd.DataFrame, out: str | Path, top: int = 25) -> list[Path]:
    """risk.md (the summary, validation notes and the `top` riskiest facts), risk.csv and risk.parquet in `out`."""
    from .io import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    expected, lo, hi = df.attrs["expected_lost"]
    lines = [f"# Forgetting risk of {len(df)} held facts", "",
             f"Expected number lost: {expected:.1f} (95% interval of the count {lo}–{hi}, from the probabilities); "
             f"layer {df.attrs['layer']}; predictor: {df.attrs['predictor']['fitted_on']}.", "",
             "Validation of the shipped predictor (held-out groups):", "",
             *[f"- {n}" for n in validation_notes(df)], "", f"## The {min(top, len(df))} riskiest", "",
             df.head(top)[["rank", "question", "answer", "probability", "max_cos_new", "margin"]]
             .to_markdown(index=False, floatfmt=".3f"), ""]
    paths = [out / "risk.md", out / "risk.csv", out / "risk.parquet"]
    with atomic_write(paths[0]) as tmp:
        Path(tmp).write_text("\n".join(lines))
    with atomic_write(paths[1]) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_write(paths[2]) as tmp:
        df.to_parquet(tmp, index=False)
    return paths
