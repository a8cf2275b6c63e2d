"""RunConfig and `python -m training`'s command line: flags from the settings dataclasses, TOML under flags, the
run key and the resume check (runtime fields left out of both)."""
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

import pytest

from probekit.config import read_toml
from probekit.errors import ProbekitError
from training.__main__ import COMMANDS, build_parser, main
from training.config import RUNTIME, RunConfig, check_same_settings, run_key


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_runtime_fields():
    assert RUNTIME == {"out", "device", "pack", "pack_tokens", "parallel", "eval_batch_size", "log_every", "cache_dir"}


def named_key(named: dict) -> str:
    """How the analyses first named run folders: sha256 of the sorted-key JSON of the settings a plan named."""
    return hashlib.sha256(json.dumps(named, sort_keys=True, default=str).encode()).hexdigest()[:12]


SCHEDULE = dict(model=RunConfig.model, condition="sft", epochs=10, lr=5e-5, batch_size=16, snapshot_epoch=1, lam=1.0,
                tau=0.5, keep="all", seed=0)  # what every plan names (KEYED), at RunConfig's defaults


def test_run_key_hashes_what_an_analysis_names():
    """The KEYED fields always, other results-changing fields when set and not at their default, a
    self-distillation run's variant even at its default; runtime fields never."""
    sft = RunConfig(known="k.jsonl", unknown="u.jsonl", lr=1e-4, epochs=5, device="cpu", out="x")
    assert run_key(sft) == named_key({**SCHEDULE, "known": "k.jsonl", "unknown": "u.jsonl", "lr": 1e-4, "epochs": 5})
    freeze = RunConfig(model="m", condition="freeze", trainable=["attn"], keep="last:1", eval_limit=96, layer=14)
    assert run_key(freeze) == named_key({**SCHEDULE, "model": "m", "condition": "freeze", "trainable": ["attn"],
                                         "keep": "last:1", "eval_limit": 96, "probe_layer": 14})
    distill = RunConfig(condition="self_distill", k=16, probe=True, distill_positions="all")
    assert run_key(distill) == named_key({**SCHEDULE, "condition": "self_distill", "variant": "full", "k": 16,
                                          "probe": True})  # distill_positions at its default: as before it existed
    assert run_key(replace(distill, distill_positions="answer")) != run_key(distill)
    assert run_key(replace(sft, parallel="fsdp", eval_batch_size=8, cache_dir="/c", pack="on")) == run_key(sft)


def test_resume_check_ignores_runtime_fields_and_fills_new_ones():
    config = RunConfig(out="a", known="k.jsonl", lr=1e-3)
    stored = {k: v for k, v in asdict(config).items() if k != "cache_dir"}  # a field added since
    check_same_settings({**stored, "device": "cuda", "parallel": "fsdp", "eval_batch_size": 3, "out": "b"},
                        config, "a")
    with pytest.raises(ProbekitError, match="other settings.*lr"):
        check_same_settings({**stored, "lr": 1e-2}, config, "a")


def test_every_flag_has_help():
    for name in COMMANDS:
        sub = build_parser()._subparsers._group_actions[0].choices[name]
        assert all(a.help for a in sub._actions), name


def test_run_flags_old_spellings_and_toml_under_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('out = "runs/a"\nlr = 1e-3\nepochs = 3\ntrainable = ["attn"]\ncondition = "freeze"\n')
    args = build_parser(read_toml(toml, RunConfig)).parse_args(
        ["run", "--epochs", "4", "--batch-size", "8", "--snapshot-epoch", "2", "--eval-limit", "5", "--compile"])
    assert (args.out, args.lr, args.epochs, args.batch_size, args.snapshot_epoch, args.eval_limit, args.compile) == (
        "runs/a", 1e-3, 4, 8, 2, 5, True)
    assert (args.trainable, args.condition) == (["attn"], "freeze")
    args = parse("run", "--out", "r", "--maybe-known", "m.jsonl", "--weakly_known", "w.jsonl", "--trainable", "q", "k")
    assert (args.maybe_known, args.weakly_known, args.trainable) == ("m.jsonl", "w.jsonl", ["q", "k"])
    assert {f.name for f in fields(RunConfig)} <= set(vars(args))


def test_splits_sizes_are_counts():
    args = parse("splits", "--slick", "s", "--out", "o", "--known-size", "10", "--held_size", "3")
    assert (args.known_size, args.unknown_size, args.held_size) == (10, 8000, 3)
    with pytest.raises(SystemExit):
        parse("splits", "--slick", "s", "--out", "o", "--known", "10")


