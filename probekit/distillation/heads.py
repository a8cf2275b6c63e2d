"""Final hidden states and LM-head logits only where a loss needs them.

Training never asks the model for B×T×V logits: the task loss needs them at the answer positions, top-k/random-k
distillation needs k logits per position (a row-wise dot product with k rows of the output embedding), and full
distillation computes them chunk by chunk. Gemma-style final logit soft-capping is applied like the model does.
"""
from __future__ import annotations

import torch


def attention_mask(model, batch) -> torch.Tensor | None:
    """The mask `batch` asks of `model`: [R, T] padding for right-padded rows; for packed rows [R, 1, T, T] causal
    inside each example (padding attends to padding, so no row is empty) as sdpa's bool mask or eager attention's
    additive one, or None for flash attention, which finds the examples from the restarting positions."""
    if not batch.packed:
        return batch.attention_mask
    impl = model.config._attn_implementation or "eager"
    if impl.startswith("flash"):
        return None
    seg = batch.segments
    causal = torch.ones(seg.shape[1], seg.shape[1], dtype=torch.bool, device=seg.device).tril()
    allowed = ((seg[:, :, None] == seg[:, None, :]) & causal)[:, None]
    if impl == "sdpa":
        return allowed
    dtype = next(model.parameters()).dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=seg.device).masked_fill(~allowed, torch.finfo(dtype).min)


def final_hidden(model, batch) -> torch.Tensor:
    """[R, T, d] last hidden states after the final norm (what the LM head reads) of a TrainBatch's rows."""
    return model.base_model(input_ids=batch.input_ids, attention_mask=attention_mask(model, batch),
                            position_ids=batch.position_ids, use_cache=False).last_hidden_state


def _softcap(model, logits: torch.Tensor) -> torch.Tensor:
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary logits [N, V] for hidden rows [N, d]."""
    return _softcap(model, model.get_output_embeddings()(hidden))


def head_logits_at(model, hidden: torch.Tensor, ids: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Logits [N, m] of hidden rows [N, d] at token ids [N, m] only: Σ_d h · W[id] (+ bias), chunked over N."""
    head = model.get_output_embeddings()
    out = []
    for s in range(0, len(hidden), chunk):
        h, i = hidden[s : s + chunk], ids[s : s + chunk]
        z = torch.einsum("nd,nmd->nm", h, head.weight[i])
        if head.bias is not None:
            z = z + head.bias[i]
        out.append(z)
    return _softcap(model, torch.cat(out)) if out else hidden.new_zeros((0, ids.shape[-1]))
