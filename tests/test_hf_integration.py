"""Probes and the study's fix inside transformers / TRL training loops, and drift between models in memory.

DriftCallback in real Trainer, SFTTrainer and PEFT runs equals probing the checkpoints they saved; the Trainer
self-distillation loss equals the training loop's on the same batch; ``probekit.drift`` equals ``probe_series``;
plots draw on a given Axes and importing probekit leaves matplotlib's backend alone.
"""
import copy
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

import probekit
from probekit.distillation.batches import collate, make_examples
from probekit.distillation.objective import Objective
from probekit.distillation.regularizers import CachedDistillation, FullDistillation
from probekit.distillation.teacher_cache import build_teacher_cache
from probekit.entities import read_facts
from probekit.integrations.hf import DriftCallback, SelfDistillationMixin, SelfDistillationTrainer
from probekit.models import load_causal_lm
from probekit.plot import plot_metric, save_figure

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model
from .support.hf import ARGS, qa_dataset
from .support.series import HELD, UNKNOWN, perturb, write_facts

SETTINGS = dict(layer=2, k=5)


@pytest.fixture
def setup(tmp_path):
    tok = copy.deepcopy(byte_bpe_tokenizer())  # the cached one is shared with tests that pad left
    tok.padding_side = "right"  # as a training collator pads
    base = tmp_path / "base"
    save_checkpoint(tiny_model("llama", len(tok)), tok, base)
    held = read_facts(write_facts(tmp_path / "held.jsonl", HELD))
    unknown = read_facts(write_facts(tmp_path / "unk.jsonl", UNKNOWN))
    return tmp_path, tok, base, held, unknown


def assert_same_metrics(table: pd.DataFrame, probed: pd.DataFrame, tol: float = 1e-4):
    a = table.set_index(["name", "metric"])["value"]
    b = probed.set_index(["name", "metric"])["value"]
    assert set(a.index) == set(b.index) and len(a) >= 6
    for key in a.index:
        assert a[key] == pytest.approx(b[key], abs=tol), key


def probe_saved(run, base, held, unknown, out, theta0: bool = True):
    if theta0:  # θ0's row, as the callback writes it (an adapter series cannot hold a full model)
        shutil.copytree(base, run / "checkpoint-0")
    return probekit.probe_series(run, base=str(base), held=held, unknown=unknown, out=out,
                                 config=probekit.ProbeConfig(**SETTINGS), progress=False)


def test_drift_callback_in_trainer_equals_probing_its_checkpoints(setup):
    tmp, tok, base, held, unknown = setup
    run = tmp / "run"
    args = TrainingArguments(output_dir=str(run), num_train_epochs=2, save_strategy="epoch", **ARGS)
    trainer = Trainer(model=load_causal_lm(base), args=args, train_dataset=qa_dataset(tok, unknown),
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True))
    drift = DriftCallback(held, unknown, out=tmp / "live", tokenizer=tok, **SETTINGS).attach(trainer)
    trainer.train()
    assert list(drift.table[drift.table.metric == "RD"]["index"]) == [0, 1, 2]
    assert tok.padding_side == "right"  # the collator's tokenizer is left as it was
    assert_same_metrics(drift.table, probe_saved(run, base, held, unknown, tmp / "probes"))
    assert_same_metrics(drift.table, probekit.read_probes(tmp / "live"), tol=0)
    logged = [h for h in trainer.state.log_history if "drift/RD" in h]
    assert len(logged) == 3 and logged[-1]["drift/RD"] > 0


def test_drift_callback_on_a_resumed_run_needs_theta0(setup):
    """Resuming loads the checkpoint before any callback runs: without base_model= θ0 would be the resumed model,
    so that is refused; with it the resumed run measures against θ0 and keeps the rows ``out`` already holds."""
    tmp, tok, base, held, unknown = setup
    run = tmp / "run"

    def trainer(epochs: int, callback: DriftCallback) -> Trainer:
        args = TrainingArguments(output_dir=str(run), num_train_epochs=epochs, save_strategy="epoch", **ARGS)
        t = Trainer(model=load_causal_lm(base), args=args, train_dataset=qa_dataset(tok, unknown),
                    data_collator=DataCollatorForSeq2Seq(tok, padding=True))
        callback.attach(t)
        return t

    trainer(1, DriftCallback(held, unknown, out=tmp / "live", tokenizer=tok, **SETTINGS)).train()
    with pytest.raises(probekit.ProbekitError, match="resumed at step 2.*base_model="):
        trainer(2, DriftCallback(held, unknown, out=tmp / "live", tokenizer=tok, **SETTINGS)).train(
            resume_from_checkpoint=True)
    drift = DriftCallback(held, unknown, out=tmp / "live", tokenizer=tok, base_model=str(base), **SETTINGS)
    trainer(2, drift).train(resume_from_checkpoint=True)
    assert list(drift.table[drift.table.metric == "RD"]["index"]) == [0, 1, 2]
    assert_same_metrics(drift.table, probe_saved(run, base, held, unknown, tmp / "probes"))
    assert_same_metrics(drift.table, probekit.read_probes(tmp / "live"), tol=0)


