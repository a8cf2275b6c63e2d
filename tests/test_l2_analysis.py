"""ℓ2 toward the snapshot with λ matched to self-distillation: the matching against a plain loop, and
``python -m analyses.l2`` end to end on a tiny random model with the micro profile."""
import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from probekit.distillation.batches import epoch_batches, make_examples
from probekit.entities import read_facts
from probekit.models import load_causal_lm, load_tokenizer
from training.config import RunConfig
from training.lambda_match import MATCH_FILE, l2_lambda, match_l2_lambda

from .conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model
from .support.study_data import make_data

LAM, TAU, LR = 0.7, 0.5, 3e-3


def plain_losses(model, teacher, batch, tau):
    """(task loss, L_distill) of a batch, one unpadded example at a time: CE over answer tokens / their count, and
    the mean over examples of τ² · mean over every position of KL(teacher ‖ student)."""
    task, n_answer, distill = 0.0, 0, 0.0
    for e in batch:
        ids = torch.tensor([e.input_ids])
        z = model(ids).logits[0]
        with torch.no_grad():
            zt = teacher(ids).logits[0]
        answer = torch.arange(e.prompt_length - 1, len(e.input_ids) - 1)
        task = task + F.cross_entropy(z[answer], ids[0, answer + 1], reduction="sum")
        n_answer += len(answer)
        t, s = torch.log_softmax(zt / tau, -1), torch.log_softmax(z / tau, -1)
        distill = distill + tau**2 * (t.exp() * (t - s)).sum(-1).mean()
    return task / n_answer, distill / len(batch)


def test_matched_lambda_is_the_ratio_of_the_gradient_norms(tmp_path):
    """Snapshot epoch 0 (θ_i = the base model): one AdamW step on task + λ·distill from θ_i on epoch 1's first batch,
    then λ·‖∇L_distill‖ / ‖∇‖θ − θ_i‖²‖ at the resulting θ′, all computed here without the trainer."""
    data = make_data(tmp_path)
    config = RunConfig(out=str(tmp_path / "sd"), condition="self_distill", variant="full", lam=LAM, tau=TAU, lr=LR,
                       batch_size=4, epochs=2, snapshot_epoch=0, device="cpu", **data)
    match = match_l2_lambda(config)

    tok = load_tokenizer(data["model"])
    model, teacher = (load_causal_lm(data["model"], dtype=torch.float32, device="cpu") for _ in range(2))
    facts = read_facts(data["known"]) + read_facts(data["unknown"])
    batch = epoch_batches(make_examples(tok, facts, config.prompt_format), config.batch_size, config.seed, 1)[0]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    task, distill = plain_losses(model, teacher, batch, TAU)
    (task + LAM * distill).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    distill = plain_losses(model, teacher, batch, TAU)[1]
    grads = torch.autograd.grad(distill, list(model.parameters()), allow_unused=True)
    distill_norm = sum(float((g.double() ** 2).sum()) for g in grads if g is not None) ** 0.5
    l2_norm = sum(float(((2 * (p.detach() - start[n])).double() ** 2).sum())
                  for n, p in model.named_parameters()) ** 0.5
    assert match.distill_grad_norm == pytest.approx(distill_norm, rel=1e-5)
    assert match.l2_grad_norm == pytest.approx(l2_norm, rel=1e-5)
    assert match.lam == pytest.approx(LAM * distill_norm / l2_norm, rel=1e-5)
    assert match.lam == pytest.approx(LAM * match.distill_grad_norm / match.l2_grad_norm, rel=1e-12)

    stored = l2_lambda(config)  # computed again (nothing recorded yet), then written and read back
    assert json.loads((tmp_path / "sd" / MATCH_FILE).read_text())["lam"] == stored.lam == l2_lambda(config).lam


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("l2")
    save_checkpoint(tiny_model("qwen2", len(byte_bpe_tokenizer())), byte_bpe_tokenizer(), root / "tiny")
    return root


def test_l2_analysis_micro_end_to_end(workspace, capsys):
    from analyses import l2

    argv = ["--profile", "micro", "--model", str(workspace / "tiny"), "--runs-dir", str(workspace / "runs"),
            "--figures-dir", str(workspace / "figures")]
    l2.main(argv)
    out = capsys.readouterr().out
    figures = workspace / "figures"
    df = pd.read_csv(figures / "l2.csv")
    assert set(df["run"]) == {"SFT", "Self-distillation", "L2 to snapshot"}
    assert set(df["split"]) == {"unknown", "held"}
    assert (figures / "l2.png").stat().st_size > 1000 and (figures / "l2.pdf").exists()
    assert (figures / "l2.md").read_text().count("|") > 10
    assert "λ_ℓ2 = " in out and "L2 to snapshot − Self-distillation: ΔD_Held" in out

    record = json.loads(next((workspace / "runs").glob(f"self-distillation-*/{MATCH_FILE}")).read_text())
    l2_run = json.loads(next((workspace / "runs").glob("l2-to-snapshot-*/run.json")).read_text())["config"]
    assert l2_run["lam"] == record["lam"] > 0 and l2_run["condition"] == "l2" and l2_run["snapshot_epoch"] == 1

    l2.main(argv)  # a second invocation reuses every run and the recorded λ
    assert "== run:" not in capsys.readouterr().out


def test_l2_dry_run_plans_three_runs_with_the_epoch_2_snapshot(capsys):
    from analyses import l2

    assert l2.main(["--profile", "paper", "--dry-run"]) is None
    out = capsys.readouterr().out
    assert "profile paper" in out and "condition=l2" in out and "θ_2" in out
    defaults = {a.dest: a.default for a in l2.ANALYSIS.parser(["--profile", "quick"])._actions}
    assert defaults["snapshot_epoch"] == 2
