"""`probekit probe` / `plot` end to end on small series, resumption, and one-line errors with exit status 2."""
import json
import shutil

import pandas as pd
import pytest
import torch

from probekit import series
from probekit.capture import Prober
from probekit.entities import read_facts
from probekit.models import load_causal_lm
from probekit.cli import main

from .conftest import byte_bpe_tokenizer, metaspace_bpe_tokenizer, save_checkpoint, tiny_model
from .support.references import ref_output_metrics, ref_pairs
from .support.series import HELD, UNKNOWN, perturb, probe_args, write_facts


def reference_output_metrics(base, ckpt, held, unk, k=5):
    tok = byte_bpe_tokenizer()
    held_f, unk_f = read_facts(held), read_facts(unk)
    z0 = Prober(load_causal_lm(base), tok).capture(held_f, keep_logits=True).logits.numpy()
    prober = Prober(load_causal_lm(ckpt), tok)
    zu = prober.capture(unk_f, keep_logits=True).logits.numpy()
    zh = prober.capture(held_f, keep_logits=True).logits.numpy()
    pairs = ref_pairs([f.answer for f in unk_f], [f.answer for f in held_f])
    return ref_output_metrics(zu, zh, z0, pairs, k)


def test_probe_series_end_to_end_and_resume(tiny_series, monkeypatch, capsys):
    tmp, run, base, held, unk = tiny_series
    out = tmp / "probes"
    assert main(probe_args(run, held, unk, out)) == 0  # base taken from run.json
    df = pd.read_csv(out / "probes.csv")
    assert set(df.columns) == set(series.COLUMNS)
    assert set(df["metric"]) == {"RD", "NS", "MTD", "Rank-rho", "NTR", "JSD", "accuracy_held", "accuracy_unknown"}
    assert list(df[df.metric == "RD"]["index"]) == [0, 1, 2]
    rd = df[df.metric == "RD"].set_index("index")["value"]
    assert rd[0] == pytest.approx(0, abs=1e-6) and 0 < rd[1] < rd[2]
    ntr0 = df[(df.metric == "NTR") & (df["index"] == 0)]["value"].item()
    assert 0 <= ntr0 <= 1
    # the output metrics of the last checkpoint equal the reference loop on full-vocabulary logits
    last = df[df["index"] == 2].set_index("metric")["value"]
    assert [last["Rank-rho"], last["NTR"], last["JSD"]] == pytest.approx(
        reference_output_metrics(base, run / "checkpoints" / "epoch-002", held, unk), abs=1e-5)
    assert (df["layer"] == 2).all()  # 4 layers → middle layer 2
    pd.testing.assert_frame_equal(pd.read_parquet(out / "probes.parquet"), df)
    manifest = json.loads((out / "probe.json").read_text())
    assert manifest["sizes"]["pairs"] == 3 and manifest["layer"] == 2

    # a re-run reuses every cached state: loading a model now would fail
    def no_load(*a, **k):
        raise AssertionError("re-run loaded a model")

    monkeypatch.setattr(series, "load_causal_lm", no_load)
    assert main(probe_args(run, held, unk, out)) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "probes.csv"), df)
    # an interrupted run (one state file missing) recomputes only that one
    monkeypatch.undo()
    (out / "states" / "epoch-001.safetensors").unlink()
    loaded = []
    real = series.load_causal_lm
    monkeypatch.setattr(series, "load_causal_lm", lambda p, **k: loaded.append(p.name) or real(p, **k))
    assert main(probe_args(run, held, unk, out)) == 0
    assert loaded == ["epoch-001"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "probes.csv"), df)
    # plotting
    assert main(["plot", str(out), "--metric", "RD", "--out", str(tmp / "fig" / "rd")]) == 0
    assert (tmp / "fig" / "rd.png").stat().st_size > 0 and (tmp / "fig" / "rd.pdf").exists()


def test_changed_layer_recomputes(tiny_series):
    tmp, run, base, held, unk = tiny_series
    out = tmp / "probes"
    assert main(probe_args(run, held, unk, out, "--layer", "1")) == 0
    assert main(probe_args(run, held, unk, out, "--layer", "3")) == 0
    assert (pd.read_csv(out / "probes.csv")["layer"] == 3).all()


