"""QA training examples and their batches (right-padded rows, or packed rows of several examples each): which
positions carry the task loss and which the distillation.

An example is ``Q: {question}\\nA:`` (tokenized alone, exactly as at evaluation) followed by `` {answer}\\n``; the
trailing newline teaches the model to stop, which is where greedy evaluation cuts the answer. The task loss is on
the answer tokens; distillation is on every non-padded position M(y).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

import torch

from ..entities import DEFAULT_PROMPT_FORMAT, Fact, build_prompt
from ..errors import ProbekitError


@dataclass(frozen=True)
class Example:
    index: int  # position in the training set (keys the teacher cache)
    input_ids: tuple[int, ...]
    prompt_length: int


def make_examples(tokenizer, facts: list[Fact], prompt_format: str = DEFAULT_PROMPT_FORMAT) -> list[Example]:
    if not facts:
        return []
    prompts = [build_prompt(f, prompt_format)[0] for f in facts]
    prompt_ids = tokenizer(prompts)["input_ids"]
    answer_ids = tokenizer([f" {f.answer}\n" for f in facts], add_special_tokens=False)["input_ids"]
    return [Example(i, tuple(p + a), len(p)) for i, (p, a) in enumerate(zip(prompt_ids, answer_ids))]


@dataclass
class TrainBatch:
    """Rows of tokens, either one right-padded example per row or, `packed`, several examples per row (attention
    kept inside each example, positions restarting at 0). input_ids/attention_mask/position_ids/segments [R, T]
    (segments: each token's example slot, -1 on padding); answer_rows/answer_cols [A] positions whose logits predict
    an answer token, targets [A]; seq_rows/seq_cols [N] the non-padded positions M(y) in example order, seq_example
    [N] their example slot and seq_pos [N] their position inside it; example_index [E] the slots' dataset indices."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    segments: torch.Tensor
    answer_rows: torch.Tensor
    answer_cols: torch.Tensor
    targets: torch.Tensor
    seq_rows: torch.Tensor
    seq_cols: torch.Tensor
    seq_example: torch.Tensor
    seq_pos: torch.Tensor
    example_index: torch.Tensor
    packed: bool = False

    @property
    def num_answer_tokens(self) -> int:
        return len(self.targets)

    def distilled(self, positions: str = "all") -> tuple[torch.Tensor, ...]:
        """M(y) of eq. 2 as (rows, cols, example slot, position in the example) [N] each: every non-padded position
        (``all``), or only the positions whose logits predict an answer token (``answer``)."""
        if positions == "all":
            return self.seq_rows, self.seq_cols, self.seq_example, self.seq_pos
        rows, cols = self.answer_rows, self.answer_cols
        return rows, cols, self.segments[rows, cols], self.position_ids[rows, cols]

    def map(self, fn) -> "TrainBatch":
        """The batch with `fn` applied to every tensor."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self) if f.name != "packed"})

    def to(self, device) -> "TrainBatch":
        return self.map(lambda t: t.to(device))


def _layout(examples: list[Example], places: list[tuple[int, int]], rows: int, width: int, pad_id: int,
            packed: bool) -> TrainBatch:
    """The batch with example i's tokens at row places[i][0] from column places[i][1] on."""
    ids = torch.full((rows, width), pad_id, dtype=torch.long)
    segments = torch.full((rows, width), -1, dtype=torch.long)
    positions = torch.zeros((rows, width), dtype=torch.long)
    a_rows, a_cols, targets, s_rows, s_cols, s_example, s_pos = [], [], [], [], [], [], []
    for slot, (e, (r, c)) in enumerate(zip(examples, places)):
        n = len(e.input_ids)
        ids[r, c : c + n] = torch.tensor(e.input_ids)
        segments[r, c : c + n] = slot
        positions[r, c : c + n] = torch.arange(n)
        for j in range(e.prompt_length - 1, n - 1):  # logits at j predict token j + 1
            a_rows.append(r)
            a_cols.append(c + j)
            targets.append(e.input_ids[j + 1])
        s_rows += [r] * n
        s_cols += range(c, c + n)
        s_example += [slot] * n
        s_pos += range(n)
    mask = (segments >= 0).long()
    if not packed:  # as the model numbers right-padded rows (padding repeats the last position)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
    t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return TrainBatch(ids, mask, positions, segments, t(a_rows), t(a_cols), t(targets), t(s_rows), t(s_cols),
                      t(s_example), t(s_pos), t([e.index for e in examples]), packed)


def collate(examples: list[Example], pad_id: int, width: int | None = None) -> TrainBatch:
    """One example per row, right-padded to the longest (or to `width` columns: fixed shapes, one compile)."""
    longest = max(len(e.input_ids) for e in examples)
    return _layout(examples, [(r, 0) for r in range(len(examples))], len(examples), width or longest, pad_id, False)


def pack(lengths: list[int], row_tokens: int) -> tuple[list[tuple[int, int]], int]:
    """First-fit decreasing: (row, first column) of each example in rows of `row_tokens` tokens, and the row count."""
    used: list[int] = []  # tokens taken in each row
    places: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        if lengths[i] > row_tokens:
            raise ProbekitError(f"an example of {lengths[i]} tokens does not fit a packed row of {row_tokens}; "
                                "raise --pack-tokens")
        r = next((r for r, u in enumerate(used) if u + lengths[i] <= row_tokens), len(used))
        if r == len(used):
            used.append(0)
        places[i] = (r, used[r])
        used[r] += lengths[i]
    return places, len(used)


def collate_packed(examples: list[Example], pad_id: int, row_tokens: int, rows: int | None = None) -> TrainBatch:
    """The examples packed into rows of `row_tokens` tokens (first-fit decreasing), padded with empty rows to `rows`
    if given (fixed shapes: one compile)."""
    places, needed = pack([len(e.input_ids) for e in examples], row_tokens)
    if rows is not None and rows < needed:
        raise ValueError(f"{len(examples)} examples need {needed} rows, not {rows}")
    return _layout(examples, places, rows or needed, row_tokens, pad_id, True)


def epoch_batches(examples: list[Example], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = True) -> list[list[Example]]:
    """The batches of one epoch, deterministic for (seed, epoch): shuffled, and with `group_by_length` sorted by
    length within windows of 50 batches so padding stays small while batch order stays random."""
    rng = random.Random(f"{seed}:{epoch}")
    order = examples[:]
    rng.shuffle(order)
    if group_by_length:
        window = batch_size * 50
        order = [e for s in range(0, len(order), window)
                 for e in sorted(order[s : s + window], key=lambda e: len(e.input_ids))]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches
