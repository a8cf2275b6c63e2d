"""Each metric against a plain loop written straight from its equation, on fixed and hypothesis-drawn inputs."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from probekit import metrics

from .support.references import ref_output_metrics, ref_pairs


def cos(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_rd(h0, hi):
    return float(np.mean([1 - cos(h0[x], hi[x]) for x in range(len(h0))]))


def ref_ns(h0, hi):
    n = len(h0)
    return sum(abs(cos(hi[x], hi[y]) - cos(h0[x], h0[y])) for x in range(n) for y in range(n)) / n**2


def ref_mtd(h0h, hih, h0s, his):
    vals = [cos(hih[a], his[b]) - cos(h0h[a], h0s[b]) for a in range(len(h0h)) for b in range(len(h0s))]
    return float(np.mean(vals))


def fast_output_metrics(z_unk, z_held, z0_held, pairs, k, log_base=math.e):
    z_unk, z_held, z0_held = map(torch.as_tensor, (z_unk, z_held, z0_held))
    u, h = pairs[:, 0], pairs[:, 1]
    top0 = z0_held.topk(k, dim=-1)
    at_i = z_unk[u.unsqueeze(1), top0.indices[h]]
    base_at_i = top0.values[h]
    return (
        metrics.rank_rho(at_i, base_at_i),
        metrics.ntr(z_unk.topk(k).indices[u], z_held.topk(k).indices[h]),
        metrics.jsd(at_i, base_at_i, log_base),
    )


states = st.integers(2, 8).flatmap(lambda n: st.integers(2, 6).flatmap(lambda d: st.tuples(
    st.just(n), st.just(d), st.integers(0, 2**31 - 1))))


@settings(max_examples=40, deadline=None)
@given(states)
def test_state_metrics_match_reference(spec):
    n, d, seed = spec
    g = torch.Generator().manual_seed(seed)
    h0, hi = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    s0, si = torch.randn(n + 1, d, generator=g), torch.randn(n + 1, d, generator=g)
    assert metrics.rd(h0, hi) == pytest.approx(ref_rd(h0.numpy(), hi.numpy()), abs=1e-9)
    assert metrics.ns(h0, hi) == pytest.approx(ref_ns(h0.numpy(), hi.numpy()), abs=1e-9)
    assert metrics.mtd(h0, hi, s0, si) == pytest.approx(ref_mtd(h0.numpy(), hi.numpy(), s0.numpy(), si.numpy()),
                                                        abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(states)
def test_per_item_metrics_match_reference(spec):
    """The per-fact values that the intervals resample: each one from its equation, and their mean is the metric."""
    n, d, seed = spec
    g = torch.Generator().manual_seed(seed)
    h0, hi = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    s0, si = torch.randn(n + 1, d, generator=g), torch.randn(n + 1, d, generator=g)
    a0, ai, b0, bi = (t.numpy() for t in (h0, hi, s0, si))
    rd = [1 - cos(a0[x], ai[x]) for x in range(n)]
    ns = [np.mean([abs(cos(ai[x], ai[y]) - cos(a0[x], a0[y])) for y in range(n)]) for x in range(n)]
    mtd = [np.mean([cos(ai[x], bi[s]) - cos(a0[x], b0[s]) for s in range(n + 1)]) for x in range(n)]
    np.testing.assert_allclose(metrics.rd_items(h0, hi).numpy(), rd, atol=1e-9)
    np.testing.assert_allclose(metrics.ns_items(h0, hi).numpy(), ns, atol=1e-9)
    np.testing.assert_allclose(metrics.mtd_items(h0, hi, s0, si).numpy(), mtd, atol=1e-9)
    assert float(metrics.ns_items(h0, hi).mean()) == pytest.approx(metrics.ns(h0, hi), abs=1e-12)
    assert float(metrics.mtd_items(h0, hi, s0, si).mean()) == pytest.approx(metrics.mtd(h0, hi, s0, si), abs=1e-12)
    ids_u, ids_h = (torch.stack([torch.randperm(9, generator=g)[:3] for _ in range(n)]) for _ in range(2))  # top-k
    ntr = [len(set(ids_u[p].tolist()) & set(ids_h[p].tolist())) / 3 for p in range(n)]
    np.testing.assert_allclose(metrics.ntr_rows(ids_u, ids_h).numpy(), ntr)


def test_state_metrics_identities():
    h = torch.randn(20, 16)
    assert metrics.rd(h, h) == pytest.approx(0, abs=1e-12)
    assert metrics.ns(h, h) == pytest.approx(0, abs=1e-12)
    assert metrics.mtd(h, h, h[:5], h[:5]) == pytest.approx(0, abs=1e-12)
    assert metrics.rd(h, 3.0 * h) == pytest.approx(0, abs=1e-12)  # cosine: scale-free
    assert metrics.rd(h, -h) == pytest.approx(2.0)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 12), st.sampled_from([math.e, 2.0]))
def test_output_metrics_match_reference(seed, k, log_base):
    rng = np.random.default_rng(seed)
    vocab = 30
    answers = ["Paris", "paris ", "Rome", "Oslo"]
    unk_answers = list(rng.choice(answers, size=5))
    held_answers = list(rng.choice(answers, size=6))
    pairs = torch.tensor(ref_pairs(unk_answers, held_answers), dtype=torch.long).reshape(-1, 2)
    if len(pairs) == 0:
        return
    assert torch.equal(metrics.answer_pairs(unk_answers, held_answers, max_pairs=None), pairs)
    # distinct logits per row (ties are handled separately below)
    z_unk = np.stack([rng.permutation(vocab) + rng.random() for _ in range(5)]).astype(np.float64)
    z_held = np.stack([rng.permutation(vocab) * 0.5 for _ in range(6)]).astype(np.float64)
    z0_held = np.stack([rng.permutation(vocab) * 1.5 for _ in range(6)]).astype(np.float64)
    ref = ref_output_metrics(z_unk, z_held, z0_held, pairs.tolist(), k, log_base)
    fast = fast_output_metrics(z_unk, z_held, z0_held, pairs, k, log_base)
    for r, f in zip(ref, fast):
        if math.isnan(r):
            assert math.isnan(f)
        else:
            assert f == pytest.approx(r, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(-3, 3), min_size=6, max_size=6), min_size=1, max_size=6),
       st.lists(st.lists(st.integers(-3, 3), min_size=6, max_size=6), min_size=1, max_size=6))
def test_spearman_with_ties_matches_scipy(a, b):
    n = min(len(a), len(b))
    a, b = torch.tensor(a[:n], dtype=torch.float64), torch.tensor(b[:n], dtype=torch.float64)
    fast = metrics.spearman_rows(a, b)
    for i in range(n):
        ref = spearmanr(a[i].numpy(), b[i].numpy()).statistic
        if np.isnan(ref):
            assert torch.isnan(fast[i])
        else:
            assert float(fast[i]) == pytest.approx(ref, abs=1e-9)


def test_jsd_bounds_and_identity():
    z = torch.randn(10, 76)
    assert metrics.jsd(z, z) == pytest.approx(0, abs=1e-12)
    far = torch.zeros(1, 2)
    far[0, 0] = 1e4
    assert metrics.jsd(far, far.flip(-1), log_base=2) == pytest.approx(1.0, abs=1e-6)  # disjoint support: 1 bit


def test_pair_cap_is_seeded_sample():
    unk, held = ["a"] * 30, ["a"] * 30
    full = metrics.answer_pairs(unk, held, max_pairs=None)
    capped = metrics.answer_pairs(unk, held, max_pairs=50, seed=3)
    assert len(full) == 900 and len(capped) == 50
    assert torch.equal(capped, metrics.answer_pairs(unk, held, max_pairs=50, seed=3))
    assert set(map(tuple, capped.tolist())) <= set(map(tuple, full.tolist()))


def test_ns_subsample():
    assert torch.equal(metrics.ns_subsample(5, 10), torch.arange(5))
    s = metrics.ns_subsample(100, 10, seed=1)
    assert len(s) == 10 and len(set(s.tolist())) == 10 and torch.equal(s, metrics.ns_subsample(100, 10, seed=1))


def test_chunked_paths_match_unchunked(monkeypatch):
    h0, hi = torch.randn(50, 8), torch.randn(50, 8)
    a, b = torch.randn(50, 7), torch.randn(50, 7)
    ta, tb = torch.randint(0, 20, (50, 5)), torch.randint(0, 20, (50, 5))
    full = (metrics.ns(h0, hi), metrics.rank_rho(a, b), metrics.ntr(ta, tb))
    monkeypatch.setattr(metrics, "_CHUNK", 7)
    assert (metrics.ns(h0, hi), metrics.rank_rho(a, b), metrics.ntr(ta, tb)) == pytest.approx(full, abs=1e-12)
