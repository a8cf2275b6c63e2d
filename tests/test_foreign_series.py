"""Series written by other people's tools, probed as they come: transformers Trainer (full fine-tune and PEFT LoRA),
TRL SFTTrainer, sharded save_pretrained, torchtune's FullModelHFCheckpointer, revisions in the local Hugging Face
cache. Every metric is compared with a plain Hugging Face recomputation written here (1e-4)."""
import json
import shutil

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from probekit.cli import main
from probekit.entities import read_facts
from probekit.series import ProbeConfig, probe_series

from .conftest import CORPUS, byte_bpe_tokenizer, save_checkpoint, tiny_model
from .support.series import HELD, UNKNOWN, perturb, write_facts

K, LAYER = 5, 2


# --- a plain recomputation: one prompt at a time, output_hidden_states, the equations as written ---------------

def plain_pass(model, tok, facts):
    """ℓ2-normalised layer-2 states at each entity's final token [N, d] and answer-position logits [N, V]."""
    states, logits = [], []
    for fact in facts:
        prompt = f"Q: {fact.question}\nA:"
        last = len("Q: ") + fact.entity_span[1] - 1  # the entity's last character in the prompt
        enc = tok(prompt, return_offsets_mapping=True, return_special_tokens_mask=True)
        spans = zip(enc["offset_mapping"], enc["special_tokens_mask"])
        index = max(i for i, ((s, e), special) in enumerate(spans) if not special and s <= last < e)
        with torch.no_grad():
            out = model(torch.tensor([enc["input_ids"]]), output_hidden_states=True)
        states.append(out.hidden_states[LAYER][0, index])
        logits.append(out.logits[0, -1])
    return F.normalize(torch.stack(states).double(), dim=-1), torch.stack(logits).double()


def plain_metrics(base_model, model, tok, held, unk) -> dict:
    h0, z0 = plain_pass(base_model, tok, held)
    hi, zi = plain_pass(model, tok, held)
    s0, _ = plain_pass(base_model, tok, unk)
    si, zu = plain_pass(model, tok, unk)
    out = {"RD": (1 - (h0 * hi).sum(-1)).mean(), "NS": (hi @ hi.T - h0 @ h0.T).abs().mean(),
           "MTD": (hi @ si.T - h0 @ s0.T).mean()}  # no --new: the unknown facts are the new entities
    rho, ntr, jsd = [], [], []
    for u, fu in enumerate(unk):
        for h, fh in enumerate(held):
            if fu.answer.casefold() != fh.answer.casefold():
                continue
            top = z0[h].topk(K).indices
            rho.append(spearmanr(zu[u][top].numpy(), z0[h][top].numpy()).statistic)
            ntr.append(len(set(zu[u].topk(K).indices.tolist()) & set(zi[h].topk(K).indices.tolist())) / K)
            p, q = zu[u][top].softmax(-1), z0[h][top].softmax(-1)
            m = (p + q) / 2
            jsd.append(0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum())
    out.update({"Rank-rho": sum(rho) / len(rho), "NTR": sum(ntr) / len(ntr), "JSD": sum(jsd) / len(jsd)})
    return {k: float(v) for k, v in out.items()}


def assert_matches_plain(df: pd.DataFrame, facts, base_model, tok, load) -> None:
    """Every checkpoint's six metrics equal the plain recomputation; `load(path)` gives its model."""
    held, unk = facts
    drift = {"RD", "NS", "MTD", "Rank-rho", "NTR", "JSD"}
    assert set(df["metric"]) == drift | {"accuracy_held", "accuracy_unknown"}  # exact match: tests/test_trainer.py
    assert df[~df.metric.isin(drift)]["value"].between(0, 1).all()
    df = df[df.metric.isin(drift)]
    for path, rows in df.groupby("checkpoint", sort=False):
        got = rows.set_index("metric")["value"].to_dict()
        want = plain_metrics(base_model, load(path), tok, held, unk)
        assert got == pytest.approx(want, abs=1e-4), path
    assert df[df.metric == "RD"]["value"].iloc[-1] > 1e-6  # training moved the model


# --- series writers ------------------------------------------------------------------------------------------

@pytest.fixture
def base(tmp_path):
    tok = byte_bpe_tokenizer()
    path = tmp_path / "base"
    save_checkpoint(tiny_model("llama", len(tok)), tok, path)
    held = read_facts(write_facts(tmp_path / "held.jsonl", HELD))
    unk = read_facts(write_facts(tmp_path / "unk.jsonl", UNKNOWN))
    return path, (held, unk), tmp_path


