"""Distillation, task and L2 losses against plain per-example loops, padding masks included."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from probekit.distillation import losses
from probekit.distillation.batches import Example, collate
from probekit.distillation.heads import final_hidden, head_logits, head_logits_at

from .conftest import byte_bpe_tokenizer, tiny_model


def ref_distill(teacher_seqs, student_seqs, tau):
    """Eq. 2 by hand: mean over examples of τ²/|M| Σ_j Σ_v p_T log(p_T / p_S), one unpadded sequence at a time."""
    total = 0.0
    for t_seq, s_seq in zip(teacher_seqs, student_seqs):
        acc = 0.0
        for t_row, s_row in zip(t_seq, s_seq):
            pt = torch.softmax(t_row.double() / tau, -1)
            ps = torch.softmax(s_row.double() / tau, -1)
            acc += sum(float(pt[v] * math.log(pt[v] / ps[v])) for v in range(len(pt)) if pt[v] > 0)
        total += tau**2 * acc / len(t_seq)
    return total / len(teacher_seqs)


def ref_topk(teacher_seqs, student_seqs, tau, k):
    """Eq. 5 by hand: restrict both to the teacher's top-k ids at each position, renormalise, KL."""
    t_sel, s_sel = [], []
    for t_seq, s_seq in zip(teacher_seqs, student_seqs):
        ids = [t.topk(k).indices for t in t_seq]
        t_sel.append([t[i] for t, i in zip(t_seq, ids)])
        s_sel.append([s[i] for s, i in zip(s_seq, ids)])
    return ref_distill(t_sel, s_sel, tau)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.floats(0.25, 3.0), st.integers(0, 10_000))
def test_distill_loss_matches_reference(lengths, tau, seed):
    g = torch.Generator().manual_seed(seed)
    vocab = 9
    teacher = [torch.randn(n, vocab, generator=g, dtype=torch.float64) * 3 for n in lengths]
    student = [torch.randn(n, vocab, generator=g, dtype=torch.float64) * 3 for n in lengths]
    example = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    got = losses.distill_loss_sum(torch.cat(teacher), torch.cat(student), example, len(lengths), tau) / len(lengths)
    assert float(got) == pytest.approx(ref_distill(teacher, student, tau), rel=1e-6, abs=1e-9)
    # top-k: renormalised over the teacher's k ids
    k = 4
    t_all, s_all = torch.cat(teacher), torch.cat(student)
    ids = t_all.topk(k, -1).indices
    got_k = losses.distill_loss_sum(t_all.gather(-1, ids), s_all.gather(-1, ids), example, len(lengths), tau)
    assert float(got_k) / len(lengths) == pytest.approx(ref_topk(teacher, student, tau, k), rel=1e-6, abs=1e-9)
    # top-k with k = vocabulary is the full loss
    ids = t_all.topk(vocab, -1).indices
    full_k = losses.distill_loss_sum(t_all.gather(-1, ids), s_all.gather(-1, ids), example, len(lengths), tau)
    assert float(full_k) == pytest.approx(float(got) * len(lengths), rel=1e-6)
    # log-probs instead of logits for the teacher (what the cache stores) change nothing
    lp = torch.log_softmax(t_all, -1)
    assert float(losses.distill_loss_sum(lp, s_all, example, len(lengths), tau)) == pytest.approx(
        float(got) * len(lengths), rel=1e-6)


def test_distill_zero_when_student_is_teacher():
    z = torch.randn(7, 11)
    assert float(losses.distill_loss_sum(z, z.clone(), torch.tensor([0, 0, 1, 1, 1, 2, 2]), 3, 0.5)) == pytest.approx(0,
                                                                                                            abs=1e-7)


def test_padding_never_counts_in_a_real_batch():
    """Through collate + model: the batch loss equals the per-example loss on each sequence alone."""
    tok = byte_bpe_tokenizer()
    student, teacher = tiny_model("llama", len(tok), seed=1), tiny_model("llama", len(tok), seed=2)
    seqs = [tok(t)["input_ids"] for t in ["Q: Which country is Milan xyz located in?\nA: Italy\n", "Q: Oslo?\nA: No\n",
                                          "Q: What is the capital of Zürich, São Paulo?\nA: Paris\n"]]
    examples = [Example(i, tuple(s), 3) for i, s in enumerate(seqs)]
    batch = collate(examples, tok.pad_token_id)
    assert (batch.attention_mask == 0).any()  # there is padding
    with torch.no_grad():
        hs = final_hidden(student, batch)[batch.seq_rows, batch.seq_cols]
        ht = final_hidden(teacher, batch)[batch.seq_rows, batch.seq_cols]
        got = losses.distill_loss_sum(head_logits(teacher, ht), head_logits(student, hs), batch.seq_rows, 3, 0.5) / 3
        alone_t = [teacher(input_ids=torch.tensor([s])).logits[0] for s in seqs]
        alone_s = [student(input_ids=torch.tensor([s])).logits[0] for s in seqs]
    assert float(got) == pytest.approx(ref_distill(alone_t, alone_s, 0.5), rel=1e-4)
    # the task loss positions are the answer tokens only
    for r, c, t in zip(batch.answer_rows.tolist(), batch.answer_cols.tolist(), batch.targets.tolist()):
        assert c >= 2 and seqs[r][c + 1] == t


def test_head_logits_at_matches_full_head():
    tok = byte_bpe_tokenizer()
    for arch in ("llama", "gemma2", "phi"):  # tied head, soft-capping, head with bias
        model = tiny_model(arch, len(tok))
        h = torch.randn(10, 64)
        ids = torch.randint(0, len(tok), (10, 5))
        torch.testing.assert_close(head_logits_at(model, h, ids, chunk=3), head_logits(model, h).gather(-1, ids))


def test_l2_to_snapshot():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([3.0])}
    b = {"w": torch.tensor([0.0, 0.0]), "b": torch.tensor([1.0])}
    assert float(losses.l2_to_snapshot(a, b)) == pytest.approx(1 + 4 + 4)
