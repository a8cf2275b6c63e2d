"""Greedy exact match without decoding where one forward pass decides it; decoding only the rest.

Is the greedy answer to a prompt correct (``probekit.answers.is_correct``: SQuAD-normalised, any gold alias)?
Decoding answers that token by token. Instead, one teacher-forced forward over ``prompt + " " + answer + "\\n"``
(the first gold alias) gives the model's argmax at every position of that continuation c, and decides:

- **correct** when greedy decoding would reproduce c token for token: the argmax at each position is c's next
  token, c's last token is a stop token (newline) and no earlier one is. The greedy answer is then c's text.
- **decided by the first token** t1 (the argmax after the prompt): a stop token (newline, EOS) ends the answer
  there; otherwise,
  when t1's text is one alphanumeric word piece w (after SQuAD's lower-casing and punctuation removal; not a piece
  of an article), every continuation's normalised answer starts with w, so it is **wrong** when no normalised alias
  starts with w.
- anything else (greedy leaves c later, t1 is ambiguous, a near tie) is decoded as before.

Every decision is exact, not a heuristic: the greedy path is determined by the argmaxes checked. To stay exact
across the small numeric differences between one full forward and cached step-by-step decoding, an argmax is
trusted only when it leads the runner-up by ``margin`` (default 1e-3 in fp32). In 16-bit weights or under
autocast the default is to decode everything: on an H200 in bf16 a 0.5-logit margin still gave outcomes other than
decoding's (bench/RESULTS.md), and no margin is measured yet to be safe there; give one to trade that for speed.
"""
from __future__ import annotations

import math

import torch

from .answers import first_word_piece, is_correct, squad_normalize

from .decoding import DEFAULT_MAX_NEW_TOKENS, AnswerDecoder

class ExactMatch:
    """Greedy exact match for one model and tokenizer: ``correct(prompts, answers) -> list[bool]``."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, batch_size: int | None = None,
                 margin: float | None = None):
        self.decoder = AnswerDecoder(model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size)
        self.model, self.tokenizer, self.batch_size = model, tokenizer, self.decoder.batch_size
        self.stop = set(self.decoder.stop_ids.tolist())
        param = next(model.parameters())
        full = param.dtype == torch.float32 and not torch.is_autocast_enabled(param.device.type)
        self.margin = margin if margin is not None else (1e-3 if full else math.inf)
        self.decided = {"forced": 0, "first_token": 0, "decoded": 0}  # how each outcome was reached, cumulative

    @torch.inference_mode()
    def correct(self, prompts: list[str], answers: list[list[str]] | list[tuple[str, ...]]) -> list[bool]:
        """Whether the greedy answer to each prompt matches one of its gold aliases (same as decoding)."""
        if not prompts:
            return []
        # an infinite margin trusts no argmax: decode everything, without the forced pass
        out = [None] * len(prompts) if math.isinf(self.margin) else self._forced_outcomes(prompts, answers)
        rest = [i for i, o in enumerate(out) if o is None]
        if rest:
            texts = self.decoder.decode([prompts[i] for i in rest])
            for i, t in zip(rest, texts):
                out[i] = is_correct(t[0], answers[i])
        self.decided["decoded"] += len(rest)
        return out

    def _forced_outcomes(self, prompts: list[str], answers) -> list[bool | None]:
        """What the teacher-forced pass over prompt + first alias + newline decides of each prompt (None: decode)."""
        prompt_ids = self.tokenizer(list(prompts))["input_ids"]
        forced = [self.tokenizer(f" {a[0]}\n", add_special_tokens=False)["input_ids"] for a in answers]
        out: list[bool | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]) + len(forced[i]))
        for s in range(0, len(order), self.batch_size):
            rows = order[s : s + self.batch_size]
            top = self._forced_top2(prompt_ids, forced, rows)
            for r, (values, ids) in zip(rows, top):
                out[r] = self._decide(forced[r], values, ids, answers[r])
        return out

    def _forced_top2(self, prompt_ids, forced, rows) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Top-2 logits and ids at each continuation position of each row: ([len(c), 2], [len(c), 2]) per row.
        Rows are left-padded with position ids that count real tokens, so each computes what it would alone."""
        seqs = [prompt_ids[r] + forced[r] for r in rows]
        width, keep = max(map(len, seqs)), max(len(forced[r]) for r in rows) + 1
        pad = self.decoder.pad_id
        ids = torch.tensor([[pad] * (width - len(q)) + q for q in seqs])
        mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in seqs])
        position = (mask.cumsum(-1) - 1).clamp(min=0)
        dev = self.decoder.device
        logits = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=position.to(dev),
                            logits_to_keep=keep).logits.float()  # [B, keep, V]: the last `keep` positions
        top = logits.topk(2, dim=-1)
        out = []
        for b, r in enumerate(rows):
            n = len(forced[r])  # predictions of c's n tokens come from the n positions before the last
            window = slice(keep - n - 1, keep - 1)
            out.append((top.values[b, window].cpu(), top.indices[b, window].cpu()))
        return out

    def _decide(self, c: list[int], values: torch.Tensor, ids: torch.Tensor, aliases) -> bool | None:
        """The outcome greedy decoding would reach, or None when the forced pass cannot tell."""
        sure = (values[:, 0] - values[:, 1]) >= self.margin  # [len(c)]
        first = int(ids[0, 0])
        if not sure[0]:
            return None
        if first in self.stop:  # the answer ends at once
            self.decided["first_token"] += 1
            return is_correct(self._answer_text([first]), aliases)
        if self._reproduces(c, ids, sure):
            self.decided["forced"] += 1
            return is_correct(self._answer_text(c), aliases)
        w = first_word_piece(self.tokenizer.decode([first], skip_special_tokens=True))
        if w is not None and not any(squad_normalize(a).startswith(w) for a in aliases):
            self.decided["first_token"] += 1
            return False
        return None

    def _answer_text(self, tokens: list[int]) -> str:
        """The decoder's answer for a row that emitted `tokens` and stopped: its row is padded to the full length
        and decoded whole, then cut at the first newline."""
        row = tokens + [self.decoder.pad_id] * (self.decoder.max_new_tokens - len(tokens))
        return self.tokenizer.decode(row, skip_special_tokens=True).split("\n", 1)[0].strip()

    def _reproduces(self, c: list[int], ids: torch.Tensor, sure: torch.Tensor) -> bool:
        """Greedy decoding emits exactly c: every argmax is c's token (and trusted), only c's last one stops."""
        if not c or len(c) > self.decoder.max_new_tokens or c[-1] not in self.stop:
            return False
        if any(t in self.stop for t in c[:-1]):
            return False
        return bool(sure.all()) and ids[:, 0].tolist() == c
