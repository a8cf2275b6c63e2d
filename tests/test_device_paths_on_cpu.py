"""What runs differently on a GPU, checked on the CPU: collectives on the model's device, a last batch smaller than
the world, rank 0's long epoch end, fp32 master weights under bf16, the teacher in the student's precision, TF32,
autocast at evaluation, a vectorised ℓ2, no host read-back inside a step, and the GPU check's smoke run."""
import inspect
import json
import os
import subprocess
import tarfile
import sys
import textwrap

import pytest
import torch

from probekit.distillation import losses
from probekit.distillation.objective import Objective
from training.config import RunConfig
from training.distributed import all_sum
from training.trainer import Trainer

from .support.study_data import COUNTRIES, PLACES, assert_same_curve, make_data, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}


def trainer(tmp_path, **kw):
    return Trainer(RunConfig(**{**make_data(tmp_path), "out": str(tmp_path / "run"), "batch_size": 4, **kw}))


def test_all_sum_builds_its_tensor_on_the_given_device():
    """NCCL reduces only CUDA tensors: the sum is built on the device asked for, never on the host."""
    assert all_sum(3, torch.device("meta")).device.type == "meta"
    assert all_sum(torch.ones(2), torch.device("meta")).device.type == "meta"


def torchrun(script, args, port):
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                    str(script), *args], check=True, env=ENV, capture_output=True, cwd=ROOT, timeout=600)


RECORDING_RUN = textwrap.dedent("""
    import json, os, sys
    import torch.distributed as dist
    import training.trainer
    from training.__main__ import main

    seen, devices = [], {}
    for name in ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor"):
        real = getattr(dist, name)
        def spy(tensor, *a, _real=real, **k):
            seen.append(str(tensor.device))
            return _real(tensor, *a, **k)
        setattr(dist, name, spy)
    init = training.trainer.Trainer.__init__
    def record(self, config):
        init(self, config)
        devices["trainer"] = str(self.device)
    training.trainer.Trainer.__init__ = record
    code = main(sys.argv[2:])
    with open(f"{sys.argv[1]}.{os.environ['RANK']}.json", "w") as fh:  # the group is gone once main returns
        json.dump({"collectives": seen, **devices}, fh)
    sys.exit(code)
""")


@pytest.mark.slow
def test_short_last_batch_and_collective_devices_under_two_processes(tmp_path):
    """9 training examples in global batches of 4 leave a last batch of 1: the rank without an example computes a
    stand-in with weight 0, the run finishes with the single process's loss curve, and every collective's tensor
    lives on the device the trainer computes on."""
    data = make_data(tmp_path)
    data["unknown"] = write(tmp_path / "unknown.jsonl", [(p, COUNTRIES[i % 5]) for i, p in enumerate(PLACES[4:9])])
    kw = dict(condition="self_distill", variant="topk", k=16, epochs=2, lr=3e-3, batch_size=4)
    one = Trainer(RunConfig(**data, out=str(tmp_path / "one"), **kw)).run()
    script = tmp_path / "recording_run.py"
    script.write_text(RECORDING_RUN)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**data, **kw}.items()]
    torchrun(script, [str(tmp_path / "seen"), "run", "--out", str(tmp_path / "two"), *flags], 29541)
    from training.run_dir import RunDir

    assert_same_curve(one, RunDir(tmp_path / "two").records())
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"seen.{rank}.json").read_text())
        assert seen["collectives"] and set(seen["collectives"]) == {seen["trainer"]}


WAITING = textwrap.dedent("""
    import sys, time
    from datetime import timedelta
    import torch, torch.distributed as dist
    from training.distributed import all_sum, barrier, init_distributed, shutdown_distributed

    init_distributed(timeout=timedelta(seconds=3))
    if dist.get_rank() == 0:
        time.sleep(6)  # rank 0's epoch end, longer than the collectives' timeout
    barrier()
    assert float(all_sum(1, torch.device("cpu"))) == 2
    open(f"{sys.argv[1]}.{dist.get_rank()}", "w").write("ok")
    shutdown_distributed()
""")


@pytest.mark.slow
def test_other_ranks_wait_out_a_long_rank0_stretch(tmp_path):
    script = tmp_path / "waiting.py"
    script.write_text(WAITING)
    torchrun(script, [str(tmp_path / "done")], 29542)
    assert (tmp_path / "done.0").exists() and (tmp_path / "done.1").exists()


