"""probekit.risk: every feature against a plain loop, the expected count against enumeration, the predictor's
arithmetic, the shipped predictor against the archive it was fitted on, and `probekit risk` end to end on a tiny model
(report written, expected count = Σ probabilities, bad input: one line, exit 2)."""
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import probekit.risk
from probekit.errors import ProbekitError
from probekit.entities import Fact

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ["Italy", "France", "italy ", "Spain"]
RELATIONS = ["P17", "P36"]


def fact(i: int, answer: str, relation: str | None = "P17") -> Fact:
    question = f"Which country is Town{i} located in?"
    return Fact(question, (answer,), (17, 17 + len(f"Town{i}")), relation)


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_features(held_s, new_s, known_s, topk, held, new):
    """Every feature by plain loops over facts, straight from the definitions in probekit.risk."""
    rows = []
    for i, h in enumerate(held_s):
        to_new = sorted((cos(h, n) for n in new_s), reverse=True)
        to_known = sorted((cos(h, k) for k in known_s), reverse=True)
        others = sorted((cos(h, g) for j, g in enumerate(held_s) if j != i), reverse=True)
        key = " ".join(held[i].answer.lower().split())
        logits = [float(v) for v in topk[i]]
        z = sum(math.exp(v - logits[0]) for v in logits)
        rows.append({
            "max_cos_new": to_new[0], "top10_cos_new": np.mean(to_new[:10]),
            "share_new_cos_above": sum(c > 0.5 for c in to_new) / len(to_new),
            "max_cos_known": to_known[0], "top10_cos_known": np.mean(to_known[:10]),
            "max_cos_new_minus_known": to_new[0] - to_known[0],
            "new_sharing_answer": sum(" ".join(f.answer.lower().split()) == key for f in new),
            "new_sharing_relation": sum(f.relation == held[i].relation for f in new) / len(new),
            "margin": logits[0] - logits[1], "top1_prob": 1 / z,
            "held_density": np.mean(others[:10]) if others else np.nan,
        })
    return pd.DataFrame(rows, columns=list(probekit.risk.FEATURES))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 14), st.integers(1, 14), st.integers(1, 14), st.integers(0, 2**31 - 1))
