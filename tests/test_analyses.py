"""Every analysis module end to end on a tiny random model with the micro profile (seconds each)."""
import importlib

import pandas as pd
import pytest

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model


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
    "fig9": ("param", {"snapshot_epoch", "lam", "tau"}),
    "table1": ("updated params", {"Attention", "FFN", "All (standard SFT)", "All (Only Known)"}),
    "table3": ("updated params", {"q", "k", "v", "o", "gate+up", "down"}),
    "table4": ("key type", {"semantic", "uuid"}),
    "recall": ("run", {"SFT", "Self-distillation", "Only Known"}),
    "interference": ("run", {"SFT", "Self-distillation", "SFT, semantic keys", "Self-distillation, semantic keys",
                             "SFT, UUID keys"}),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_module_writes_csv_and_figure(workspace, name):
    run_module(name, workspace)
    figures = workspace / "figures"
    df = pd.read_csv(figures / f"{name}.csv")
    column, series = EXPECTED[name]
    assert series <= set(df[column]), set(df[column])
    if name.startswith("table"):
        assert (figures / f"{name}.md").read_text().count("|") > 10
    else:
        assert (figures / f"{name}.png").stat().st_size > 1000 and (figures / f"{name}.pdf").exists()


def test_families_runs_each_model(workspace):
    df = run_module("families", workspace, "--models", str(workspace / "tiny"))
    assert set(df["model"]) == {"tiny"} and {"RD", "NS", "MTD"} <= set(df["metric"])


def test_runs_are_reused(workspace, capsys):
    run_module("fig2", workspace)
    capsys.readouterr()
    run_module("fig3", workspace)  # SFT and Only Known come from fig2's runs
    out = capsys.readouterr().out
    assert "== run: SFT" not in out and "== run: Only Known" not in out


@pytest.mark.parametrize("name", list(EXPECTED) + ["families"])
def test_dry_run_of_paper_profile(name, capsys):
    module = importlib.import_module(f"analyses.{name}")
    assert module.main(["--profile", "paper", "--dry-run"]) is None
    out = capsys.readouterr().out
    assert "profile paper" in out and "epochs=" in out
