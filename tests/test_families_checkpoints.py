"""Module families on every supported architecture, checkpoint discovery, and safe loading."""
import json

import pytest
import torch

from probekit.checkpoints import find_checkpoints, resolve_base
from probekit.errors import ProbekitError
from probekit.families import FAMILIES, GROUPS, default_layer, family_of, group_parameters
from probekit.models import load_causal_lm, load_tokenizer

from .conftest import ARCH_KWARGS, byte_bpe_tokenizer, save_checkpoint, tiny_model


@pytest.mark.parametrize("arch", sorted(ARCH_KWARGS))
def test_family_modules_exist_and_partition(arch):
    model = tiny_model(arch)
    family = family_of(model)
    assert len(family.decoder_layers(model)) == 4 and default_layer(model) == 2
    groups = {g: group_parameters(model, g) for g in GROUPS}
    for g in ("q", "k", "v", "o", "gate+up", "down"):
        assert groups[g], f"{arch}: empty group {g}"
        assert set(groups[g]) <= set(groups["attn"] if g in "qkvo" else groups["ffn"])
    assert set(groups["attn"]) == set().union(*(groups[g] for g in "qkvo"))
    assert set(groups["ffn"]) == set(groups["gate+up"]) | set(groups["down"])
    assert not set(groups["attn"]) & set(groups["ffn"])
    named = dict(model.named_parameters())
    for name, p in groups["ffn"].items():
        assert named[name] is p


def test_unknown_architecture_is_named():
    from transformers import AutoConfig

    with pytest.raises(ProbekitError, match="'bert' is not supported.*probekit/families.py"):
        family_of(AutoConfig.for_model("bert"))
    assert {t for f in FAMILIES for t in f.model_types} >= set(ARCH_KWARGS)


def test_find_checkpoints_in_every_layout(tmp_path):
    for name in ["checkpoint-500", "checkpoint-20", "checkpoint-1000", "runs", "checkpoint-x"]:
        (tmp_path / "hf" / name).mkdir(parents=True)
        (tmp_path / "hf" / name / "config.json").write_text("{}")
    assert [c.index for c in find_checkpoints(tmp_path / "hf")] == [20, 500, 1000]
    for name in ["epoch_3", "epoch_10", "epoch_0"]:
        (tmp_path / "tt" / name).mkdir(parents=True)
        (tmp_path / "tt" / name / "config.json").write_text("{}")
    ckpts = find_checkpoints(tmp_path / "tt")
    assert [(c.kind, c.index) for c in ckpts] == [("epoch", 0), ("epoch", 3), ("epoch", 10)]
    (tmp_path / "ours" / "checkpoints" / "epoch-002").mkdir(parents=True)
    (tmp_path / "ours" / "checkpoints" / "epoch-002" / "config.json").write_text("{}")
    assert find_checkpoints(tmp_path / "ours")[0].name == "epoch-002"
    (tmp_path / "mixed" / "epoch-1").mkdir(parents=True)
    (tmp_path / "mixed" / "step-5").mkdir(parents=True)
    for d in ("epoch-1", "step-5"):
        (tmp_path / "mixed" / d / "config.json").write_text("{}")
    with pytest.raises(ProbekitError, match="mixes epoch and step"):
        find_checkpoints(tmp_path / "mixed")


def test_base_from_trainer_record(tmp_path):
    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model("llama", len(tok)), tok, tmp_path / "base")
    run = tmp_path / "run"
    (run / "checkpoint-10").mkdir(parents=True)
    (run / "checkpoint-10" / "config.json").write_text(json.dumps({"_name_or_path": str(tmp_path / "base")}))
    assert resolve_base(run) == tmp_path / "base"


def test_pickle_refused_unless_allowed(tmp_path):
    tok = byte_bpe_tokenizer()
    model = tiny_model("llama", len(tok))
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ProbekitError, match="--allow-pickle"):
        load_causal_lm(tmp_path)
    loaded = load_causal_lm(tmp_path, allow_pickle=True)
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def test_saved_tokenizer_loads_exactly(tmp_path):
    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model("qwen2", len(tok)), tok, tmp_path)  # Qwen2's own tokenizer class would differ
    loaded = load_tokenizer(tmp_path)
    text = "Q: Which country is Loc_fcfb46ee located in?\nA: 123"
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.padding_side == "left"


def test_missing_model_dir(tmp_path):
    with pytest.raises(ProbekitError, match="model directory not found"):
        load_causal_lm(tmp_path / "nope")
    with pytest.raises(ProbekitError, match="no config.json"):
        load_causal_lm(tmp_path)


def test_adapter_folders_explicit_lists_and_tokenizer_identity(tmp_path):
    from probekit.checkpoints import listed_checkpoints
    from probekit.tokenizer_identity import tokenizer_difference, tokenizer_identity

    for name in ("checkpoint-4", "checkpoint-2"):  # a PEFT run: adapters, no config.json
        (tmp_path / "lora" / name).mkdir(parents=True)
        (tmp_path / "lora" / name / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "x"}))
        (tmp_path / "lora" / name / "adapter_model.safetensors").write_bytes(b"")
    found = find_checkpoints(tmp_path / "lora")
    assert [c.name for c in found] == ["checkpoint-2", "checkpoint-4"] and all(c.adapter for c in found)
    listed = listed_checkpoints([tmp_path / "lora" / "checkpoint-4", tmp_path / "lora" / "checkpoint-2"])
    assert [(c.kind, c.index) for c in listed] == [("step", 4), ("step", 2)]  # the order given
    tok = byte_bpe_tokenizer()
    tok.save_pretrained(tmp_path / "a")
    spec = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    spec["truncation"] = {"max_length": 8, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokenizer.json").write_text(json.dumps(spec, indent=4))
    assert tokenizer_difference(tokenizer_identity(tmp_path / "a"), tokenizer_identity(tmp_path / "b")) == []
    spec["model"]["merges"] = spec["model"]["merges"][:-1]
    (tmp_path / "b" / "tokenizer.json").write_text(json.dumps(spec))
    assert tokenizer_difference(tokenizer_identity(tmp_path / "a"), tokenizer_identity(tmp_path / "b")) == ["merges"]
