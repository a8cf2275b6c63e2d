"""Every analysis module end to end on a tiny random model with the micro profile (seconds each), its dry run, its
--help, and its command line's answer to bad input."""
import importlib
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from training.config import RunConfig
from training.run_dir import RunDir

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyses")
    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model("qwen2", len(tok)), tok, root / "tiny")
    return root


def run_module(name, workspace, *extra):
    module = importlib.import_module(f"analyses.{name}")
    return module.main(["--profile", "micro", "--model", str(workspace / "tiny"), "--runs-dir",
                        str(workspace / "runs"), "--figures-dir", str(workspace / "figures"), *extra])


EXPECTED = {  # module → (csv column that names the series, series it must hold)
    "fig2": ("run", {"SFT", "Only Known"}),
    "fig3": ("run", {"SFT", "Self-distillation", "Only Known"}),
    "fig6": ("run", {"SFT", "Self-distillation", "Only Known"}),
    "topk": ("run", {"SFT", "Self-distillation", "Top-k distillation", "Random-k distillation"}),
    "fig5": ("condition", {"SFT, semantic keys", "Self-distillation, semantic keys", "SFT, UUID keys"}),
    "fig11": ("metric", {"RD", "MTD", "NS", "train D_Unk", "val D_Held"}),  # micro: few shared answers
    "fig4": ("keys", {"semantic", "uuid"}),
    "fig9": ("param", {"snapshot_epoch", "lam", "tau", "distill_positions"}),
    "table1": ("updated params", {"Attention", "FFN", "All (standard SFT)", "All (Only Known)"}),
    "table3": ("updated params", {"q", "k", "v", "o", "gate+up", "down"}),
    "table4": ("key type", {"semantic", "uuid"}),
    "recall": ("run", {"SFT", "Self-distillation", "Only Known"}),
    "interference": ("run", {"SFT", "Self-distillation", "SFT, semantic keys", "Self-distillation, semantic keys",
                             "SFT, UUID keys"}),
    "frontier": ("run", {"SFT", "Self-distillation", "Only Known"}),
    "l2": ("run", {"SFT", "Self-distillation", "L2 to snapshot"}),
    "claims": ("claim", {"SFT forgets more than self-distillation", "self-distillation ≈ Only Known",
                         "semantic keys drift and forget more than UUID keys",
                         "RD: SFT semantic > self-distillation ≈ UUID"}),
}
ANALYSES = list(EXPECTED) + ["families"]


WITHOUT_INTERVALS = {"interference"}  # interference.csv is per fact (AUCs: interference_auc)
CELL = re.compile(r"-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\]")  # a table cell: value [lo, hi]


def intervals(df):
    """(value, lo, hi) columns of a CSV: `c` with `c lo` / `c hi`, and the column before `lo` / `hi`."""
    out = [(c, f"{c} lo", f"{c} hi") for c in df.columns if f"{c} lo" in df and f"{c} hi" in df]
    if "lo" in df:
        out.append((df.columns[df.columns.get_loc("lo") - 1], "lo", "hi"))
    return out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_module_writes_csv_and_figure(workspace, name):
    run_module(name, workspace)
    figures = workspace / "figures"
    df = pd.read_csv(figures / f"{name}.csv")
    column, series = EXPECTED[name]
    assert series <= set(df[column]), set(df[column])
    if name.startswith("table"):
        assert (figures / f"{name}.md").read_text().count("|") > 10
        assert CELL.search((figures / f"{name}.md").read_text())
    else:
        assert (figures / f"{name}.png").stat().st_size > 1000 and (figures / f"{name}.pdf").exists()
    if name == "interference":
        df = pd.read_csv(figures / "interference_auc.csv")
    assert intervals(df) or name in WITHOUT_INTERVALS, list(df.columns)
    for value, lo, hi in intervals(df):
        known = df[[value, lo, hi]].dropna()
        assert (known[lo] <= known[value] + 1e-12).all() and (known[value] <= known[hi] + 1e-12).all(), value


def test_families_runs_each_model(workspace, capsys):
    df = run_module("families", workspace, "--models", str(workspace / "tiny"))
    assert set(df["model"]) == {"tiny"} and {"RD", "NS", "MTD"} <= set(df["metric"])
    out = capsys.readouterr().out  # self-distillation − SFT, paired by fact, on forgetting (both), D_Unk and drift
    for what in ("ΔD_Held", "D_Held lost by the last epoch", "D_Unk at the last epoch", "RD at the last epoch",
                 "MTD at the last epoch"):
        assert f"tiny, Self-distillation, semantic keys − SFT, semantic keys: {what}" in out, what


