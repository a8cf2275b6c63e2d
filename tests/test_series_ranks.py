"""A series probed across ranks (torchrun, 2 gloo processes on the CPU) gives the one-process table, resumes after
a kill, and neither hangs nor hides a failure when a rank has nothing to do or fails."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from probekit.cli import main

from .conftest import save_checkpoint, tiny_model
from .support.series import probe_args


def torchrun(args, **popen):
    """`probekit` under torchrun with 2 processes (a free port: --standalone)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "probekit",
           *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc, timeout=240) -> str:
    out, _ = proc.communicate(timeout=timeout)  # a hang fails here instead of stalling the suite
    return out


@pytest.mark.slow(seconds=25)
def test_two_ranks_give_the_one_process_table_and_resume_after_a_kill(tiny_series):
    tmp, run, base, held, unk = tiny_series
    assert main(probe_args(run, held, unk, tmp / "one", "--layers", "all")) == 0
    one = pd.read_csv(tmp / "one" / "probes.csv")

    proc = torchrun(probe_args(run, held, unk, tmp / "two", "--layers", "all"))
    log = finish(proc)
    assert proc.returncode == 0, log
    two = pd.read_csv(tmp / "two" / "probes.csv")
    pd.testing.assert_frame_equal(two.drop(columns="checkpoint"), one.drop(columns="checkpoint"),
                                  check_exact=False, atol=1e-6, rtol=1e-6)
    assert sorted(p.name for p in (tmp / "two" / "states").iterdir()) == \
        sorted(p.name for p in (tmp / "one" / "states").iterdir())

    # killed once θ0's states are written; the same command then finishes only what is missing
    out = tmp / "killed"
    proc = torchrun(probe_args(run, held, unk, out, "--layers", "all"), start_new_session=True)
    deadline = time.monotonic() + 180
    while not (out / "states" / "_base.safetensors").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, finish(proc)
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    finish(proc)
    done = {p.name: p.stat().st_mtime_ns for p in (out / "states").glob("*.safetensors")}
    assert "_base.safetensors" in done
    log = finish(torchrun(probe_args(run, held, unk, out, "--layers", "all")))
    resumed = pd.read_csv(out / "probes.csv")
    pd.testing.assert_frame_equal(resumed.drop(columns="checkpoint"), one.drop(columns="checkpoint"),
                                  check_exact=False, atol=1e-6, rtol=1e-6)
    assert {name: (out / "states" / name).stat().st_mtime_ns for name in done} == done, log  # not recomputed


@pytest.mark.slow(seconds=16)
def test_a_rank_with_nothing_to_do_and_a_failing_rank(tiny_series):
    tmp, run, base, held, unk = tiny_series
    one_checkpoint = ["probe", "--checkpoints", str(run / "checkpoints" / "epoch-002"), "--base", str(base),
                      "--held", str(held), "--unknown", str(unk), "--k", "5"]
    proc = torchrun([*one_checkpoint, "--out", str(tmp / "lonely")])
    log = finish(proc)
    assert proc.returncode == 0, log
    assert pd.read_csv(tmp / "lonely" / "probes.csv")["name"].unique().tolist() == ["epoch-002"]

    # rank 1's checkpoint fails to load (its tensors have the wrong shape): every rank stops, none hangs
    vocab = json.loads((base / "config.json").read_text())["vocab_size"]
    wrong = tiny_model("qwen2", vocab + 1)  # one embedding row more than its config says: loading fails
    wrong.config.vocab_size = vocab
    save_checkpoint(wrong, None, tmp / "wrong")
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / f).exists():
            (tmp / "wrong" / f).write_bytes((base / f).read_bytes())
    two = ["probe", "--checkpoints", str(run / "checkpoints" / "epoch-001"), str(tmp / "wrong"), "--base", str(base),
           "--held", str(held), "--unknown", str(unk), "--k", "5", "--out", str(tmp / "failing")]
    proc = torchrun(two)
    log = finish(proc)
    assert proc.returncode != 0
    assert f"probekit: error: rank 1 failed: cannot load the weights in {tmp / 'wrong'}" in log, log



def test_the_costly_checkpoints_are_dealt_in_turn_and_the_cached_ones_read_by_rank_0():
    from probekit.ranks import Ranks

    items = list("abcdefg")
    work = [1, 2, 4, 6]  # b, c, e, g still need capturing; a, d, f are cached
    shares = [Ranks(rank=r, world=2).deal(items, work) for r in (0, 1)]
    assert shares[0] == [(0, "a"), (1, "b"), (3, "d"), (4, "e"), (5, "f")]
    assert shares[1] == [(2, "c"), (6, "g")]
    assert Ranks().deal(items, work) == list(enumerate(items))
