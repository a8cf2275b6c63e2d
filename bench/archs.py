"""The model configs the benches run with random weights: Qwen2.5-1.5B's published config, and a tiny one of the
same family for smoke runs on the CPU (``gpu_check.sh --smoke``). Token ids come from the embedded tokenizer, or
from the tokenizer folder $BENCH_TOKENIZER (a machine without the embedded model)."""
from __future__ import annotations

import os

QWEN25_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                   num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1e6,
                   rms_norm_eps=1e-6, tie_word_embeddings=True)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True)
ARCHS = {"qwen2.5-1.5b": QWEN25_1_5B, "tiny": TINY}


def random_config(arch: str, layers: int | None = None):
    """A Qwen2 config of `arch` (optionally `layers` decoder layers)."""
    from transformers import Qwen2Config

    return Qwen2Config(**{**ARCHS[arch], **({"num_hidden_layers": layers} if layers else {})})


def bench_tokenizer():
    from probekit.models import load_tokenizer

    return load_tokenizer(os.environ.get("BENCH_TOKENIZER") or "embedded")


def random_model(arch: str, layers: int | None = None, dtype=None, device: str = "cpu"):
    """A random-weight model of `arch` and the embedded tokenizer (its ids fit either vocabulary)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(device):  # initialised where it runs: seconds on a GPU rather than a minute on the host
        model = AutoModelForCausalLM.from_config(random_config(arch, layers), dtype=dtype or torch.float32)
    return model.eval(), bench_tokenizer()
