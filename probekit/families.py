"""Per-architecture adapters: where the decoder layers are, and the names of their attention and MLP parts.

Every supported family answers the same questions, so probes and parameter freezing work the same way on
Qwen2, Llama (SmolLM2), Mistral, Gemma 1/2/3, GPT-2, GPT-NeoX, Phi, Phi-3 and OPT. Module names are relative
to one decoder block. Where an architecture fuses projections (GPT-2 ``c_attn``, GPT-NeoX
``query_key_value``, Phi-3 ``qkv_proj`` and ``gate_up_proj``) the fused module serves each of its parts, and
an MLP without a gate (GPT-2, NeoX, Phi, OPT) has its input projection as "gate+up" and output as "down".

Layer numbering: layer ``l`` (1-based) is the output of decoder block ``l``, i.e. HF ``hidden_states[l]``
(``hidden_states[0]`` is the embeddings). For the last layer, HF applies the final norm to
``hidden_states[L]``; probekit's layer ``L`` is the block's own output, without that norm.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .errors import ProbekitError

#: parameter groups a trainer can freeze or train; "all" is every parameter of the model.
GROUPS = ("attn", "q", "k", "v", "o", "ffn", "gate+up", "down", "all")


@dataclass(frozen=True)
class Family:
    """Module names of one architecture family, relative to the model root (`layers`) or to a block."""

    name: str
    model_types: tuple[str, ...]
    layers: str  # dotted path of the ModuleList of decoder blocks
    q: str
    k: str
    v: str
    o: str
    gate_up: tuple[str, ...]  # MLP input projection(s)
    down: str  # MLP output projection

    def block_modules(self, group: str) -> tuple[str, ...]:
        """Names (relative to a decoder block) of the modules in a parameter group; "all" is not per-block."""
        parts = {
            "q": (self.q,),
            "k": (self.k,),
            "v": (self.v,),
            "o": (self.o,),
            "attn": (self.q, self.k, self.v, self.o),
            "gate+up": self.gate_up,
            "down": (self.down,),
            "ffn": (*self.gate_up, self.down),
        }
        if group not in parts:
            raise ProbekitError(f"unknown parameter group {group!r}; choose from {', '.join(GROUPS)}")
        return tuple(dict.fromkeys(parts[group]))  # fused modules appear once

    def decoder_layers(self, model: nn.Module) -> nn.ModuleList:
        return model.get_submodule(self.layers)


_LLAMA_LIKE = dict(
    layers="model.layers",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    o="self_attn.o_proj",
    gate_up=("mlp.gate_proj", "mlp.up_proj"),
    down="mlp.down_proj",
)

FAMILIES: tuple[Family, ...] = (
    Family("llama", ("llama",), **_LLAMA_LIKE),
    Family("qwen2", ("qwen2", "qwen3"), **_LLAMA_LIKE),
    Family("mistral", ("mistral",), **_LLAMA_LIKE),
    Family("gemma", ("gemma", "gemma2", "gemma3_text"), **_LLAMA_LIKE),
    Family(
        "gpt2", ("gpt2",), layers="transformer.h", q="attn.c_attn", k="attn.c_attn", v="attn.c_attn",
        o="attn.c_proj", gate_up=("mlp.c_fc",), down="mlp.c_proj",
    ),
    Family(
        "gpt_neox", ("gpt_neox",), layers="gpt_neox.layers", q="attention.query_key_value",
        k="attention.query_key_value", v="attention.query_key_value", o="attention.dense",
        gate_up=("mlp.dense_h_to_4h",), down="mlp.dense_4h_to_h",
    ),
    Family(
        "phi", ("phi",), layers="model.layers", q="self_attn.q_proj", k="self_attn.k_proj",
        v="self_attn.v_proj", o="self_attn.dense", gate_up=("mlp.fc1",), down="mlp.fc2",
    ),
    Family(
        "phi3", ("phi3",), layers="model.layers", q="self_attn.qkv_proj", k="self_attn.qkv_proj",
        v="self_attn.qkv_proj", o="self_attn.o_proj", gate_up=("mlp.gate_up_proj",), down="mlp.down_proj",
    ),
    Family(
        "opt", ("opt",), layers="model.decoder.layers", q="self_attn.q_proj", k="self_attn.k_proj",
        v="self_attn.v_proj", o="self_attn.out_proj", gate_up=("fc1",), down="fc2",
    ),
)


def _model_type(config) -> str:
    return getattr(config.get_text_config(), "model_type", None) or config.model_type


def family_of(model_or_config) -> Family:
    """The family of a model (or its config); an unsupported architecture is an error naming what to add."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = _model_type(config)
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = sorted(t for f in FAMILIES for t in f.model_types)
    raise ProbekitError(
        f"architecture {model_type!r} is not supported (supported: {', '.join(supported)}); "
        "add a Family to probekit/families.py naming its decoder layers and q/k/v/o, MLP modules"
    )


def num_layers(model_or_config) -> int:
    config = getattr(model_or_config, "config", model_or_config)
    return int(config.get_text_config().num_hidden_layers)


def default_layer(model_or_config) -> int:
    """The study's probe layer: the middle one, ``num_hidden_layers // 2`` (14 on 28-layer Qwen2.5-1.5B)."""
    return num_layers(model_or_config) // 2


def check_layer(model_or_config, layer: int) -> int:
    """Validate a 1-based layer number (layer l = HF ``hidden_states[l]``)."""
    n = num_layers(model_or_config)
    if not 1 <= layer <= n:
        raise ProbekitError(f"layer {layer} is out of range: this model has layers 1..{n} (layer l = hidden_states[l])")
    return layer


def probe_layers(model_or_config, layer: int | None = None, layers=None) -> list[int]:
    """The ascending 1-based layers a probe reads: `layers` (numbers, or "all" for every layer) if given, else
    `layer`, else the middle one. Giving both is an error."""
    if layers is None or (isinstance(layers, (list, tuple)) and not layers):
        return [check_layer(model_or_config, layer if layer is not None else default_layer(model_or_config))]
    if layer is not None:
        raise ProbekitError("give --layer or --layers, not both")
    if layers == "all" or list(layers) == ["all"]:
        return list(range(1, num_layers(model_or_config) + 1))
    try:
        numbers = {int(x) for x in layers}
    except (TypeError, ValueError):
        raise ProbekitError(f"--layers takes layer numbers or 'all' (got {' '.join(map(str, layers))})") from None
    return [check_layer(model_or_config, x) for x in sorted(numbers)]


def group_parameters(model: nn.Module, group: str) -> dict[str, nn.Parameter]:
    """Parameters of a group over every decoder block, by full name (``"all"``: every model parameter)."""
    if group == "all":
        return dict(model.named_parameters())
    family = family_of(model)
    names = family.block_modules(group)
    out = {}
    for i, block in enumerate(family.decoder_layers(model)):
        for name in names:
            for pname, p in block.get_submodule(name).named_parameters():
                out[f"{family.layers}.{i}.{name}.{pname}"] = p
    return out