def test_features_match_plain_loops(n_held, n_new, n_known, seed):
    g = torch.Generator().manual_seed(seed)
    held_s, new_s, known_s = (torch.randn(n, 8, generator=g) for n in (n_held, n_new, n_known))
    topk = torch.randn(n_held, 6, generator=g).sort(dim=1, descending=True).values
    held = [fact(i, ANSWERS[i % 4], RELATIONS[i % 2]) for i in range(n_held)]
    new = [fact(100 + i, ANSWERS[(i * 3) % 4], RELATIONS[(i // 2) % 2]) for i in range(n_new)]
    got = probekit.risk.features(held_s, new_s, known_s, topk, held, new)
    ref = ref_features(held_s.numpy(), new_s.numpy(), known_s.numpy(), topk.numpy(), held, new)
    pd.testing.assert_frame_equal(got.astype(float), ref.astype(float), rtol=1e-5, atol=1e-6)


def test_missing_known_and_relations_are_nan_not_guessed():
    held = [fact(0, "Italy", None), fact(1, "France", None)]
    got = probekit.risk.features(torch.randn(2, 4), torch.randn(3, 4), None,
                                 torch.randn(2, 5).sort(descending=True).values, held, [fact(9, "Italy", None)] * 3)
    assert got[["max_cos_known", "top10_cos_known", "max_cos_new_minus_known", "new_sharing_relation"]].isna().all(
        axis=None)
    assert got["new_sharing_answer"].tolist() == [3.0, 0.0]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=9))
def test_expected_count_is_the_sum_and_its_interval_the_enumerated_quantiles(p):
    expected, lo, hi = probekit.risk.expected_lost(np.array(p))
    assert expected == pytest.approx(sum(p))
    pmf = np.zeros(len(p) + 1)  # every outcome of the facts, by enumeration
    for outcome in itertools.product((0, 1), repeat=len(p)):
        pmf[sum(outcome)] += math.prod(q if o else 1 - q for q, o in zip(p, outcome))
    cdf = np.cumsum(pmf)
    assert lo == int(np.argmax(cdf >= 0.025 - 1e-12)) and hi == int(np.argmax(cdf >= 0.975 - 1e-12))


def test_predictor_is_a_logistic_on_standardised_features_with_nan_at_the_mean():
    pred = probekit.risk.Predictor(["a", "b"], mean=[1.0, 0.0], scale=[2.0, 1.0], coef=[0.5, -1.0], intercept=0.2)
    table = pd.DataFrame({"a": [3.0, np.nan], "b": [1.0, 2.0]})
    z = np.array([0.2 + 0.5 * 1.0 - 1.0 * 1.0, 0.2 + 0.0 - 2.0])
    assert pred.probability(table) == pytest.approx(1 / (1 + np.exp(-z)))


def test_shipped_predictor_matches_the_archive_it_was_fitted_on():
    """The shipped file's data hash is the hash of the table analyses.risk builds from results/standard-runs (its θ0
    features are cached there), and refitting that table gives the shipped coefficients."""
    from analyses.risk import dataset, fit, training_hash

    shipped = probekit.risk.Predictor.load()
    data = dataset(ROOT / "results" / "standard-runs")
    smol = data[(data["model"] == "embedded") & (data["condition"] == "sft") & data["run"].isin(shipped.runs)]
    assert smol["run"].nunique() == len(shipped.runs)
    assert training_hash(smol) == shipped.data_hash
    refit = fit(smol, shipped.label)
    assert refit.coef == pytest.approx(shipped.coef, abs=1e-6) and refit.intercept == pytest.approx(
        shipped.intercept, abs=1e-6)
    assert list(shipped.features) == list(probekit.risk.FEATURES) and shipped.validation


@pytest.fixture
def tiny_base(tmp_path):
    path = tmp_path / "base"
    save_checkpoint(tiny_model("llama"), byte_bpe_tokenizer(), path)
    return path


def write_facts(path: Path, facts: list[tuple[str, str, str]]) -> Path:
    import json

    path.write_text("".join(json.dumps({"question": q, "entity": e, "answers": [a], "relation": "P17"}) + "\n"
                            for q, e, a in facts))
    return path


def test_cli_writes_the_ranked_report(tiny_base, tmp_path, capsys):
    from probekit.cli import main

    held = write_facts(tmp_path / "held.jsonl", [(f"Which country is Milan{i} located in?", f"Milan{i}", "Italy")
                                                  for i in range(6)])
    new = write_facts(tmp_path / "new.jsonl", [("Which country is Bergadena located in?", "Bergadena", "Italy"),
                                               ("Which country is Lorvasse located in?", "Lorvasse", "France")])
    assert main(["risk", "--base", str(tiny_base), "--held", str(held), "--new", str(new), "--out",
                 str(tmp_path / "risk")]) == 0
    df = pd.read_csv(tmp_path / "risk" / "risk.csv")
    assert df["rank"].tolist() == list(range(1, 7)) and df["probability"].is_monotonic_decreasing
    assert (tmp_path / "risk" / "risk.parquet").exists()
    report = (tmp_path / "risk" / "risk.md").read_text()
    assert f"Expected number lost: {df['probability'].sum():.1f}" in report
    assert "expected number lost" in capsys.readouterr().out
    assert main(["risk", "--base", str(tiny_base), "--held", str(held), "--new", str(new), "--out",
                 str(tmp_path / "risk"), "--validate", str(tmp_path / "risk")]) == 2  # not a probe folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no per-fact outcomes" in err[0]


@pytest.mark.parametrize("bad", ["missing", "empty"])
def test_cli_bad_input_is_one_line_and_exit_2(tiny_base, tmp_path, capsys, bad):
    from probekit.cli import main

    held = write_facts(tmp_path / "held.jsonl", [("Which country is Milan located in?", "Milan", "Italy")])
    new = tmp_path / "new.jsonl"
    if bad == "empty":
        new.write_text("")
    assert main(["risk", "--base", str(tiny_base), "--held", str(held), "--new", str(new), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("probekit: error:")


def test_a_report_is_checked_against_what_a_probed_series_lost(tmp_path):
    from probekit.outcomes import write_outcomes
    from probekit.risk_check import check

    held = [fact(i, f"Land{i}") for i in range(8)]
    # θ0 answers facts 0-5; the peak (epoch 1) answers 0-6; the last answers 0-2: facts 3-6 are lost from the peak
    outcomes = [{"held_correct": torch.tensor(c, dtype=torch.uint8)} for c in (
        [1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0])]
    summary = write_outcomes(tmp_path, "run", ["θ0", "epoch-1", "epoch-2"], [0, 1, 2], outcomes, {"held": held})
    assert summary["peak"] == "epoch-1" and summary["lost_since_peak"] == 4 and summary["lost_since_theta0"] == 3
    assert summary["delta_pp"][0] == pytest.approx(100 * (7 / 8 - 3 / 8))
    assert list(pd.read_csv(tmp_path / "lost.csv")["fact"]) == [3, 4, 5, 6]
    p = [0.1, 0.1, 0.2, 0.9, 0.8, 0.7, 0.6, 0.99]  # fact 7 was never answered: it is not scored
    report = pd.DataFrame({"fact": range(8), "question": [f.question for f in held], "answer": [f.answer for f in held],
                           "probability": p}).iloc[::-1]
    result = check(report, tmp_path)
    assert result["answered_at_peak"] == 7 and result["observed_lost"] == 4
    assert result["auc"][0] == 1.0 and result["expected_lost"][0] == pytest.approx(sum(p[:7]))
    with pytest.raises(ProbekitError, match="same --held file"):
        check(report.assign(question="elsewhere?"), tmp_path)
