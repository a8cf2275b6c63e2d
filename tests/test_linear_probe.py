"""The answer probe recovers a linearly planted answer, stays at chance on permuted labels; recall shares per cell."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probekit.errors import ProbekitError
from probekit.linear_probe import fit_answer_probe, recall_shares

ANSWERS = ["Italy", "France", "Peru", "Norway", "Japan"]


def planted(n, d=32, noise=0.5, seed=0):
    """States = answer direction + noise: the answer is linearly decodable by construction."""
    rng = np.random.default_rng(seed)
    directions = np.random.default_rng(99).normal(size=(len(ANSWERS), d))
    y = rng.integers(0, len(ANSWERS), n)
    x = directions[y] + noise * rng.normal(size=(n, d))
    return torch.tensor(x, dtype=torch.float32), [ANSWERS[i] for i in y]


def test_probe_recovers_planted_answer():
    x, y = planted(300)
    probe = fit_answer_probe(x, y)
    assert probe.cv_accuracy > 0.95 and probe.C in (0.001, 0.01, 0.1, 1.0)
    x_test, y_test = planted(200, seed=1)
    accuracy = probe.correct(x_test, [[a] for a in y_test]).mean()
    assert accuracy > 0.95


def test_permuted_labels_stay_at_chance():
    x, y = planted(300)
    shuffled = list(np.random.default_rng(5).permutation(y))
    probe = fit_answer_probe(x, shuffled)
    x_test, y_test = planted(400, seed=2)
    accuracy = probe.correct(x_test, [[a] for a in y_test]).mean()
    assert abs(accuracy - 1 / len(ANSWERS)) < 0.1


def test_aliases_case_and_unknown_answers():
    x, y = planted(200)
    probe = fit_answer_probe(x, y, C=1.0)
    assert np.isnan(probe.cv_accuracy) and probe.C == 1.0
    pred = probe.predict(x[:3])
    assert probe.correct(x[:3], [["zz", p.upper()] for p in pred]).all()
    assert probe.knows([["italy"], ["Atlantis"], ["Atlantis", " peru "]]).tolist() == [True, False, True]


def test_rare_answers_are_left_out_and_bad_input_is_refused():
    x, y = planted(60)
    y[0] = "Atlantis"  # one example only: not a class
    assert "Atlantis" not in fit_answer_probe(x, y, C=1.0).classes
    with pytest.raises(ProbekitError, match="at least two answers"):
        fit_answer_probe(x[:4], ["a", "a", "b", "c"])
    with pytest.raises(ProbekitError, match="states but"):
        fit_answer_probe(x, y[:-1])


def recall_reference(probe, model):
    cells = {"stored_not_recalled": 0, "recalled_not_stored": 0, "both": 0, "neither": 0}
    for p, m in zip(probe, model):
        cells["both" if p and m else "stored_not_recalled" if p else "recalled_not_stored" if m else "neither"] += 1
    out = {k: v / len(probe) for k, v in cells.items()}
    out["probe_accuracy"] = sum(probe) / len(probe)
    out["model_accuracy"] = sum(model) / len(model)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_recall_shares_match_reference(pairs):
    probe, model = map(list, zip(*pairs))
    got = recall_shares(np.array(probe), np.array(model))
    assert got == pytest.approx(recall_reference(probe, model))
    assert sum(got[k] for k in ("stored_not_recalled", "recalled_not_stored", "both", "neither")) == pytest.approx(1)