def test_run_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--epochs", "2"]) == 2
    assert capsys.readouterr().err == "python -m training: error: give --out RUN_DIR (or out = ... in the config)\n"
    (tmp_path / "bad.toml").write_text('out = "x"\nkown = "k.jsonl"\n')
    assert main(["run", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "unknown config key(s) ['kown']" in capsys.readouterr().err
    assert main(["run", "--out", str(tmp_path / "r"), "--known", "k.jsonl", "--condition", "l2",
                 "--parallel", "fsdp"]) == 2
    assert "l2 is not supported under FSDP2" in capsys.readouterr().err


@pytest.mark.parametrize("field,value,message", [
    ("batch_size", 0, "--batch-size must be at least 1, not 0"),
    ("epochs", -1, "--epochs must be 0 or more, not -1"),
    ("k", 0, "--k must be at least 1, not 0"),
    ("tau", 0.0, "--tau must be above 0, not 0.0"),
    ("tau", float("nan"), "--tau must be above 0, not nan"),
    ("lr", -1e-4, "--lr must be 0 or more, not -0.0001"),
    ("lam", -1.0, "--lam must be 0 or more"),
    ("weight_decay", -0.1, "--weight-decay must be 0 or more"),
    ("eval_limit", 0, "--eval-limit must be at least 1 (unset: all), not 0"),
    ("eval_limit", -5, "--eval-limit must be at least 1"),
    ("eval_batch_size", 0, "--eval-batch-size must be at least 1"),
    ("log_every", 0, "--log-every must be at least 1"),
    ("snapshot_epoch", -1, "--snapshot-epoch must be 0 or more"),
    ("keep", "every:0", "--keep must be all, every:K or last:N"),
    ("keep", "last:x", "--keep must be all, every:K or last:N"),
    ("keep", "last:", "--keep must be all, every:K or last:N"),
    ("keep", "every:-2", "--keep must be all, every:K or last:N"),
    ("keep", "first:2", "--keep must be all, every:K or last:N"),
])
def test_out_of_range_settings_are_one_line_errors(field, value, message):
    with pytest.raises(ProbekitError, match=re.escape(message)):
        RunConfig(out="r", known="k.jsonl", **{field: value}).validate()


def test_in_range_settings_pass():
    for kw in (dict(keep="every:2"), dict(keep="last:1"), dict(epochs=0, condition="sft"), dict(lr=0.0),
               dict(eval_limit=1), dict(k=1, tau=1e-3, lam=0.0)):
        RunConfig(out="r", known="k.jsonl", **kw).validate()


def test_bad_keep_from_the_command_line(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "r"), "--known", "k.jsonl", "--keep", "every:0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m training: error: --keep must be") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_run_record_hashes_a_save_to_disk_folder(tmp_path):
    from datasets import Dataset

    from training.run_record import data_files, facts_sha256

    rows = [{"template": "Which country is [X] located in?", "subject": "Oslo", "answers": ["Norway"]}]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "known"))
    (tmp_path / "held.jsonl").write_text(json.dumps(rows[0]) + "\n")
    data = data_files(RunConfig(out="r", known=str(tmp_path / "known"), held=str(tmp_path / "held.jsonl")))
    assert data["held"]["sha256"] == hashlib.sha256((tmp_path / "held.jsonl").read_bytes()).hexdigest()
    assert data["known"]["sha256"] == facts_sha256(tmp_path / "known") and data["known"]["manifest"] is None
    Dataset.from_list(rows * 2).save_to_disk(str(tmp_path / "known2"))
    assert facts_sha256(tmp_path / "known2") != data["known"]["sha256"]


def test_read_metrics_from_the_package_and_a_cheap_import(tmp_path):
    import training

    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "phase": "base", "accuracy": {"held": 0.5}})
                                            + "\n")
    frame = training.read_metrics(tmp_path)
    assert list(frame["accuracy.held"]) == [0.5] and list(frame["epoch"]) == [0]
    code = "import sys, training; assert not {'pandas', 'torch'} & set(sys.modules), 'heavy import'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])  # the checkout


def test_run_json_records_a_packaged_base_by_name_not_by_this_machine_s_path(tmp_path):
    from training.run_record import portable_base

    assert portable_base("embedded", tmp_path / "converted") == "embedded"
    assert portable_base("gemma3-270m", tmp_path / "converted") == "gemma3-270m"
    assert portable_base(str(tmp_path), tmp_path) == str(tmp_path.resolve())
