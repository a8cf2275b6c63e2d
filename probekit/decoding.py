"""Batched short-answer decoding: greedy or sampled, stopping at the first newline, with a shared-prefix KV cache.

Answers to ``Q: …\\nA:`` prompts are a few tokens long, so decoding is dominated by the prompt. When many prompts
share a few-shot prefix, the prefix is run once and its KV cache is repeated over the batch; the questions are
then left-padded after it, with position ids that count real tokens only, so every row computes what it would
compute alone. A row stops at the first token containing a newline (or EOS); the answer is the text before it.
"""
from __future__ import annotations

import copy
import inspect

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

DEFAULT_MAX_NEW_TOKENS = 16


def _stop_token_ids(tokenizer) -> torch.Tensor:
    """Ids whose text contains a newline, plus EOS: generating one ends the answer."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    ids = [i for i, t in enumerate(texts) if "\n" in t]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return torch.tensor(sorted(set(ids)))


def _common_prefix_length(rows: list[list[int]]) -> int:
    """Length of the token prefix all rows share, leaving every row at least one token of its own."""
    n = min(len(r) for r in rows) - 1
    for i in range(n):
        if any(r[i] != rows[0][i] for r in rows):
            return i
    return max(n, 0)


CPU_BATCH, GPU_BATCH = 32, 256  # prompts per decoding batch when none is given


def default_batch_size(model) -> int:
    """Prompts per decoding batch for `model`'s device: a GPU takes far more rows per step than 2 CPU cores."""
    return GPU_BATCH if next(model.parameters()).device.type == "cuda" else CPU_BATCH


class AnswerDecoder:
    """Decodes answers for one model and tokenizer; `stop_ids` are computed once."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 batch_size: int | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size or default_batch_size(model)
        self.stop_ids = _stop_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        accepted = inspect.signature(model.forward).parameters  # newer transformers call the KV cache `cache`
        self._cache_kw = "cache" if "cache" in accepted else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _prefix_cache(self, prefix_ids: list[int]) -> DynamicCache:
        cache = DynamicCache()
        ids = torch.tensor([prefix_ids], device=self.device)
        self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})  # only the cache
        return cache

    @torch.inference_mode()
    def decode(
        self,
        prompts: list[str],
        *,
        prefix: str = "",
        temperature: float = 0.0,
        top_k: int = 40,
        num_samples: int = 1,
        generator: torch.Generator | None = None,
        progress: bool | str = False,
    ) -> list[list[str]]:
        """Answers for ``prefix + prompt`` of each prompt: ``num_samples`` strings per prompt.

        temperature 0 is greedy; otherwise sampling at `temperature` from the `top_k` most likely tokens.
        """
        full = self.tokenizer([prefix + p for p in prompts])["input_ids"]
        shared = _common_prefix_length(full)
        prefix_ids, suffixes = full[0][:shared], [ids[shared:] for ids in full]
        prefix_cache = self._prefix_cache(prefix_ids) if prefix_ids else None
        rows = [i for i in range(len(prompts)) for _ in range(num_samples)]
        order = sorted(range(len(rows)), key=lambda r: len(suffixes[rows[r]]))
        answers: list[str] = [""] * len(rows)
        starts = range(0, len(order), self.batch_size)
        for s in tqdm(starts, desc=progress if isinstance(progress, str) else "decode", disable=not progress,
                      leave=False):
            chunk = order[s : s + self.batch_size]
            texts = self._decode_batch(prefix_ids, prefix_cache, [suffixes[rows[r]] for r in chunk],
                                       temperature, top_k, generator)
            for r, t in zip(chunk, texts):
                answers[r] = t
        return [answers[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]

    def _decode_batch(self, prefix_ids, prefix_cache, suffixes, temperature, top_k, generator) -> list[str]:
        b, p, width = len(suffixes), len(prefix_ids), max(len(s) for s in suffixes)
        ids = torch.full((b, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((b, p + width), dtype=torch.long)
        mask[:, :p] = 1
        for i, s in enumerate(suffixes):
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, p + width - len(s) :] = 1
        position = (mask.cumsum(-1) - 1).clamp(min=0)[:, p:]
        cache = DynamicCache()
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(b)
        dev = self.device
        ids, mask, position = ids.to(dev), mask.to(dev), position.to(dev)
        stop = self.stop_ids.to(dev)
        out = torch.full((b, self.max_new_tokens), self.pad_id, dtype=torch.long, device=dev)
        active = torch.arange(b, device=dev)  # rows still decoding; finished rows leave the batch
        for step in range(self.max_new_tokens):
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True,
                                logits_to_keep=1, **{self._cache_kw: cache}).logits[:, -1].float()
            if temperature > 0:
                top = logits.topk(min(top_k, logits.shape[-1]), dim=-1)
                probs = torch.softmax(top.values / temperature, dim=-1)
                pick = torch.multinomial(probs.cpu(), 1, generator=generator).to(dev)
                token = top.indices.gather(-1, pick).squeeze(-1)
            else:
                token = logits.argmax(-1)
            out[active, step] = token
            going = ~torch.isin(token, stop)
            if not going.any():
                break
            if not going.all():
                keep = going.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                active, token, mask, position = active[keep], token[keep], mask[keep], position[keep]
            ids = token.unsqueeze(-1)
            mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], dim=-1)
            position = position[:, -1:] + 1
        texts = self.tokenizer.batch_decode(out.cpu(), skip_special_tokens=True)
        return [t.split("\n", 1)[0].strip() for t in texts]
