"""The study's wiring: a run seeds every generator from --seed, Fig. 11 runs 100 epochs in the paper
profile, top-k / random-k run in the semantic-key synthetic setting, and M(y) of eq. 2 is a visible choice."""
import json

import pytest
import torch

from training.config import RunConfig
from training.trainer import Trainer

from .support.examples import examples
from .support.study_data import make_data


def test_a_run_seeds_its_generators_from_seed(tmp_path):
    """With dropout on, two runs of one config give one loss curve whatever the caller's generator state was."""
    data = make_data(tmp_path)
    config_file = tmp_path / "base" / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "attention_dropout": 0.3}))
    losses = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        records = Trainer(RunConfig(**data, out=str(tmp_path / f"run{caller_seed}"), batch_size=4, epochs=1,
                                    seed=7)).run()
        losses.append(records[-1]["losses"])
    assert losses[0] == losses[1]


def test_distill_positions_answer_averages_the_kl_over_answer_predictions(tmp_path):
    """``--distill-positions answer``: M(y) = the positions whose logits predict an answer token, per example."""
    from probekit.distillation import losses
    from probekit.distillation.batches import collate, collate_packed
    from probekit.distillation.heads import final_hidden, head_logits
    from probekit.distillation.objective import Objective
    from probekit.distillation.regularizers import FullDistillation

    from .conftest import byte_bpe_tokenizer, tiny_model

    tok = byte_bpe_tokenizer()
    exs = examples(tok)
    student, teacher = tiny_model("llama", len(tok), seed=1), tiny_model("llama", len(tok), seed=2)
    batch = collate(exs, tok.pad_token_id)
    with torch.no_grad():
        got = Objective(student)(batch, len(exs), FullDistillation(teacher, 0.5, positions="answer"))[1]
        packed = Objective(student)(collate_packed(exs, tok.pad_token_id, 128), len(exs),
                                    FullDistillation(teacher, 0.5, positions="answer"))[1]
        hs, ht = final_hidden(student, batch), final_hidden(teacher, batch)
        want = 0.0
        for r, e in enumerate(exs):  # plain loop: each example's answer-predicting positions j
            cols = list(range(e.prompt_length - 1, len(e.input_ids) - 1))
            kl = losses.kl_rows(head_logits(teacher, ht[r, cols]), head_logits(student, hs[r, cols]), 0.5)
            want += 0.25 * float(kl.mean())
        everywhere = Objective(student)(batch, len(exs), FullDistillation(teacher, 0.5))[1]
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(packed) == pytest.approx(want, rel=1e-5)
    assert float(everywhere) != pytest.approx(want, rel=1e-3)


def test_fig11_runs_100_epochs_in_the_paper_profile():
    from analyses import fig5, fig11

    assert fig11.ANALYSIS.context(["--profile", "paper"]).profile.run.epochs == 100
    assert fig5.ANALYSIS.context(["--profile", "paper"]).profile.run.epochs == 20
    quick = fig11.ANALYSIS.context(["--profile", "quick"]).profile
    assert quick.run.epochs == fig5.ANALYSIS.context([]).profile.run.epochs


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_topk_runs_in_the_semantic_key_synthetic_setting(preset):
    """App. F: top-k / random-k beside SFT and full self-distillation on semantic keys: fig5's runs, shared."""
    from analyses import fig5, topk
    from analyses.data import DryRunData
    from analyses.runs import synthetic_runs

    ctx = topk.ANALYSIS.context(["--profile", preset])
    runs = {r.label: r for r in topk.plan(ctx, DryRunData())}
    assert ctx.profile.relations == ["P17"]
    semantic = DryRunData().synthetic(ctx.profile, "semantic")
    assert all(r.config.unknown == semantic for r in runs.values())
    variants = [runs[k].config.variant for k in ("Top-k distillation", "Random-k distillation")]
    assert variants == ["topk", "randomk"]
    fig5_runs = {r.label: r.key() for r in synthetic_runs(fig5.ANALYSIS.context(["--profile", preset]).profile,
                                                            DryRunData())}
    assert runs["SFT"].key() == fig5_runs["SFT, semantic keys"]
    assert runs["Self-distillation"].key() == fig5_runs["Self-distillation, semantic keys"]
