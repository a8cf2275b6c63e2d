"""The trainer on tiny random models: every condition learns, frozen groups stay frozen, resume and DDP agree."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from probekit.distillation import losses
from probekit.errors import ProbekitError
from training.checkpointing import optimizer_state
from training.config import RunConfig
from training.run_dir import RunDir
from training.trainer import Trainer, TrainingError

from .support.study_data import assert_same_curve, make_data

ROOT = Path(__file__).resolve().parents[1]  # `-m training` runs from the checkout: the processes start there


def run(tmp_path, name, **kw):
    cfg = dict(make_data(tmp_path, kw.pop("arch", "qwen2")), out=str(tmp_path / name), lr=3e-3, batch_size=4,
               epochs=4, eval_batch_size=8)
    cfg.update(kw)
    return Trainer(RunConfig(**cfg)).run()


@pytest.mark.parametrize("condition", [
    dict(condition="sft"),
    dict(condition="freeze", trainable=["attn"]),
    dict(condition="self_distill", variant="full"),
    dict(condition="self_distill", variant="topk", k=16),
    dict(condition="self_distill", variant="randomk", k=16),
    dict(condition="l2", lam=0.01),
], ids=lambda c: "-".join(str(v) for v in c.values()))
def test_each_condition_learns(tmp_path, condition):
    metrics = run(tmp_path, "run", **condition)
    train = [m for m in metrics if m["phase"] == "train"]
    assert [m["epoch"] for m in metrics] == [0, 1, 2, 3, 4]
    assert train[-1]["train_loss"] < train[0]["train_loss"]
    assert set(metrics[0]["accuracy"]) == {"known", "unknown", "held"}
    for m in metrics:  # per-fact correctness agrees with the accuracy
        assert {s: c.count("1") / len(c) for s, c in m["correct"].items()} == m["accuracy"]
    assert sorted(p.name for p in (tmp_path / "run" / "state").iterdir()) == ["trainer_state.json"]
    assert run(tmp_path, "run", **condition) == metrics  # a finished run is read back, not trained again
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == [f"epoch-{e:03d}" for e in range(5)]
    if condition["condition"] in ("self_distill", "l2"):
        assert [m["phase"] for m in metrics] == ["base", "snapshot", "train", "train", "train"]


@pytest.mark.parametrize("arch", ["qwen2", "llama", "gpt2"])
def test_frozen_groups_stay_bit_for_bit(tmp_path, arch):
    run(tmp_path, "run", arch=arch, condition="freeze", trainable=["down"], epochs=1)
    before = load_file(str(tmp_path / "base" / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "checkpoints" / "epoch-001" / "model.safetensors"))
    down = "mlp.c_proj" if arch == "gpt2" else "mlp.down_proj"
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(down in n for n in changed)
    assert {n for n in before if down in n} == changed  # every trainable one moved


def test_resume_after_kill_matches_uninterrupted(tmp_path, monkeypatch):
    kw = dict(condition="self_distill", variant="topk", k=16, epochs=4)
    straight = run(tmp_path, "straight", **kw)
    real = Trainer._train_epoch
    calls = {"n": 0}

    def killed(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # dies during epoch 3
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "_train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "resumed", **kw)
    assert [m["epoch"] for m in RunDir(tmp_path / "resumed").records()] == [0, 1, 2]
    monkeypatch.setattr(Trainer, "_train_epoch", real)
    resumed = run(tmp_path, "resumed", **kw)
    for a, b in zip(resumed[1:], straight[1:]):  # equal up to float reassociation in CPU kernels
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-6)
    assert [m["accuracy"] for m in resumed] == [m["accuracy"] for m in straight]


def test_resume_with_other_settings_is_refused(tmp_path):
    run(tmp_path, "run", epochs=1)
    with pytest.raises(ProbekitError, match="other settings.*lr"):
        run(tmp_path, "run", epochs=1, lr=1e-2)


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    real = losses.task_loss_sum
    monkeypatch.setattr(losses, "task_loss_sum", lambda logits, t: real(logits, t) * (
        float("nan") if (tmp_path / "run" / "checkpoints" / "epoch-002").exists() else 1.0))
    with pytest.raises(ProbekitError, match="epoch 3: loss became nan") as stopped:  # one line in every CLI
        run(tmp_path, "run", epochs=4)
    assert isinstance(stopped.value, TrainingError)
    assert (tmp_path / "run" / "checkpoints" / "epoch-002" / "model.safetensors").exists()
    assert [m["epoch"] for m in RunDir(tmp_path / "run").records()] == [0, 1, 2]


def test_keep_policy(tmp_path):
    run(tmp_path, "run", epochs=4, keep="last:2")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "epoch-000", "epoch-003", "epoch-004"]


def test_probe_callback(tmp_path):
    metrics = run(tmp_path, "run", epochs=2, probe=True)
    assert metrics[0]["probe"]["RD"] == pytest.approx(0, abs=1e-6)
    assert metrics[2]["probe"]["RD"] > 0 and {"NS", "MTD", "NTR", "JSD", "Rank-rho"} <= set(metrics[2]["probe"])


def cli_args(data, *extra, epochs=2):
    return ["--model", data["model"], "--known", data["known"], "--unknown", data["unknown"], "--held", data["held"],
            "--epochs", str(epochs), "--lr", "3e-3", "--batch-size", "4", *extra]


def torchrun(out, args, port, parallel):
    """`python -m training run` under torchrun with 2 gloo processes."""
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                    "-m", "training", "run", "--out", str(out), "--parallel", parallel, *args], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, cwd=ROOT)


@pytest.mark.parametrize("parallel,condition", [
    ("ddp", ["--condition", "self_distill", "--variant", "topk", "--k", "16"]),
    ("fsdp", ["--condition", "freeze", "--trainable", "attn"]),
])
@pytest.mark.slow
def test_two_processes_match_one(tmp_path, parallel, condition):
    """torchrun with 2 gloo processes (DDP, or FSDP2 with frozen groups) and the same global batch gives the single
    process's loss curve; under FSDP2 the frozen MLPs stay bit-for-bit."""
    data = make_data(tmp_path)
    args = cli_args(data, *condition)
    subprocess.run([sys.executable, "-m", "training", "run", "--out", str(tmp_path / "one"), *args], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, cwd=ROOT)
    torchrun(tmp_path / "two", args, 29533 if parallel == "ddp" else 29534, parallel)
    record = json.loads((tmp_path / "two" / "run.json").read_text())
    assert record["world_size"] == 2 and record["parallel"] == parallel
    assert_same_curve(RunDir(tmp_path / "one").records(), RunDir(tmp_path / "two").records())
    if parallel == "fsdp":
        before = load_file(str(tmp_path / "base" / "model.safetensors"))
        after = load_file(str(tmp_path / "two" / "checkpoints" / "epoch-002" / "model.safetensors"))
        changed = {n for n in before if not torch.equal(before[n], after[n])}
        assert changed and all("self_attn" in n for n in changed)


