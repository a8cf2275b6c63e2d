"""Packed rows (several examples per row, attention kept inside each) give the unpacked step's per-example losses and
gradients, for the task loss, top-k / random-k distillation from the teacher cache and full distillation, on rotary
families (qwen2, llama, gemma3) and absolute-position ones (gpt2, opt): only the latter see whether positions restart
per example (a planted change that keeps counting across a row fails gpt2 and opt, passes qwen2)."""
from __future__ import annotations

import pytest
import torch

from probekit.distillation.batches import collate, collate_packed, pack
from probekit.distillation.heads import final_hidden, head_logits
from probekit.distillation.objective import Objective
from probekit.distillation.regularizers import NO_REGULARIZER, CachedDistillation, FullDistillation
from probekit.distillation.teacher_cache import build_teacher_cache

from .conftest import byte_bpe_tokenizer, tiny_model
from .support.examples import examples
from .support.study_data import assert_same_curve, make_data


def per_example(batch, values: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Sum of position values [P] per example slot, the slot read from the batch's segments at (rows, cols)."""
    slots = batch.segments[rows, cols]
    return torch.zeros(len(batch.example_index), dtype=values.dtype).index_add(0, slots, values)


def losses_and_grads(model, batch, regularizer, n):
    """(per-example task losses [n], the step's loss terms, gradients) of one forward and backward."""
    model.zero_grad(set_to_none=True)
    objective = Objective(model)
    task_sum, reg_sum = objective(batch, n, regularizer)
    hidden = final_hidden(model, batch)
    logits = head_logits(model, hidden[batch.answer_rows, batch.answer_cols])
    token_loss = torch.nn.functional.cross_entropy(logits, batch.targets, reduction="none")
    per_ex = per_example(batch, token_loss.detach(), batch.answer_rows, batch.answer_cols)
    (task_sum / batch.num_answer_tokens + reg_sum / n).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return per_ex, (float(task_sum.detach()), float(reg_sum.detach())), grads


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gemma3_text", "gpt2", "opt"])
@pytest.mark.parametrize("kind", ["sft", "topk", "randomk", "full"])
def test_packed_rows_equal_the_unpacked_step(tmp_path, arch, kind):
    tok = byte_bpe_tokenizer()
    exs = examples(tok)
    longest = max(len(e.input_ids) for e in exs)
    padded = collate(exs, tok.pad_token_id)
    packed = collate_packed(exs, tok.pad_token_id, row_tokens=2 * longest + 3, rows=5)  # one empty row at the end
    assert packed.packed and packed.input_ids.shape[0] == 5 and (packed.segments[-1] == -1).all()
    assert (packed.segments >= 0).sum(-1).gt(len(exs[0].input_ids)).any()  # some row holds several examples
    model, teacher = tiny_model(arch, len(tok), seed=1), tiny_model(arch, len(tok), seed=2)
    regularizer = {"sft": NO_REGULARIZER, "full": FullDistillation(teacher, tau=0.5)}.get(kind)
    if regularizer is None:
        regularizer = CachedDistillation(build_teacher_cache(teacher, exs, tok.pad_token_id, 7, kind, 0,
                                                             tmp_path, "t"), tau=0.5)
    ref = losses_and_grads(model, padded, regularizer, len(exs))
    got = losses_and_grads(model, packed, regularizer, len(exs))
    torch.testing.assert_close(got[0], ref[0], atol=1e-5, rtol=1e-5)  # each example's task loss
    assert got[1] == pytest.approx(ref[1], abs=1e-5)
    assert kind == "sft" or ref[1][1] > 0
    assert ref[2].keys() == got[2].keys()
    for name in ref[2]:
        torch.testing.assert_close(got[2][name], ref[2][name], atol=1e-5, rtol=1e-4, msg=name)


def test_packed_rows_keep_examples_apart_under_eager_attention():
    """Eager attention gets the additive form of the same block-diagonal mask."""
    tok = byte_bpe_tokenizer()
    exs = examples(tok)
    model = tiny_model("llama", len(tok), seed=1)
    model.config._attn_implementation = "eager"
    a = losses_and_grads(model, collate(exs, tok.pad_token_id), NO_REGULARIZER, len(exs))
    b = losses_and_grads(model, collate_packed(exs, tok.pad_token_id, 64), NO_REGULARIZER, len(exs))
    torch.testing.assert_close(b[0], a[0], atol=1e-5, rtol=1e-5)


def test_pack_first_fit_decreasing():
    places, rows = pack([5, 3, 4, 2, 6], 8)
    assert rows == 3
    used = {}
    for (r, c), n in zip(places, [5, 3, 4, 2, 6]):
        assert c + n <= 8 and all(c >= e or c + n <= s for s, e in used.get(r, []))  # no overlap in a row
        used.setdefault(r, []).append((c, c + n))
    with pytest.raises(Exception, match="does not fit a packed row of 4"):
        pack([5], 4)


@pytest.mark.parametrize("condition", [dict(condition="sft"), dict(condition="self_distill", variant="topk", k=16)],
                         ids=["sft", "topk"])
def test_a_packed_run_follows_the_unpacked_run(tmp_path, condition):
    """Whole runs (teacher recipe included): the same loss curve and accuracies with rows packed as without."""
    from training.config import RunConfig
    from training.trainer import Trainer

    data = make_data(tmp_path)
    runs = {}
    for packing in ("off", "on"):
        config = RunConfig(**data, out=str(tmp_path / packing), batch_size=4, epochs=3, pack=packing, pack_tokens=64,
                           **condition)
        trainer = Trainer(config)
        assert (trainer.pack_tokens is not None) == (packing == "on")
        runs[packing] = trainer.run()
    assert_same_curve(runs["off"], runs["on"])
