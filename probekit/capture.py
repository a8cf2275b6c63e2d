"""Capture layer-l entity states and answer-position logits with nnsight, batched by length.

``Prober(model, tokenizer).capture(facts)`` returns, for every fact, the hidden state of its key entity's final
token at layer ``l`` (1-based: layer l = HF ``hidden_states[l]``, the output of decoder block l; the last layer
is the block output without the final norm). With ``topk`` or ``gather`` (or ``keep_logits``) it also reads the
logits that predict the first answer token, computed at the last prompt token only (``logits_to_keep=1``),
never over the whole sequence. Without them the forward pass stops at layer l.

Prompts are sorted by token length and batched with left padding, so padding stays small; position ids count
real tokens only, so every prompt sees exactly what it would see alone. Results come back in input order.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import nnsight
import torch
from tqdm.auto import tqdm

from .entities import DEFAULT_PROMPT_FORMAT, Fact, build_prompt, encode_batch
from .families import check_layer, default_layer, family_of

GPU_BATCH_TOKENS = 16384  # a GPU's default token budget per forward pass


@dataclass
class Capture:
    """What one pass over a list of N facts produced (all float32 / int64 on CPU, in input order).

    states: [N, d] layer-l states at each entity's final token.
    topk_ids, topk_values: [N, k] the k highest answer-position logits and their token ids (descending), if asked.
    gathered: [P, m] answer-position logits of fact ``rows[p]`` at token ids ``index[p]``, if asked.
    logits: [N, V] full answer-position logits, only with ``keep_logits=True`` (memory: N × vocab).
    """

    states: torch.Tensor
    topk_ids: torch.Tensor | None = None
    topk_values: torch.Tensor | None = None
    gathered: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class Prober:
    """Reads layer-l entity states (and answer logits) from one model through nnsight hooks.

    layer: 1-based probe layer, default ``num_hidden_layers // 2``.
    prompt_format: how a question becomes a prompt, with ``{question}``.
    batch_size / batch_tokens: facts per forward pass, or a token budget (facts × padded length) that sets it;
    on a GPU the budget defaults to ``GPU_BATCH_TOKENS`` (``batch_tokens=0``: `batch_size` facts there too).
    """

    def __init__(
        self,
        model,
        tokenizer,
        layer: int | None = None,
        *,
        prompt_format: str = DEFAULT_PROMPT_FORMAT,
        batch_size: int = 32,
        batch_tokens: int | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.layer = check_layer(model, layer if layer is not None else default_layer(model))
        self.prompt_format = prompt_format
        self.batch_size = batch_size
        on_gpu = self.device.type == "cuda"
        self.batch_tokens = (GPU_BATCH_TOKENS if on_gpu else None) if batch_tokens is None else batch_tokens or None
        self.envoy = nnsight.TransformersModel(model, tokenizer=tokenizer)
        self._blocks = functools.reduce(getattr, family_of(model).layers.split("."), self.envoy)
        accepted = inspect.signature(model.forward).parameters
        self._logits_to_keep = "logits_to_keep" in accepted
        self._position_ids = "position_ids" in accepted

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _batches(self, facts: list[Fact]) -> list[list[int]]:
        """Fact indices grouped into batches of similar token length: `batch_size` facts each, or with a token
        budget as many as keep facts × padded length within `batch_tokens`."""
        prompts = [build_prompt(f, self.prompt_format)[0] for f in facts]
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        order = sorted(range(len(facts)), key=lambda i: lengths[i])
        if not self.batch_tokens:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches = [[]]
        for i in order:  # ascending lengths: the newest fact sets the padded length
            if batches[-1] and (len(batches[-1]) + 1) * lengths[i] > self.batch_tokens:
                batches.append([])
            batches[-1].append(i)
        return [b for b in batches if b]

    @torch.inference_mode()
    def _forward(self, facts: list[Fact], layers: list[int], want_logits: bool
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batch → (states [len(layers), B, d] at the given ascending 1-based layers on the CPU, answer logits
        [B, V] float32 on the model's device or None: top-k and gathers run there, only their results travel)."""
        prompts, spans = zip(*(build_prompt(f, self.prompt_format) for f in facts))
        batch = encode_batch(self.tokenizer, list(prompts), list(spans))
        inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if self._position_ids:  # positions count real tokens only, so left padding cannot shift them
            inputs["position_ids"] = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        rows = torch.arange(len(facts), device=self.device)
        cols = batch.entity_index.to(self.device)
        kwargs = {"logits_to_keep": 1} if want_logits and self._logits_to_keep else {}
        saved = []  # made outside the trace: nnsight hands back only what exists outside it or is .save()d
        with self.envoy.trace(inputs, **kwargs) as tracer:
            for layer in layers:  # in execution order, as nnsight requires
                out = self._blocks[layer - 1].output
                hidden = out[0] if isinstance(out, tuple) else out  # [B, T, d]; a tuple on some versions
                saved.append(hidden[rows, cols].save())
            if want_logits:
                logits = self.envoy.output.logits[:, -1].save()  # [B, V] at the last prompt token
            else:
                tracer.stop()  # nothing past the last probed layer is needed
        states = torch.stack([h.float().cpu() for h in saved])
        return states, (logits.float() if want_logits else None)

    def capture_layers(self, facts: list[Fact], layers: list[int] | None = None,
                       progress: bool | str = False) -> torch.Tensor:
        """Entity states at several layers in one pass (default: every layer) → [len(layers), N, d]."""
        layers = sorted({check_layer(self.model, layer) for layer in (layers or range(1, len(self._blocks) + 1))})
        return self.capture(facts, layers=layers, progress=progress).states

    def capture(
        self,
        facts: list[Fact],
        *,
        topk: int | None = None,
        gather: tuple[torch.Tensor, torch.Tensor] | None = None,
        keep_logits: bool = False,
        layers: list[int] | None = None,
        progress: bool | str = False,
    ) -> Capture:
        """Capture states for `facts`; optionally top-k ids, gathered logits ``gather=(rows [P], index [P, m])``
        and full answer logits. `layers`: ascending 1-based layers read in the same pass, then ``states`` is
        [len(layers), N, d] instead of [N, d] at the prober's layer. `progress`: a tqdm description (or True)."""
        want_logits = topk is not None or gather is not None or keep_logits
        # every buffer names its dtype: a model being loaded in another thread sets torch's default dtype
        if gather is not None:
            gather_rows, gather_index = gather
            by_fact = {}
            for p, r in enumerate(gather_rows.tolist()):
                by_fact.setdefault(r, []).append(p)
            gathered = torch.empty(gather_index.shape, dtype=torch.float32)
        states = topk_ids = topk_values = logits = None
        batches = self._batches(facts)
        desc = progress if isinstance(progress, str) else "capture"
        for idx in tqdm(batches, desc=desc, disable=not progress, leave=False):
            h, z = self._forward([facts[i] for i in idx], layers or [self.layer], want_logits)
            h = h if layers else h[0]
            idx_t = torch.tensor(idx)
            if states is None:
                states = torch.empty(*h.shape[:-2], len(facts), h.shape[-1], dtype=torch.float32)
            states[..., idx_t, :] = h
            if topk is not None:
                if topk_ids is None:
                    topk_ids = torch.empty(len(facts), topk, dtype=torch.long)
                    topk_values = torch.empty(len(facts), topk, dtype=torch.float32)
                top = z.topk(topk, dim=-1)
                topk_ids[idx_t], topk_values[idx_t] = top.indices.cpu(), top.values.cpu()
            if keep_logits:
                logits = logits if logits is not None else torch.empty(len(facts), z.shape[-1], dtype=torch.float32)
                logits[idx_t] = z.cpu()
            if gather is not None:
                places = [(j, p) for j, i in enumerate(idx) for p in by_fact.get(i, ())]
                if places:
                    js, ps = torch.tensor(places).T
                    gathered[ps] = z[js.to(z.device)].gather(-1, gather_index[ps].to(z.device)).cpu()
        return Capture(states, topk_ids, topk_values, gathered if gather is not None else None, logits)