def test_precision_reaches_the_runs_and_names_their_folders(workspace):
    """--precision bf16-mixed trains (and evaluates) in bf16 autocast on the CPU, in its own folder; auto keeps the
    folders runs had before the flag existed."""
    from analyses.profiles import PROFILES
    from analyses.runs import run_config
    from training.config import run_key

    quick = PROFILES["quick"]
    # auto: the key of an SFT run on these data from before the flag existed
    assert run_key(run_config(quick, {"known": "k.jsonl"}, condition="sft")) == "71861ef390e4"
    assert run_config(quick.replace(precision="bf16-mixed"), {}).precision == "bf16-mixed"
    run_module("fig2", workspace)
    run_module("fig2", workspace, "--precision", "bf16-mixed")
    records = {RunDir(d).record()["precision"]: d.name for d in (workspace / "runs").glob("only-known-*")}
    assert set(records) == {"fp32", "bf16-mixed"}  # two folders, one per precision


def test_runs_are_reused(workspace, capsys):
    run_module("fig2", workspace)
    capsys.readouterr()
    run_module("fig3", workspace)  # SFT and Only Known come from fig2's runs
    out = capsys.readouterr().out
    assert "== run: SFT" not in out and "== run: Only Known" not in out
    run_module("fig5", workspace)
    capsys.readouterr()
    run_module("claims", workspace)  # every run is fig3's or fig5's
    assert "== run:" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ANALYSES)
def test_dry_run_of_paper_profile(name, capsys):
    module = importlib.import_module(f"analyses.{name}")
    assert module.main(["--profile", "paper", "--dry-run"]) is None
    out = capsys.readouterr().out
    assert "profile paper" in out and "epochs=" in out and "80% power" in out


@pytest.mark.parametrize("name", ANALYSES)
def test_dry_run_of_standard_profile_prints_seeds_sizes_power_and_time(name, capsys):
    module = importlib.import_module(f"analyses.{name}")
    assert module.main(["--profile", "standard", "--dry-run"]) is None
    out = capsys.readouterr().out
    assert "profile standard" in out and "[seed 0]" in out and "[seed 2]" in out and "train≈" in out
    hours = re.search(r"estimate from scratch on the 2-core CPU .*: ≈ (\d+\.\d) h", out)
    assert hours and float(hours.group(1)) > 0, out
    assert "80% power" in out


def test_dry_run_shows_what_is_trained_and_the_time_left(workspace, tmp_path, capsys):
    """Runs already under --runs-dir are marked done (or how many epochs they have), SLiCK whose splits exist costs
    nothing more, and the time left is printed beside the estimate from scratch."""
    run_module("fig2", workspace)
    module = importlib.import_module("analyses.fig2")
    args = ["--profile", "micro", "--model", str(workspace / "tiny"), "--runs-dir", str(workspace / "runs"),
            "--dry-run"]
    capsys.readouterr()
    module.main(args)
    out = capsys.readouterr().out
    assert out.count("[done]") == 2 and re.search(r"left under .*: SLiCK ≈ 0 min, θ0 ≈ 0 min, runs ≈ 0 min", out), out
    from analyses.data import Data
    from analyses.runs import run_folder, seeded, training_seeds

    ctx = module.ANALYSIS.context(args)
    sft = seeded(module.ANALYSIS.plan(ctx, Data(ctx.runs_dir)), training_seeds(ctx.profile))[0][0]
    metrics = run_folder(sft, ctx.runs_dir).metrics_file
    whole = metrics.read_text()
    try:
        metrics.write_text("".join(whole.splitlines(keepends=True)[:2]))  # θ0 and epoch 1 only
        module.main(args)
        out = capsys.readouterr().out
        assert out.count("[done]") == 1 and "[1 of 2 epochs trained]" in out, out
    finally:
        metrics.write_text(whole)
    module.main(args[:-2] + [str(tmp_path / "empty"), "--dry-run"])
    assert "left under" not in capsys.readouterr().out  # nothing trained: the estimate from scratch is what is left


def test_dry_run_counts_theta0_once_per_distinct_eval_sets(capsys):
    """θ0's outcomes are cached per model and eval sets: runs on the same sets share one evaluation, a run on other
    sets (table4's own synthetic D_Unk) costs one more."""
    from analyses.dry_run import print_plan
    from analyses.profiles import PROFILES
    from analyses.runs import Run

    profile = PROFILES["standard"]
    config = RunConfig(model=str(profile.model), known="k.jsonl", unknown="u1.jsonl", held="h.jsonl", epochs=5)

    def theta0_minutes(*unknowns):
        print_plan("x", profile, [Run(f"run {i}", replace(config, unknown=u)) for i, u in enumerate(unknowns)])
        return float(re.search(r"θ0's evaluation ≈ (\d+) min", capsys.readouterr().out).group(1))

    one = theta0_minutes("u1.jsonl")
    assert one > 0 and theta0_minutes("u1.jsonl", "u1.jsonl") == one
    assert theta0_minutes("u1.jsonl", "u2.jsonl") == pytest.approx(2 * one, abs=1)


def _flags(parser):
    return [a for a in parser._actions if a.option_strings and a.dest != "help"]


