"""Shared fixtures: tokenizers built in memory and tiny random models of several architectures (offline)."""
from __future__ import annotations

import functools

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

CORPUS = [
    "Q: Which country is Milan located in?\nA: Italy",
    "Q: What is the capital of France?\nA: Paris",
    "Q: Which country is Zürich located in?\nA: Switzerland",
    "Q: Who founded St. John's College, Oxford?\nA: Thomas White",
    "Q: Which country is São Paulo located in?\nA: Brazil",
    "Q: What is the capital of Bergadena?\nA: Loc_fcfb46ee",
    "Q: Which country is 東京 located in?\nA: 日本",
]


@functools.lru_cache
def byte_bpe_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE tokenizer trained on a tiny corpus (merges span spaces: " Milan")."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")


@functools.lru_cache
def metaspace_bpe_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A SentencePiece-style (Metaspace ▁) BPE tokenizer that prepends <bos>, like Llama/Gemma tokenizers."""
    from tokenizers import processors

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"])
    tok.train_from_iterator(CORPUS * 20, trainer)
    bos = tok.token_to_id("<bos>")
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )


TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)
ARCH_KWARGS = {
    "qwen2": TINY,
    "llama": TINY,
    "mistral": TINY,
    "gemma": {**TINY, "head_dim": 16},
    "gemma2": {**TINY, "head_dim": 16},
    "gemma3_text": {**TINY, "head_dim": 16},
    "gpt2": dict(n_embd=64, n_layer=4, n_head=4),
    "gpt_neox": TINY,
    "phi": TINY,
    "phi3": {**TINY, "pad_token_id": 0},
    "opt": dict(hidden_size=64, ffn_dim=128, num_hidden_layers=4, num_attention_heads=4, word_embed_proj_dim=64),
}


def tiny_model(model_type: str, vocab_size: int = 400, seed: int = 0):
    """A 4-layer random model of `model_type`, in eval mode, float32."""
    torch.manual_seed(seed)
    config = AutoConfig.for_model(model_type, vocab_size=vocab_size, **ARCH_KWARGS[model_type])
    return AutoModelForCausalLM.from_config(config).eval()


def save_checkpoint(model, tokenizer, path) -> None:
    model.save_pretrained(path, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)


@pytest.fixture(scope="session")
def embedded(tmp_path_factory):
    """(model, tokenizer, path) of the embedded SmolLM2-135M, converted into a per-session cache if needed."""
    import os

    from probekit.models import cache_dir, load_model

    if not (cache_dir() / "smollm2-135m-instruct" / "config.json").exists() and "PROBEKIT_CACHE" not in os.environ:
        os.environ["PROBEKIT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    from probekit.models import embedded_model_dir

    path = embedded_model_dir()
    model, tok = load_model(path)
    return model, tok, path


@pytest.fixture
def tiny_series(tmp_path):
    """(tmp_path, run, base, held, unknown) of a tiny qwen2 series: see tests.support.series.make_tiny_series."""
    from .support.series import make_tiny_series  # here, not at the top: support builds on this module's models

    return make_tiny_series(tmp_path)


def pytest_configure(config):
    """Under pytest-xdist each worker, and every process it starts (OMP_NUM_THREADS), computes on one core: two
    workers of two threads each would oversubscribe the cores."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The slow tests first, the longest first (``@pytest.mark.slow(seconds=N)``: its measured cost under
    ``-n auto`` on 2 cores, else 10), so that the workers share them from the start instead of one worker ending
    alone on a long one."""
    def cost(item) -> float:
        mark = item.get_closest_marker("slow")
        return 0.0 if mark is None else mark.kwargs.get("seconds", mark.args[0] if mark.args else 10.0)

    items.sort(key=cost, reverse=True)