def test_k_beyond_the_vocabulary_is_refused_in_memory(setup):
    tmp, tok, base, held, unknown = setup
    model = load_causal_lm(base)
    with pytest.raises(probekit.ProbekitError, match="--k 10000 is larger than the vocabulary"):
        probekit.drift(model, model, tok, held, unknown, layer=2, k=10_000)
    args = TrainingArguments(output_dir=str(tmp / "run"), num_train_epochs=1, save_strategy="no", **ARGS)
    trainer = Trainer(model=model, args=args, train_dataset=qa_dataset(tok, unknown),
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True))
    DriftCallback(held, unknown, tokenizer=tok, layer=2, k=10_000).attach(trainer)
    with pytest.raises(probekit.ProbekitError, match="larger than the vocabulary"):
        trainer.train()


def test_drift_callback_in_trl_sft_trainer(setup):
    from trl import SFTConfig, SFTTrainer

    tmp, tok, base, held, unknown = setup
    run = tmp / "run"
    data = Dataset.from_list([{"prompt": f"Q: {f.question}\nA:", "completion": f" {f.answer}\n"} for f in unknown])
    # TRL trains under bf16 autocast by default, which the callback's forward then shares: compare in fp32
    args = SFTConfig(output_dir=str(run), num_train_epochs=2, save_strategy="epoch", max_length=64, bf16=False,
                     **ARGS)
    trainer = SFTTrainer(model=load_causal_lm(base), args=args, train_dataset=data, processing_class=tok)
    drift = DriftCallback(held, unknown, every=2, **SETTINGS).attach(trainer)
    trainer.train()
    assert set(drift.table["kind"]) == {"step"}
    assert_same_metrics(drift.table, probe_saved(run, base, held, unknown, tmp / "probes"))


def test_drift_callback_on_a_peft_model(setup):
    from peft import LoraConfig, get_peft_model

    tmp, tok, base, held, unknown = setup
    run = tmp / "run"
    model = get_peft_model(load_causal_lm(base), LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj",
                                                                                                "down_proj"]))
    args = TrainingArguments(output_dir=str(run), num_train_epochs=2, save_strategy="epoch", **ARGS)
    trainer = Trainer(model=model, args=args, train_dataset=qa_dataset(tok, unknown),
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True))
    with pytest.warns(UserWarning, match="attach"):
        trainer.add_callback(drift := DriftCallback(held, unknown, tokenizer=tok, **SETTINGS))
        trainer.train()
    rd = drift.table[drift.table.metric == "RD"]["value"]
    assert rd.iloc[0] == pytest.approx(0, abs=1e-6) and rd.iloc[-1] > 0  # LoRA starts at θ0
    saved = probe_saved(run, base, held, unknown, tmp / "probes", theta0=False)  # merges each adapter into θ0
    assert_same_metrics(drift.table[drift.table.name != "checkpoint-0"], saved)
    assert sum("drift/NTR" in h for h in trainer.state.log_history) == 3


def test_drift_in_memory_equals_probe_series(setup, capfd):
    tmp, tok, base, held, unknown = setup
    base_model = load_causal_lm(base)
    model = perturb(load_causal_lm(base), 0.02, seed=1)
    save_checkpoint(model, tok, tmp / "run" / "epoch-001")
    live = probekit.drift(base_model, model, tok, held, unknown, name="epoch-001", **SETTINGS)
    capfd.readouterr()
    saved = probekit.probe_series(tmp / "run", base=str(base), held=held, unknown=unknown, out=tmp / "probes",
                                  config=probekit.ProbeConfig(**SETTINGS), progress=False)
    assert "held" not in capfd.readouterr().err  # no bar: not even θ0's or a checkpoint's capture
    assert list(live.columns) == list(saved.columns)
    assert_same_metrics(live, saved.assign(name="epoch-001"))
    assert not (tmp / "run" / "probes").exists() and not model.training