def fresh(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def lm_dataset(tok):
    from datasets import Dataset

    ids = [tok(text)["input_ids"][:24] for text in CORPUS[:4]]
    return Dataset.from_dict({"input_ids": ids, "labels": ids})


def trainer_args(out, **extra):
    return dict(output_dir=str(out), max_steps=4, save_steps=2, per_device_train_batch_size=1, learning_rate=5e-3,
                report_to="none", use_cpu=True, logging_strategy="no", disable_tqdm=True, seed=0, **extra)


def probe(tmp_path, **series):
    return probe_series(held=read_facts(tmp_path / "held.jsonl"), unknown=read_facts(tmp_path / "unk.jsonl"),
                        out=tmp_path / "probes", config=ProbeConfig(k=K), progress=False, **series)


def test_transformers_trainer_full_fine_tune(base):
    """Trainer re-saves the tokenizer; with runtime truncation / padding settings in tokenizer.json (as a truncating
    pipeline leaves them, and written in other bytes) it is still the same tokenizer."""
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    base_path, facts, tmp = base
    tok = AutoTokenizer.from_pretrained(base_path)
    run = tmp / "run"
    Trainer(model=fresh(base_path).train(), args=TrainingArguments(**trainer_args(run)), train_dataset=lm_dataset(tok),
            processing_class=tok).train()
    saved = run / "checkpoint-2" / "tokenizer.json"
    spec = json.loads(saved.read_text())
    spec["truncation"] = {"direction": "Right", "max_length": 32, "strategy": "LongestFirst", "stride": 0}
    spec["padding"] = {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": None, "pad_id": 0,
                       "pad_type_id": 0, "pad_token": "<pad>"}
    saved.write_text(json.dumps(spec))
    assert main(["probe", str(run), "--base", str(base_path), "--held", str(tmp / "held.jsonl"), "--unknown",
                 str(tmp / "unk.jsonl"), "--out", str(tmp / "probes"), "--k", str(K)]) == 0
    df = pd.read_csv(tmp / "probes" / "probes.csv")
    assert list(df[df.metric == "RD"]["name"]) == ["checkpoint-2", "checkpoint-4"]
    assert_matches_plain(df, facts, fresh(base_path), byte_bpe_tokenizer(), fresh)


def test_peft_lora_adapters_saved_by_trainer(base):
    """Adapter folders are merged into θ0 in memory; the base comes from adapter_config.json."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import Trainer, TrainingArguments

    base_path, facts, tmp = base
    model = get_peft_model(fresh(base_path).train(), LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    run = tmp / "lora"
    Trainer(model=model, args=TrainingArguments(**trainer_args(run)), train_dataset=lm_dataset(byte_bpe_tokenizer()),
            processing_class=byte_bpe_tokenizer()).train()
    assert (run / "checkpoint-4" / "adapter_model.safetensors").is_file()
    before = sorted(p.name for p in run.rglob("*"))
    df = probe(tmp, run_dir=run)  # no --base: adapter_config.json's base_model_name_or_path
    assert sorted(p.name for p in run.rglob("*")) == before  # nothing written beside the adapters
    assert_matches_plain(df, facts, fresh(base_path), byte_bpe_tokenizer(),
                         lambda path: PeftModel.from_pretrained(fresh(base_path), path).eval())  # unmerged


def test_trl_sft_trainer(base):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    base_path, facts, tmp = base
    run = tmp / "sft"
    config = SFTConfig(**trainer_args(run), max_length=32, dataset_text_field="text", packing=False)
    SFTTrainer(model=fresh(base_path).train(), args=config, train_dataset=Dataset.from_dict({"text": CORPUS[:4]}),
               processing_class=byte_bpe_tokenizer()).train()
    df = probe(tmp, run_dir=run, base=str(base_path))
    assert_matches_plain(df, facts, fresh(base_path), byte_bpe_tokenizer(), fresh)


def test_sharded_save_pretrained_and_explicit_list(base):
    base_path, facts, tmp = base
    tok = byte_bpe_tokenizer()
    folders = []
    for step, scale in ((10, 0.01), (20, 0.03)):
        folders.append(tmp / "sharded" / f"step-{step}")
        perturb(fresh(base_path), scale, step).save_pretrained(folders[-1], max_shard_size="40KB")
        tok.save_pretrained(folders[-1])
    assert len(list(folders[0].glob("model-*.safetensors"))) > 1
    df = probe(tmp, run_dir=tmp / "sharded", base=str(base_path))
    assert_matches_plain(df, facts, fresh(base_path), tok, fresh)
    # the same folders as an explicit list, in the order given
    shutil.rmtree(tmp / "probes")
    listed = probe(tmp, checkpoints=folders[::-1], base=str(base_path))
    assert list(listed[listed.metric == "RD"]["name"]) == ["step-20", "step-10"]


def test_torchtune_full_model_hf_checkpointer(base):
    """torchtune 0.6.1 writes epoch_N/ with config.json, model-00001-of-00001.safetensors and its index."""
    from torchtune.training import FullModelHFCheckpointer

    base_path, facts, tmp = base
    checkpointer = FullModelHFCheckpointer(checkpoint_dir=str(base_path), checkpoint_files=["model.safetensors"],
                                           model_type="LLAMA3", output_dir=str(tmp / "tt"))
    weights = checkpointer.load_checkpoint()["model"]
    g = torch.Generator().manual_seed(0)
    for epoch in range(2):
        weights = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in weights.items()}
        checkpointer.save_checkpoint({"model": dict(weights)}, epoch=epoch)
    assert (tmp / "tt" / "epoch_1" / "model-00001-of-00001.safetensors").is_file()
    df = probe(tmp, run_dir=tmp / "tt", base=str(base_path))
    rd = df[df.metric == "RD"]
    assert list(rd["name"]) == ["epoch_0", "epoch_1"] and list(rd["index"]) == [1, 2]  # epochs trained
    assert_matches_plain(df, facts, fresh(base_path), byte_bpe_tokenizer(), fresh)


def test_revisions_in_the_local_hub_cache(base, monkeypatch):
    """``--base org/tiny@step0 --revisions step1 step2``: snapshots of one repo in the local cache, offline."""
    base_path, facts, tmp = base
    cache = tmp / "hub"
    repo = cache / "models--org--tiny"
    for i, revision in enumerate(["step0", "step1", "step2"]):
        commit = f"{i:040x}"
        snapshot = repo / "snapshots" / commit
        save_checkpoint(perturb(fresh(base_path), 0.02 * i, i), byte_bpe_tokenizer(), snapshot)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["probe", "--base", "org/tiny@step0", "--revisions", "step1", "step2", "--held",
                 str(tmp / "held.jsonl"), "--unknown", str(tmp / "unk.jsonl"), "--out", str(tmp / "probes"),
                 "--k", str(K)]) == 0
    df = pd.read_csv(tmp / "probes" / "probes.csv")
    assert list(df[df.metric == "RD"]["index"]) == [1, 2] and set(df["run"]) == {"org/tiny"}
    assert_matches_plain(df, facts, fresh(repo / "snapshots" / f"{0:040x}"), byte_bpe_tokenizer(), fresh)


def saved_as_by_transformers_4(folder):
    """Re-write a tokenizer saved here as tokenizers < 0.20 and transformers 4.x write it: merges as "a b" strings
    and no ignore_merges in tokenizer.json; added_tokens_decoder, additional_special_tokens, an empty
    extra_special_tokens dict and a typed AddedToken in tokenizer_config.json; a special_tokens_map.json of
    AddedToken dicts (the shapes transformers 5 still reads: PreTrainedTokenizerBase.convert_added_tokens and the
    legacy branch of _from_pretrained)."""
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]
    del spec["model"]["ignore_merges"]
    (folder / "tokenizer.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    added = {str(t["id"]): {k: v for k, v in t.items() if k != "id"} for t in spec["added_tokens"]}
    roles = {k: v for k, v in config.items() if k.endswith("_token")}
    as_added = {k: {"content": v, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
                for k, v in roles.items()}
    legacy = {"added_tokens_decoder": added, "additional_special_tokens": [], "extra_special_tokens": {},
              "clean_up_tokenization_spaces": False, "model_max_length": config["model_max_length"],
              "tokenizer_class": "PreTrainedTokenizerFast", **roles,
              "bos_token": {"__type": "AddedToken", **as_added["bos_token"], "special": True}}
    (folder / "tokenizer_config.json").write_text(json.dumps(legacy, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(as_added, indent=2))


def test_tokenizer_saved_by_another_library_version_is_the_same(tmp_path):
    """A base saved by transformers 4.x / tokenizers < 0.20 and checkpoints saved now share one tokenizer; a really
    different special token is still refused, by name."""
    from probekit.checkpoints import Checkpoint, check_series
    from probekit.errors import ProbekitError
    from probekit.models import load_tokenizer

    from .conftest import metaspace_bpe_tokenizer

    tok = metaspace_bpe_tokenizer()
    old, new = tmp_path / "base", tmp_path / "run" / "checkpoint-2"
    for folder in (old, new):
        save_checkpoint(tiny_model("llama", len(tok)), tok, folder)
    saved_as_by_transformers_4(old)
    check_series(old, [Checkpoint(new, "step", 2)])
    text = "Q: Which country is Zürich located in?\nA:"
    assert load_tokenizer(old)(text)["input_ids"] == tok(text)["input_ids"]
    config = json.loads((old / "tokenizer_config.json").read_text())
    config["additional_special_tokens"] = ["<tool>"]
    (old / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ProbekitError, match=r"special tokens \(<tool>\) differ"):
        check_series(old, [Checkpoint(new, "step", 2)])
