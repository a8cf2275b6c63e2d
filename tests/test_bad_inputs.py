"""Every bad input to `probekit probe`: one line on stderr, exit status 2, no traceback, nothing half-written."""
import json
import shutil
import sys

import pandas as pd
import pytest

from probekit.cli import main

from .conftest import byte_bpe_tokenizer, metaspace_bpe_tokenizer, save_checkpoint, tiny_model
from .support.series import probe_args


def refused(capsys, argv, match, out):
    """`probekit probe argv` fails with one line naming `match`, and writes nothing under `out`."""
    existed = out.exists()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if "probekit: error:" in line]
    assert len(lines) == 1 and match in lines[0], err
    assert out.exists() == existed and not (out.is_dir() and any(out.iterdir()))


def test_facts_file_not_utf8(tiny_series, capsys):
    tmp, run, base, held, unk = tiny_series
    latin = tmp / "latin.jsonl"
    latin.write_bytes(json.dumps({"question": "Where is Zürich?", "answers": ["Switzerland"], "entity": "Zürich"},
                                 ensure_ascii=False).encode("latin-1") + b"\n")
    refused(capsys, probe_args(run, latin, unk, tmp / "p"), "latin.jsonl is not UTF-8", tmp / "p")


@pytest.mark.parametrize("k, match", [("0", "--k must be at least 1"), ("500", "larger than the vocabulary")])
def test_k_out_of_range(tiny_series, capsys, k, match):
    tmp, run, base, held, unk = tiny_series
    refused(capsys, probe_args(run, held, unk, tmp / "p") + ["--k", k], match, tmp / "p")


def test_out_is_an_existing_file(tiny_series, capsys):
    tmp, run, base, held, unk = tiny_series
    (tmp / "taken").write_text("keep me")
    refused(capsys, probe_args(run, held, unk, tmp / "taken"), "is an existing file", tmp / "taken")
    assert (tmp / "taken").read_text() == "keep me"


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def test_truncated_weights_named_and_skippable(tiny_series, capsys, caplog):
    tmp, run, base, held, unk = tiny_series
    truncate(run / "checkpoints" / "epoch-001" / "model.safetensors")
    refused(capsys, probe_args(run, held, unk, tmp / "p"), "epoch-001/model.safetensors is truncated", tmp / "p")
    assert main(probe_args(run, held, unk, tmp / "p", "--skip-broken")) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert [r.getMessage().split(":")[:3] for r in caplog.records if r.name == "probekit"] == [
        ["probekit", " warning", " skipping epoch-001"]]
    assert sorted(set(pd.read_csv(tmp / "p" / "probes.csv")["name"])) == ["epoch-000", "epoch-002"]


def test_training_state_is_not_weights(tiny_series, capsys):
    """A Trainer checkpoint whose weights were deleted: optimizer.pt & co. are training state, not weights."""
    tmp, run, base, held, unk = tiny_series
    ckpt = run / "checkpoints" / "epoch-001"
    (ckpt / "model.safetensors").unlink()
    for name in ("optimizer.pt", "rng_state.pth", "scheduler.pt", "training_args.bin"):
        (ckpt / name).write_bytes(b"\x80\x04N.")
    assert main(probe_args(run, held, unk, tmp / "p")) == 2
    err = capsys.readouterr().err
    assert "epoch-001 holds no weights" in err and "optimizer.pt," not in err and "Traceback" not in err


def test_no_recorded_base_says_where_to_look(tiny_series, capsys):
    tmp, run, base, held, unk = tiny_series
    (run / "run.json").unlink()
    refused(capsys, probe_args(run, held, unk, tmp / "p"), "adapter_config.json base_model_name_or_path", tmp / "p")


def test_really_different_tokenizer_names_what_differs(tiny_series, capsys):
    tmp, run, base, held, unk = tiny_series
    other = run / "checkpoints" / "epoch-002"
    shutil.rmtree(other)
    save_checkpoint(tiny_model("qwen2", len(byte_bpe_tokenizer())), metaspace_bpe_tokenizer(), other)
    refused(capsys, probe_args(run, held, unk, tmp / "p"), "pre-tokeniser", tmp / "p")


def test_adapters_and_full_checkpoints_mixed(tiny_series, capsys):
    tmp, run, base, held, unk = tiny_series
    adapter = run / "checkpoints" / "epoch-003"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    refused(capsys, probe_args(run, held, unk, tmp / "p"), "mixes full checkpoints (epoch-000, epoch-001, epoch-002) "
            "and PEFT adapters (epoch-003)", tmp / "p")


def lora_series(tmp, base, steps=(1, 2)):
    """PEFT LoRA adapters of `base` as a Trainer saves them: run/checkpoint-N/adapter_config.json + weights."""
    from peft import LoraConfig, get_peft_model

    from probekit.models import load_causal_lm

    run = tmp / "lora"
    for step in steps:
        lora = get_peft_model(load_causal_lm(base), LoraConfig(r=2, target_modules=["q_proj"],
                                                               init_lora_weights=False))
        lora.save_pretrained(run / f"checkpoint-{step}")
    return run


def test_adapter_series_checked_before_anything_is_written(tiny_series, capsys, monkeypatch):
    """Without peft, or with an adapter_config.json peft cannot read, nothing is written (no probe.json, no θ0)."""
    tmp, run, base, held, unk = tiny_series
    lora = lora_series(tmp, base)
    args = probe_args(lora, held, unk, tmp / "p", "--base", str(base))
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "peft", None)  # a machine without peft: `import peft` fails
        refused(capsys, args, "install peft to probe it (pip install 'probekit[peft]')", tmp / "p")
    (lora / "checkpoint-2" / "adapter_config.json").write_text('{"peft_type": "LORA", ')
    refused(capsys, args, "checkpoint-2/adapter_config.json is not a PEFT adapter config", tmp / "p")


def test_every_checkpoint_skipped_is_an_error(tiny_series, capsys):
    """--skip-broken skipping every checkpoint (adapters that do not fit the base) exits 2, not 0."""
    tmp, run, base, held, unk = tiny_series
    lora = lora_series(tmp, base, steps=(1,))
    config = json.loads((lora / "checkpoint-1" / "adapter_config.json").read_text())
    (lora / "checkpoint-1" / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["nope"]}))
    assert main(probe_args(lora, held, unk, tmp / "p", "--base", str(base), "--skip-broken")) == 2
    err = capsys.readouterr().err
    assert "probekit: error: no checkpoint was probed" in err and "Traceback" not in err