@pytest.mark.slow
def test_single_process_run_resumes_under_fsdp(tmp_path, monkeypatch):
    """A run killed after epoch 1 on one process resumes under FSDP2 (weights, optimizer state and RNG carried over)
    and ends where the uninterrupted run ends."""
    kw = dict(condition="self_distill", variant="full", epochs=3)
    straight = run(tmp_path, "straight", **kw)
    real = Trainer._train_epoch

    def killed(self, *a, **k):
        if a[0] == 3:  # epoch 3
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "_train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "resumed", **kw)
    data = {"model": str(tmp_path / "base"), **{s: str(tmp_path / f"{s}.jsonl") for s in ("known", "unknown", "held")}}
    torchrun(tmp_path / "resumed", cli_args(data, "--condition", "self_distill", "--variant", "full", epochs=3), 29535,
             "fsdp")
    assert_same_curve(straight, RunDir(tmp_path / "resumed").records())


@pytest.mark.slow(seconds=100)
def test_embedded_sft_learns_unknown_facts_and_series_probes(embedded, tmp_path):
    from probekit.cli import main as probekit_main
    from probekit.entities import fact_to_record
    from training.entityquestions import load_relation

    _, _, path = embedded
    facts = load_relation("P36", "train")[:48]

    def dump(name, items):
        (tmp_path / name).write_text("".join(json.dumps(fact_to_record(f)) + "\n" for f in items))
        return str(tmp_path / name)

    held = dump("h.jsonl", load_relation("P36", "dev")[:24])
    metrics = Trainer(RunConfig(out=str(tmp_path / "run"), model=str(path), known=dump("k.jsonl", facts[:24]),
                                unknown=dump("u.jsonl", facts[24:]), held=held, epochs=2, lr=2e-4, batch_size=8,
                                keep="all")).run()
    assert metrics[-1]["accuracy"]["unknown"] > metrics[0]["accuracy"]["unknown"]
    assert probekit_main(["probe", str(tmp_path / "run"), "--held", str(tmp_path / "h.jsonl"),
                          "--new", str(tmp_path / "u.jsonl"), "--out", str(tmp_path / "probes")]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "probes" / "probes.csv")
    rd = table.query("metric == 'RD'").set_index("index")["value"]
    assert list(rd.index) == [0, 1, 2] and rd[0] == pytest.approx(0, abs=1e-6) and rd[2] > 0
    # the probe's exact match is the trainer's own evaluation, fact for fact
    outcomes = pd.read_parquet(tmp_path / "probes" / "outcomes.parquet")
    for record in metrics:
        for which, trained in (("held", "held"), ("new", "unknown")):  # the new entities are the run's D_Unk
            got = outcomes.query(f"name == 'epoch-{record['epoch']:03d}' and set == '{which}'")["correct"]
            assert "".join(map(str, got)) == record["correct"][trained], (record["epoch"], which)
            assert table.query(f"metric == 'accuracy_{which}' and index == {record['epoch']}")["value"].item() == \
                pytest.approx(record["accuracy"][trained])
    forgetting = json.loads((tmp_path / "probes" / "held_forgetting.json").read_text())
    held_acc = [m["accuracy"]["held"] for m in metrics]
    assert forgetting["delta_pp"][0] == pytest.approx(100 * (max(held_acc) - held_acc[-1]))
    by_model = outcomes.query("set == 'held'").pivot(index="fact", columns="name", values="correct")
    answered = (by_model["θ0"] == 1) | (by_model[forgetting["peak"]] == 1)
    expected = by_model.index[answered & (by_model[forgetting["last"]] == 0)]
    assert list(pd.read_csv(tmp_path / "probes" / "lost.csv")["fact"]) == list(expected)


