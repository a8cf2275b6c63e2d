"""Nearest new entities, forgotten facts and the AUC against plain loops; AUC 0.5 on noise, 1.0 when planted."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probekit.interference import forgotten_facts, nearest_new, peak_epoch, permutation_auc, roc_auc


def auc_reference(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=30))
def test_auc_matches_pairwise_reference(pairs):  # small integer scores: many ties
    scores, labels = map(np.array, zip(*pairs))
    expected = auc_reference(scores, labels)
    got = roc_auc(scores, labels)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_auc_is_half_on_noise_and_one_when_planted():
    rng = np.random.default_rng(7)  # not the permutation seed: its first draw would be these very labels
    labels = rng.random(4000) < 0.2
    noise = permutation_auc(rng.normal(size=4000), labels, permutations=500)
    assert abs(noise.auc - 0.5) < 0.03 and noise.p_value > 0.01
    assert abs(noise.null_mean - 0.5) < 0.01
    planted = permutation_auc(labels + 0.1 * rng.random(4000), labels, permutations=500)
    assert planted.auc == 1.0 and planted.p_value == pytest.approx(1 / 501)
    assert math.isnan(permutation_auc(np.ones(5), np.zeros(5, bool)).auc)


def test_nearest_new_matches_loop():
    g = torch.Generator().manual_seed(0)
    held, new = torch.randn(7, 16, generator=g), torch.randn(11, 16, generator=g)
    sims, idx = nearest_new(held, new, k=3)
    for i in range(7):
        cos = [float(torch.dot(held[i], new[j]) / (held[i].norm() * new[j].norm())) for j in range(11)]
        order = sorted(range(11), key=lambda j: -cos[j])[:3]
        assert idx[i].tolist() == order
        assert sims[i].tolist() == pytest.approx([cos[j] for j in order], abs=1e-5)


def test_forgotten_facts_from_the_peak_epoch():
    correct = np.array([[1, 1, 0, 1],   # epoch 0
                        [1, 1, 1, 1],   # epoch 1: peak
                        [0, 1, 0, 1]], bool)
    assert peak_epoch(correct) == 1
    eligible, forgotten = forgotten_facts(correct, 1)
    assert eligible.tolist() == [True, True, True, True]
    assert forgotten.tolist() == [True, False, True, False]