def test_drift_of_a_peft_model_over_its_own_base(setup):
    """θ0 given as the very model the adapters wrap is read with the adapters disabled."""
    from peft import LoraConfig, get_peft_model

    tmp, tok, base, held, unknown = setup
    inner = load_causal_lm(base)
    model = get_peft_model(inner, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    live = probekit.drift(inner, model, tok, held, unknown, **SETTINGS)
    reference = probekit.drift(load_causal_lm(base), model, tok, held, unknown, **SETTINGS)
    assert_same_metrics(live, reference, tol=1e-6)
    assert live.set_index("metric")["value"]["RD"] > 0


@pytest.mark.parametrize("variant", ["full", "topk", "randomk"])
def test_trainer_distillation_loss_equals_the_training_loop(setup, variant):
    tmp, tok, base, held, unknown = setup
    teacher_path = tmp / "teacher"
    save_checkpoint(perturb(load_causal_lm(base), 0.05, seed=2), tok, teacher_path)
    facts = held + unknown
    lam, tau, k, seed = 0.7, 2.0, 5, 3
    model = load_causal_lm(base)
    # the training loop: Objective + the regulariser of --condition self_distill, normalised as Trainer.step does
    examples = make_examples(tok, facts)
    batch = collate(examples[:3], tok.pad_token_id)
    teacher = load_causal_lm(teacher_path)
    if variant == "full":
        reg = FullDistillation(teacher, tau)
    else:
        reg = CachedDistillation(build_teacher_cache(teacher, examples, tok.pad_token_id, k, variant, seed,
                                                     tmp / "ours", "teacher"), tau)
    task_sum, reg_sum = Objective(model)(batch, 3, reg)
    ours = task_sum / batch.num_answer_tokens + lam * reg_sum / 3
    # the Trainer, on the same three examples as its collator pads them
    data = qa_dataset(tok, facts)
    args = TrainingArguments(output_dir=str(tmp / "hf"), **ARGS)
    trainer = SelfDistillationTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                      data_collator=DataCollatorForSeq2Seq(tok, padding=True),
                                      teacher=str(teacher_path), variant=variant, lam=lam, tau=tau, k=k, seed=seed)
    trainer.start_distillation(trainer.teacher_source)
    inputs = DataCollatorForSeq2Seq(tok, padding=True)([data[i] for i in range(3)])
    model.train()
    theirs = trainer.compute_loss(model, inputs)
    assert theirs.item() == pytest.approx(ours.item(), abs=1e-5)
    assert float(reg_sum) > 0


def test_self_distillation_mixin_in_trl_with_a_snapshot_teacher(setup):
    from trl import SFTConfig, SFTTrainer

    class DistillSFTTrainer(SelfDistillationMixin, SFTTrainer):
        pass

    tmp, tok, base, held, unknown = setup
    data = Dataset.from_list([{"prompt": f"Q: {f.question}\nA:", "completion": f" {f.answer}\n"} for f in unknown])
    args = SFTConfig(output_dir=str(tmp / "run"), num_train_epochs=2, save_strategy="no", max_length=64, **ARGS)
    trainer = DistillSFTTrainer(model=load_causal_lm(base), args=args, train_dataset=data, processing_class=tok,
                                snapshot_epoch=1, variant="topk", k=5)
    trainer.train()
    assert isinstance(trainer.regularizer, CachedDistillation)
    assert (tmp / "run" / "teacher" / "config.json").is_file()
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in trainer.state.log_history if "train_loss" in h)


def test_plots_draw_on_a_given_axes_and_return_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")  # this test process only saves files
    import matplotlib.pyplot as plt

    df = pd.DataFrame({"run": ["a", "a"], "checkpoint": ["x", "y"], "name": ["x", "y"], "kind": ["epoch"] * 2,
                       "index": [0, 1], "layer": [2, 2], "metric": ["RD", "RD"], "value": [0.0, 0.1]})
    fig, (ax1, ax2) = plt.subplots(1, 2)
    assert plot_metric(df, "RD", ax=ax2) is fig and ax2.get_lines()
    alone = plot_metric(df, "RD")
    assert [p.suffix for p in save_figure(alone, tmp_path / "rd")] == [".png", ".pdf"]
    plt.close("all")


def test_importing_probekit_leaves_the_matplotlib_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import probekit, probekit.plot, probekit.integrations.hf; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "svg", out.stderr
