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
    ckpts = find_checkpoints(tmp_path / "tt")  # torchtune's epoch_0 is saved after one epoch: index 0 is θ0
    assert [(c.kind, c.index) for c in ckpts] == [("epoch", 1), ("epoch", 4), ("epoch", 11)]
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


def test_missing_model_dir(tmp_path, monkeypatch):
    with pytest.raises(ProbekitError, match="model directory not found"):
        load_causal_lm(tmp_path / "nope")
    with pytest.raises(ProbekitError, match="no config.json"):
        load_causal_lm(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    # a mistyped relative path looks like a repo id: the message says it is neither, and how to fetch a real one
    with pytest.raises(ProbekitError, match=r"runs/base is neither a local folder nor a repo id in the local "
                                            r"Hugging Face cache.*\(hf download runs/base\)"):
        load_causal_lm("runs/base")


def test_load_model_of_an_adapter_folder(tmp_path):
    """``probekit.load_model(adapter_dir)``: merged into the base its adapter_config.json records, with the base's
    tokenizer."""
    from peft import LoraConfig, get_peft_model

    from probekit.models import load_model

    tok = byte_bpe_tokenizer()
    save_checkpoint(tiny_model("llama", len(tok)), tok, tmp_path / "base")
    lora = get_peft_model(load_causal_lm(tmp_path / "base"), LoraConfig(r=2, target_modules=["q_proj"],
                                                                        init_lora_weights=False))
    lora.save_pretrained(tmp_path / "run" / "checkpoint-3")
    model, loaded_tok = load_model(tmp_path / "run" / "checkpoint-3")
    ids = torch.tensor([tok("Q: Which country is Milan located in?")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, lora.eval()(ids).logits, atol=1e-5, rtol=0)
    assert loaded_tok("Milan")["input_ids"] == tok("Milan")["input_ids"]


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


def test_tokenizer_identity_tells_null_from_missing_and_fast_from_slow(tmp_path):
    """A null post-processor differs from one that prepends <bos>; a checkpoint with only a slow tokenizer's files
    cannot be compared with a tokenizer.json, so it is refused rather than passed unchecked."""
    from probekit.tokenizer_identity import tokenizer_difference, tokenizer_identity

    from .conftest import metaspace_bpe_tokenizer

    metaspace_bpe_tokenizer().save_pretrained(tmp_path / "a")
    spec = json.loads((tmp_path / "a" / "tokenizer.json").read_text())
    spec["post_processor"] = None
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "tokenizer.json").write_text(json.dumps(spec))
    base = tokenizer_identity(tmp_path / "a")
    assert tokenizer_difference(base, tokenizer_identity(tmp_path / "b")) == ["post-processor"]
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "vocab.json").write_text(json.dumps(spec["model"]["vocab"]))
    (tmp_path / "slow" / "merges.txt").write_text("\n".join(" ".join(m) for m in spec["model"]["merges"]))
    assert tokenizer_difference(base, tokenizer_identity(tmp_path / "slow")) == [
        "tokenizer files (tokenizer.json vs vocab.json, merges.txt)"]