def test_bf16_weights_keep_an_fp32_master_copy(tmp_path):
    """At lr 1e-4 an AdamW step moves a weight of 1.0 by 1e-4, below bf16's resolution there (2^-8): the update
    accumulates in the fp32 master copy, and the bf16 weight follows once it is large enough to show."""
    t = trainer(tmp_path, precision="bf16", lr=1e-4)
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = t.optimizer([p])
    for _ in range(100):
        p.grad = torch.ones_like(p)
        opt.step()
    master = opt.state[p]["master"]
    assert master.dtype == torch.float32 and master[0].item() == pytest.approx(1 - 100 * 1e-4, abs=1e-5)
    assert p[0].item() == master[0].bfloat16().item() < 1
    again = t.optimizer([torch.nn.Parameter(p.detach().clone())])
    again.load_state_dict(opt.state_dict())  # resuming keeps the master copy and moments in fp32
    state = next(iter(again.state.values()))
    assert state["master"].dtype == state["exp_avg"].dtype == torch.float32 and torch.equal(state["master"], master)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_teacher_in_the_students_precision_gives_zero_kl(tmp_path, precision):
    t = trainer(tmp_path, condition="self_distill", variant="full", teacher=str(tmp_path / "base"),
                precision=precision)
    model = t.load_model(t.base_path).train()
    reg = t.make_regularizer(model)
    assert next(reg.teacher.parameters()).dtype == next(model.parameters()).dtype
    local = t.prepare(t.train_examples[:4], reg)
    _, kl = Objective(model)(local.batch, local.examples, reg, local.teacher)
    assert kl.item() == 0


def test_a_gpu_run_resolves_bf16_autocast_and_tf32(tmp_path):
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        t = trainer(tmp_path, device="cuda")  # nothing touches the device before the model loads
        assert t.precision == "bf16-mixed" and t.autocast.device == "cuda" and t.autocast.fast_dtype == torch.bfloat16
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def test_evaluation_decodes_under_the_training_autocast(tmp_path, monkeypatch):
    import training.trainer

    seen = []
    real = training.trainer.evaluate
    monkeypatch.setattr(training.trainer, "evaluate",
                        lambda *a: seen.append(torch.is_autocast_enabled("cpu")) or real(*a))
    t = trainer(tmp_path, precision="bf16-mixed")
    t.run_dir.path.mkdir(parents=True)
    model = t.load_model(t.base_path)
    t._end_epoch(model, t.optimizer(list(model.parameters())), {"epoch": 0, "phase": "base"}, None)
    assert seen == [True]


def test_l2_to_snapshot_vectorised_matches_the_loop():
    torch.manual_seed(0)
    params = {f"p{i}": torch.randn(37, 11, requires_grad=True) for i in range(20)}
    snap = {n: p.detach() + 0.01 * torch.randn_like(p) for n, p in params.items()}
    loop = sum(((p.float() - snap[n].float()) ** 2).sum() for n, p in params.items())
    assert losses.l2_to_snapshot(params, snap).item() == loop.item()  # the CPU path: the same floats
    assert losses.l2_to_snapshot(params, snap, fused=True).item() == pytest.approx(loop.item(), rel=1e-6, abs=1e-6)


# not __bool__: transformers' SDPA mask builder asks whether the padding mask is all ones (one read-back per
# forward inside the model, which packed rows without a padding mask remove)
READ_BACKS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__")


@pytest.mark.parametrize("condition", [
    dict(condition="sft"), dict(condition="self_distill", variant="topk", k=16),
    dict(condition="self_distill", variant="full"), dict(condition="l2", lam=0.01),
    dict(condition="sft", pack="on"), dict(condition="self_distill", variant="topk", k=16, pack="on"),
    dict(condition="self_distill", variant="full", pack="on"),
], ids=lambda c: "-".join(str(v) for v in c.values()))
def test_a_step_reads_nothing_back_from_the_device(tmp_path, monkeypatch, condition):
    """The CPU proxy for "no host synchronisation in a step": no tensor method that copies to the host runs inside
    ``Trainer.step`` (the batch and the teacher's rows are prepared before it, losses read back in bulk after).
    Packed rows give the model its mask whole, so there not even the padding-mask check reads back."""
    source = inspect.getsource(Trainer.step)
    assert not any(f".{name}(" in source for name in READ_BACKS) and "float(" not in source
    t = trainer(tmp_path, teacher=str(tmp_path / "base"), **condition)
    model = t.load_model(t.base_path)
    reg = t.make_regularizer(model) if condition["condition"] != "sft" else None
    kwargs = {"regularizer": reg} if reg else {}
    local = t.prepare(t.train_examples[:4], *([reg] if reg else []))
    # fused AdamW, as on a GPU: the CPU's for-each AdamW reads its step counter, a host tensor there, with .item()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=t.config.lr, fused=True)
    objective = t.wrap(model)

    def refuse(*a, **k):
        raise AssertionError("a read-back from the device inside Trainer.step")

    assert local.batch.packed == (condition.get("pack") == "on")
    for name in READ_BACKS + (("__bool__",) if local.batch.packed else ()):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    out = t.step(model, objective, optimizer, local, **kwargs)
    monkeypatch.undo()
    assert out.shape == (2,) and out[1].item() == sum(len(e.input_ids) for e in t.train_examples[:4])