def test_saving_state_before_the_first_step_leaves_adam_untouched(tmp_path):
    """torch.distributed.checkpoint fills an empty optimizer state with a zero-gradient step; that step must not
    happen, or every later Adam update is bias-corrected as if one step more had been taken."""
    trainer = Trainer(RunConfig(**make_data(tmp_path), out=str(tmp_path / "run"), batch_size=4))
    model = trainer.load_model(trainer.base_path)
    optimizer = trainer.optimizer([p for p in model.parameters() if p.requires_grad])
    assert optimizer_state(model, optimizer) is None and not optimizer.state
    trainer.step(model, trainer.wrap(model), optimizer, trainer.prepare(trainer.train_examples[:4]))
    state = optimizer_state(model, optimizer)["state"]
    assert {float(s["step"]) for s in state.values()} == {1.0}


def test_theta0_probe_states_are_captured_once_for_the_runs_beside(tmp_path, monkeypatch):
    """A probed run captures θ0 once (its epoch 0 takes θ0's states), and a second run on the same facts takes θ0's
    from the first; epoch 0's states are exactly what capturing its checkpoint gives."""
    from probekit.drift_probe import DriftProbe
    from probekit.series import read_states

    captured = []
    capture = DriftProbe.capture
    monkeypatch.setattr(DriftProbe, "capture", lambda self, *a, **kw: captured.append(1) or capture(self, *a, **kw))
    cfg = dict(make_data(tmp_path), lr=3e-3, batch_size=4, epochs=2, eval_batch_size=8, probe=True)
    first = Trainer(RunConfig(**cfg, out=str(tmp_path / "a"))).run()
    assert len(captured) == 3  # θ0, epochs 1 and 2
    Trainer(RunConfig(**cfg, out=str(tmp_path / "b"), seed=1)).run()
    assert len(captured) == 5  # epochs 1 and 2 only
    assert first[0]["probe"]["RD"] == pytest.approx(0, abs=1e-12)
    probe = Trainer(RunConfig(**cfg, out=str(tmp_path / "a")))._probe()
    checkpoint = tmp_path / "a" / "checkpoints" / "epoch-000"
    fresh = probe.capture("fresh", checkpoint, probe.load(checkpoint))
    shared = read_states(tmp_path / "a" / "probes", "epoch-000")
    assert fresh.keys() == shared.keys() and all(torch.equal(fresh[k], shared[k]) for k in fresh)


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16"])
def test_epoch0_states_equal_a_fresh_capture_in_low_precision(tmp_path, precision):
    """Epoch 0's states (θ0's, not captured again) are what capturing its checkpoint gives, with bf16 in play."""
    from probekit.series import read_states

    cfg = dict(make_data(tmp_path), lr=3e-3, batch_size=4, epochs=1, eval_batch_size=8, probe=True,
               precision=precision, out=str(tmp_path / "a"))
    Trainer(RunConfig(**cfg)).run()
    probe = Trainer(RunConfig(**cfg))._probe()
    checkpoint = tmp_path / "a" / "checkpoints" / "epoch-000"
    fresh = probe.capture("fresh", checkpoint, probe.load(checkpoint))
    shared = read_states(tmp_path / "a" / "probes", "epoch-000")
    assert fresh.keys() == shared.keys() and all(torch.equal(fresh[k], shared[k]) for k in fresh)


