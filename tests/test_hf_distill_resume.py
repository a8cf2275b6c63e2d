"""SelfDistillationTrainer beyond one straight run: resuming after a snapshot at step 0 is refused (the model in
memory is then the resumed checkpoint), and gradient accumulation equals one large batch under the rule that
transformers < 5.19 applies (no ``loss_is_scaled_for_ga``) as under the newer one."""
import copy

import pytest
import torch
from transformers import DataCollatorForSeq2Seq, TrainingArguments

from probekit.entities import read_facts
from probekit.errors import ProbekitError
from probekit.integrations.hf import SelfDistillationTrainer
from probekit.models import load_causal_lm

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model
from .support.hf import ARGS, qa_dataset
from .support.series import HELD, perturb, write_facts


@pytest.fixture
def hf_setup(tmp_path):
    """A tiny Llama base, a right-padding tokenizer and the held facts: (tmp, tokenizer, base, held)."""
    tok = copy.deepcopy(byte_bpe_tokenizer())
    tok.padding_side = "right"
    save_checkpoint(tiny_model("llama", len(tok)), tok, tmp_path / "base")
    return tmp_path, tok, tmp_path / "base", read_facts(write_facts(tmp_path / "held.jsonl", HELD))


def distill_trainer(tok, base, data, args, **kw):
    return SelfDistillationTrainer(model=load_causal_lm(base), args=args, train_dataset=data, processing_class=tok,
                                   data_collator=DataCollatorForSeq2Seq(tok, padding=True), **kw)


def test_resume_after_a_step_zero_snapshot_is_refused(hf_setup):
    tmp, tok, base, held = hf_setup
    data = qa_dataset(tok, held)
    args = TrainingArguments(output_dir=str(tmp / "run"), max_steps=2, save_strategy="steps", save_steps=1, **ARGS)
    distill_trainer(tok, base, data, args, snapshot_epoch=0).train()
    resumed = distill_trainer(tok, base, data, args, snapshot_epoch=0)
    with pytest.raises(ProbekitError, match="resumes at step 1.*pass teacher=PATH"):
        resumed.train(resume_from_checkpoint=str(tmp / "run" / "checkpoint-1"))
    # with the teacher given, the same resume goes on
    distill_trainer(tok, base, data, args, teacher=str(base)).train(
        resume_from_checkpoint=str(tmp / "run" / "checkpoint-1"))


@pytest.mark.parametrize("rule", ["transformers<5.19", "transformers>=5.19"])
def test_gradient_accumulation_under_each_transformers_rule(hf_setup, rule):
    """Two micro-batches of one example make the same SGD step as one batch of two. Before 5.19 the Trainer has no
    ``loss_is_scaled_for_ga`` (None here: the rule from the model's loss kwargs), and a model may take no loss
    kwargs."""
    tmp, tok, base, held = hf_setup
    teacher = tmp / "teacher"
    save_checkpoint(perturb(load_causal_lm(base), 0.05, seed=2), tok, teacher)
    weights = []
    for size, accumulate in ((2, 1), (1, 2)):
        settings = {**ARGS, "per_device_train_batch_size": size, "gradient_accumulation_steps": accumulate}
        args = TrainingArguments(output_dir=str(tmp / f"hf{size}"), max_steps=1, optim="sgd", max_grad_norm=0.0,
                                 **settings)  # no clipping: it would hide a step of the wrong size
        trainer = distill_trainer(tok, base, qa_dataset(tok, held), args, teacher=str(teacher), variant="topk", k=5,
                                  cache_dir=str(tmp / "cache"))
        if rule == "transformers<5.19":
            trainer.loss_is_scaled_for_ga = None
            trainer.model_accepts_loss_kwargs = False  # e.g. a model whose forward takes no **kwargs
        trainer.train()
        weights.append(trainer.model.model.layers[1].mlp.down_proj.weight.detach().clone())
    before = load_causal_lm(base).model.layers[1].mlp.down_proj.weight.detach()
    large, accumulated = weights[0] - before, weights[1] - before  # the step: -lr × gradient
    assert large.abs().max() > 0
    torch.testing.assert_close(accumulated, large, rtol=1e-3, atol=1e-3 * float(large.abs().max()))


def test_compute_loss_func_is_refused(hf_setup):
    tmp, tok, base, held = hf_setup
    args = TrainingArguments(output_dir=str(tmp / "run"), **ARGS)
    with pytest.raises(ProbekitError, match="do not pass compute_loss_func"):
        distill_trainer(tok, base, qa_dataset(tok, held), args, teacher=str(base),
                        compute_loss_func=lambda outputs, labels, num_items_in_batch=None: outputs.loss)