@pytest.mark.slow(seconds=85)
def test_gpu_check_smoke(tmp_path):
    """bench/gpu_check.sh --smoke: every bench on a tiny config on the CPU and the micro pipeline (SLiCK-free splits,
    the fig5 runs with their probe, the figure), their JSON and the pipeline's files under $OUT (≈ 100 s); its
    scratch folder (≈ 650 MB) is removed at exit."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    subprocess.run(["bash", "bench/gpu_check.sh", "--smoke"], check=True, cwd=ROOT, timeout=900,
                   env={**ENV, "OUT": str(tmp_path / "out"), "TMPDIR": str(scratch)}, capture_output=True)
    ours = ("tmp.", "train-bench-", "series-bench-")  # mktemp -d and the benches' folders (libraries' caches may stay)
    assert not [p.name for p in scratch.iterdir() if p.name.startswith(ours)]
    for name in ("train_bench", "probe_bench", "slick_bench", "eval_bench", "estimate"):
        assert json.loads((tmp_path / "out" / f"{name}.json").read_text())
    with tarfile.open(tmp_path / "out" / "pipeline.tar.gz") as tar:
        assert any(n.endswith("fig5.csv") for n in tar.getnames())


def test_evaluation_asks_in_the_runs_prompt_format(tmp_path, monkeypatch):
    from probekit import exact_match

    asked = []
    real = exact_match.ExactMatch.correct
    monkeypatch.setattr(exact_match.ExactMatch, "correct", lambda self, p, a: asked.extend(p) or real(self, p, a))
    t = trainer(tmp_path, prompt_format="Question: {question}\nAnswer:")
    t.run_dir.path.mkdir(parents=True)
    model = t.load_model(t.base_path)
    t._end_epoch(model, t.optimizer(list(model.parameters())), {"epoch": 0, "phase": "base"}, None)
    assert asked and all(p.startswith("Question: ") and p.endswith("\nAnswer:") for p in asked)


def test_probe_cache_key_names_the_device_and_dtype(tmp_path):
    """A run resumed on another device must not mix fp32-CPU and bf16-GPU states in one series."""
    from probekit.series import ProbeConfig, SeriesProbe

    t = trainer(tmp_path)
    held = t.facts["held"]

    def key(**kw):
        return SeriesProbe(t.base_path, held, None, None, tmp_path / "probes", ProbeConfig(**kw)).key(t.base_path)

    assert key(device="cpu") == key(device="cpu", dtype="float32")
    assert len({key(device="cpu"), key(device="cuda"), key(device="cpu", dtype="bfloat16")}) == 3


def test_a_machine_with_a_gpu_runs_probe_recall_and_slick_there(tmp_path, monkeypatch):
    """Unset devices resolve to the GPU (the probe callback takes the run's device and precision), and probe and
    decoding batches grow to GPU sizes."""
    from probekit import capture, models
    from probekit import decoding

    from .conftest import byte_bpe_tokenizer, tiny_model

    mixed = trainer(tmp_path, device="cuda", probe=True)  # nothing touches the device before a model loads
    fp32 = trainer(tmp_path, device="cuda", probe=True, precision="fp32")
    assert (mixed._probe().device, mixed._probe().dtype) == ("cuda", torch.bfloat16)
    assert fp32._probe().dtype == torch.float32
    tok = byte_bpe_tokenizer()
    model = tiny_model("llama", len(tok))
    assert capture.Prober(model, tok).batch_tokens is None and decoding.default_batch_size(model) == 32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.default_device() == "cuda" and models.resolve_dtype(None, "cuda") == torch.bfloat16
    monkeypatch.setattr(capture.Prober, "device", property(lambda self: torch.device("cuda")))
    assert capture.Prober(model, tok).batch_tokens == capture.GPU_BATCH_TOKENS
    monkeypatch.setattr(torch.nn.Module, "parameters", lambda self: iter([torch.empty(0, device="meta")]))
    monkeypatch.setattr(torch.Tensor, "device", property(lambda self: torch.device("cuda")))
    assert decoding.default_batch_size(model) == decoding.GPU_BATCH
