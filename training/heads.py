"""Final hidden states and LM-head logits only where a loss needs them.

Training never asks the model for B×T×V logits: the task loss needs them at the answer positions, top-k/random-k
distillation needs k logits per position (a row-wise dot product with k rows of the output embedding), and full
distillation computes them chunk by chunk. Gemma-style final logit soft-capping is applied like the model does.
"""
from __future__ import annotations

import torch


def final_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T, d] last hidden states after the final norm (what the LM head reads); right padding."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return model.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=False).last_hidden_state


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