@pytest.mark.parametrize("where", ["save_state", "append_jsonl"])
def test_a_run_killed_after_pruning_resumes_from_its_linked_state(tmp_path, monkeypatch, where):
    """state/ hard-links the epoch's checkpoint files: a kill after the previous checkpoint was pruned (while the
    state or the record is written) resumes to the uninterrupted run's records."""
    import training.checkpointing as ckpt
    import training.trainer as trainer_module

    cfg = dict(make_data(tmp_path), lr=3e-3, batch_size=4, epochs=4, eval_batch_size=8, keep="last:1", probe=True)
    straight = Trainer(RunConfig(**cfg, out=str(tmp_path / "straight"))).run()
    module = ckpt if where == "save_state" else trainer_module
    real = getattr(module, where)

    def dying(*args, **kwargs):
        epoch = args[3] if where == "save_state" else args[1]["epoch"]
        if epoch == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, where, dying)
    with pytest.raises(KeyboardInterrupt):
        Trainer(RunConfig(**cfg, out=str(tmp_path / "r"))).run()
    assert not (tmp_path / "r" / "checkpoints" / "epoch-002").exists()  # pruned; state/ holds its files
    monkeypatch.setattr(module, where, real)
    resumed = Trainer(RunConfig(**cfg, out=str(tmp_path / "r"))).run()
    assert [m["epoch"] for m in resumed] == [0, 1, 2, 3, 4]
    for a, b in zip(resumed[1:], straight[1:]):
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-6)
        assert a["probe"] == pytest.approx(b["probe"], rel=1e-5, abs=1e-7)
    assert [m["accuracy"] for m in resumed] == [m["accuracy"] for m in straight]
