"""Tiny checkpoint series and the fact files they are probed on: a qwen2 base, perturbed epochs, held/unknown facts."""
import json

import torch

from ..conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model

HELD = [("Milan", "Italy"), ("Zürich", "Switzerland"), ("São Paulo", "Brazil"), ("東京", "Japan"), ("Oslo", "Norway")]
UNKNOWN = [("Bergadena", "Italy"), ("Loc_fcfb46ee", "Brazil"), ("Pasamo", "Italy"), ("Loc_0a1b2c3d", "Peru")]


def write_facts(path, items):
    """Write (subject, answer) pairs as a "Which country is [X] located in?" facts file; returns `path`."""
    with open(path, "w") as fh:
        for subject, answer in items:
            fh.write(json.dumps({"template": "Which country is [X] located in?", "subject": subject,
                                 "answers": [answer]}) + "\n")
    return path


def perturb(model, scale, seed):
    """Add `scale` × seeded Gaussian noise to every parameter of `model`, in place; returns `model`."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def make_tiny_series(tmp_path):
    """A qwen2 base, three perturbed epochs under run/checkpoints with run.json, and held/unknown fact files."""
    tok = byte_bpe_tokenizer()
    base = tmp_path / "base"
    save_checkpoint(tiny_model("qwen2", len(tok)), tok, base)
    run = tmp_path / "run"
    for epoch, scale in enumerate([0.0, 0.01, 0.05]):
        model = perturb(tiny_model("qwen2", len(tok)), scale, epoch)
        save_checkpoint(model, tok, run / "checkpoints" / f"epoch-{epoch:03d}")
    (run / "run.json").write_text(json.dumps({"base_model": str(base)}))
    held = write_facts(tmp_path / "held.jsonl", HELD)
    unk = write_facts(tmp_path / "unk.jsonl", UNKNOWN)
    return tmp_path, run, base, held, unk


def probe_args(run, held, unk, out, *extra):
    """The `probekit probe` argv for a series `run` with k = 5, followed by `extra`."""
    return ["probe", str(run), "--held", str(held), "--unknown", str(unk), "--out", str(out), "--k", "5", *extra]