def one_line_error(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("probekit: error:") == 1, err
    line = err.splitlines()[-1]  # earlier lines can only be progress bars
    assert line.startswith("probekit: error:") and match in line, err


def test_errors_are_one_line_exit_2(tiny_series, capsys, tmp_path):
    tmp, run, base, held, unk = tiny_series
    out = str(tmp / "p")
    one_line_error(capsys, probe_args(tmp / "nope", held, unk, out), "run directory not found")
    (tmp / "empty").mkdir()
    one_line_error(capsys, probe_args(tmp / "empty", held, unk, out), "no checkpoints")
    one_line_error(capsys, probe_args(run, held, unk, out, "--layer", "9"), "layer 9 is out of range")
    bad = tmp / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Which country is Milan in?", "answers": ["Italy"], "entity": "Rome"}))
    one_line_error(capsys, probe_args(run, bad, unk, out), "entity 'Rome' not found")
    # pickle-only checkpoint
    pickled = tmp / "pickled"
    shutil.copytree(run / "checkpoints" / "epoch-001", pickled / "epoch-001")
    model = tiny_model("qwen2", len(byte_bpe_tokenizer()))
    (pickled / "epoch-001" / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "epoch-001" / "pytorch_model.bin")
    one_line_error(capsys, probe_args(pickled, held, unk, out, "--base", str(base)), "--allow-pickle")
    # a checkpoint with another tokenizer
    mixed = tmp / "mixed"
    shutil.copytree(run / "checkpoints", mixed)
    other = metaspace_bpe_tokenizer()
    shutil.rmtree(mixed / "epoch-002")
    save_checkpoint(tiny_model("qwen2", len(byte_bpe_tokenizer())), other, mixed / "epoch-002")
    one_line_error(capsys, probe_args(mixed, held, unk, out, "--base", str(base)),
                   "epoch-002 has a different tokenizer")
    # a checkpoint of another architecture
    arch = tmp / "arch"
    shutil.copytree(run / "checkpoints", arch)
    shutil.rmtree(arch / "epoch-001")
    save_checkpoint(tiny_model("llama", len(byte_bpe_tokenizer())), byte_bpe_tokenizer(), arch / "epoch-001")
    one_line_error(capsys, probe_args(arch, held, unk, out, "--base", str(base)),
                   "epoch-001 has a different architecture")
    one_line_error(capsys, probe_args(tmp / "empty", held, unk, out, "--base", str(tmp / "nobase")), "no checkpoints")
    # no recorded base
    norecord = tmp / "norecord"
    shutil.copytree(run / "checkpoints", norecord)
    one_line_error(capsys, probe_args(norecord, held, unk, out), "--base")


@pytest.mark.slow
def test_embedded_two_checkpoint_series_from_cli(embedded, tmp_path, capsys):
    """θ0 plus a perturbed copy of the embedded model: RD = 0 for θ0 against itself, RD > 0 for the copy."""
    model, tok, path = embedded
    run = tmp_path / "run"
    shutil.copytree(path, run / "epoch-000")
    perturbed = perturb(type(model)(model.config), 0.0, 0)
    perturbed.load_state_dict(model.state_dict())
    save_checkpoint(perturb(perturbed, 2e-3, 1), tok, run / "epoch-001")
    held = write_facts(tmp_path / "held.jsonl", HELD)
    unk = write_facts(tmp_path / "unk.jsonl", UNKNOWN)
    out = tmp_path / "probes"
    assert main(["probe", str(run), "--base", "embedded", "--held", str(held), "--unknown", str(unk),
                 "--out", str(out)]) == 0
    df = pd.read_csv(out / "probes.csv")
    rd = df[df.metric == "RD"].set_index("index")["value"]
    assert rd[0] == pytest.approx(0, abs=1e-6)
    assert rd[1] > 1e-4
    assert (df["layer"] == 15).all()


def test_tensor_cache_is_keyed_and_atomic(tmp_path):
    from probekit.io import read_tensors, write_tensors

    f = tmp_path / "c" / "x.safetensors"
    assert read_tensors(f, "k") is None
    t = {"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.ones(2, dtype=torch.long)}  # a non-contiguous view
    write_tensors(f, t, "k", model="m")
    back = read_tensors(f, "k")
    assert set(back) == {"a", "b"} and torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"])
    assert read_tensors(f, "other") is None and read_tensors(f) is not None
    assert [p.name for p in f.parent.iterdir()] == ["x.safetensors"]  # no temporary left behind


def test_dtype_changes_results_so_it_is_not_runtime():
    from probekit.config import runtime_fields

    assert "dtype" not in runtime_fields(series.ProbeConfig) and "device" in runtime_fields(series.ProbeConfig)