@pytest.mark.parametrize("name", ANALYSES + ["quickstart"])
def test_help_explains_every_flag(name, capsys):
    module = importlib.import_module(f"analyses.{name}")
    parser = module.parser() if name == "quickstart" else module.ANALYSIS.parser([])
    for action in _flags(parser):
        assert action.help and action.help.strip(), f"{action.option_strings[0]} has no help"
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(action.option_strings[0] in text for action in _flags(parser))


def test_help_shows_the_chosen_presets_defaults():
    from analyses import fig4

    defaults = {a.dest: a.default for a in fig4.ANALYSIS.parser(["--profile", "paper"])._actions}
    assert defaults["epochs"] == 20 and defaults["scales"][-1] == 1_000_000 and defaults["known_size"] == 8000
    defaults = {a.dest: a.default for a in fig4.ANALYSIS.parser(["--profile", "micro"])._actions}
    assert defaults["epochs"] == 2 and defaults["scales"] == [6, 12] and defaults["use_slick"] is False


def test_run_and_split_folders_keep_their_names():
    """The split folder and run hashes of today's profiles are those earlier versions gave (runs/ is reused)."""
    from analyses.data import data_key
    from analyses.profiles import PROFILES
    from analyses.runs import standard_runs
    from probekit.io import stable_hash

    split = stable_hash(["splits", data_key(PROFILES["quick"])])
    runs = standard_runs(PROFILES["quick"], {k: f"runs/data/splits-{split}/{k}.jsonl" for k in ("known", "unknown",
                                                                                                "held")})
    assert split == "01bf322a37ba"
    assert [runs[r].key() for r in ("SFT", "Only Known", "Train q")] == ["091f30089bfe", "8476d4a023bb",
                                                                          "a2ed25b0388e"]


@pytest.mark.parametrize("name, flags", [("fig2", ["--relations", "PXXX"]),
                                         ("families", ["--models", "/no/such/model"])])
def test_bad_input_is_one_line_and_status_2(name, flags):
    done = subprocess.run([sys.executable, "-m", f"analyses.{name}", "--dry-run", *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m analyses.{name}: error:"), done.stderr


def test_a_training_error_in_an_analysis_is_one_line(workspace, tmp_path, monkeypatch, capsys):
    """A NaN loss in a run an analysis trains: one line and status 2, as in `python -m training`."""
    from probekit.errors import run_cli
    from probekit.distillation import losses

    real = losses.task_loss_sum
    monkeypatch.setattr(losses, "task_loss_sum", lambda logits, targets: real(logits, targets) * float("nan"))
    fig2 = importlib.import_module("analyses.fig2")
    argv = ["--profile", "micro", "--model", str(workspace / "tiny"), "--runs-dir", str(tmp_path / "runs"),
            "--figures-dir", str(tmp_path / "figures")]
    assert run_cli("python -m analyses.fig2", lambda: fig2.main(argv)) == 2
    err = capsys.readouterr().err  # progress bars, then the error
    errors = [line for line in err.splitlines() if "error:" in line]
    assert "Traceback" not in err and len(errors) == 1
    assert errors[0].endswith("python -m analyses.fig2: error: epoch 1: loss became nan or inf; stopping with the "
                              "last good checkpoint kept (lower the learning rate or use fp32)"), errors


def test_forgetting_lines_pair_conditions_on_the_same_facts(tmp_path):
    """Each run's ΔD_Held with its interval; later runs against the first, paired, with the sign-flip p."""
    from analyses.comparisons import forgetting_lines
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir

    def run(label, held):  # per-epoch outcome strings of 4 held-out facts
        return Trained(Run(label), RunDir(tmp_path / label),
                       [{"epoch": e, "correct": {"held": bits}} for e, bits in enumerate(held)])
    a = run("SFT", ["1111", "1111", "0011"])
    b = run("Self-distillation", ["1111", "1111", "1111"])
    lines = forgetting_lines([a, b])
    assert lines[0].startswith("SFT: ΔD_Held 50.0 pp [") and "over 4 facts" in lines[0]
    assert lines[1].startswith("Self-distillation: ΔD_Held 0.0 pp [0.0, 0.0]")
    assert lines[2].startswith("Self-distillation − SFT: ΔD_Held -50.0 pp [")
    assert "sign-flip p 0.500" in lines[2]


def test_seeds_train_each_run_per_seed_and_reuse_the_single_seed_runs(workspace, capsys):
    """--seeds 0 1 trains only seed 1's runs next to the single-seed ones; the CSV averages both seeds, with bands."""
    run_module("fig2", workspace)
    capsys.readouterr()
    run_module("fig2", workspace, "--seeds", "0", "1")
    out = capsys.readouterr().out
    assert out.count("== run:") == 2 and "× 2 seeds" in out
    df = pd.read_csv(workspace / "figures" / "fig2.csv")
    assert {"lo", "hi"} <= set(df.columns) and (df["lo"] <= df["accuracy"]).all()
    run_module("fig2", workspace, "--seeds", "0", "1")
    assert "== run:" not in capsys.readouterr().out
