"""The trainer's tiny study data: a random qwen2 base and known / unknown / held place→country fact files."""
import json

import pytest

from ..conftest import byte_bpe_tokenizer, save_checkpoint, tiny_model

PLACES = ["Milan", "Zürich", "Oslo", "Paris", "Lima", "Rome", "Bergadena", "Pasamo", "Nice", "Bern", "Turin", "Bergen"]
COUNTRIES = ["Italy", "Switzerland", "Norway", "France", "Peru"]


def write(path, items):
    """Write (place, country) pairs as a "Which country is [X] located in?" facts file; returns the path as a str."""
    with open(path, "w") as fh:
        for s, a in items:
            fh.write(json.dumps({"template": "Which country is [X] located in?", "subject": s, "answers": [a]}) + "\n")
    return str(path)


def make_data(tmp_path, arch="qwen2"):
    """Save a tiny random `arch` base and four facts per split; returns RunConfig's model/known/unknown/held."""
    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model(arch, len(tok)), tok, tmp_path / "base")
    return dict(
        model=str(tmp_path / "base"),
        known=write(tmp_path / "known.jsonl", [(p, COUNTRIES[i % 5]) for i, p in enumerate(PLACES[:4])]),
        unknown=write(tmp_path / "unknown.jsonl", [(p, COUNTRIES[(i + 2) % 5]) for i, p in enumerate(PLACES[4:8])]),
        held=write(tmp_path / "held.jsonl", [(p, COUNTRIES[i % 5]) for i, p in enumerate(PLACES[8:])]),
    )


def assert_same_curve(one, two):
    """Two runs' records agree: the same epochs, losses within 1e-4 (relative) and the same accuracies."""
    assert [m["epoch"] for m in one] == [m["epoch"] for m in two]
    for a, b in zip(one[1:], two[1:]):
        assert b["losses"] == pytest.approx(a["losses"], rel=1e-4)
    assert [m["accuracy"] for m in one] == [m["accuracy"] for m in two]
