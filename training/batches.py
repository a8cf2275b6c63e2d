"""QA training examples and right-padded batches: which positions carry the task loss and which the distillation.

An example is ``Q: {question}\\nA:`` (tokenized alone, exactly as at evaluation) followed by `` {answer}\\n``; the
trailing newline teaches the model to stop, which is where greedy evaluation cuts the answer. The task loss is on
the answer tokens; distillation is on every non-padded position M(y).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from probekit.entities import DEFAULT_PROMPT_FORMAT, Fact, build_prompt


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
    """Right-padded batch. input_ids/attention_mask/position_ids [B, T];
    answer_rows/answer_cols [A] positions whose logits predict an answer token, targets [A];
    seq_rows/seq_cols [N] the non-padded positions M(y) in example order; example_index [B] dataset indices."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    answer_rows: torch.Tensor
    answer_cols: torch.Tensor
    targets: torch.Tensor
    seq_rows: torch.Tensor
    seq_cols: torch.Tensor
    example_index: torch.Tensor

    @property
    def num_answer_tokens(self) -> int:
        return len(self.targets)

    def to(self, device) -> "TrainBatch":
        return TrainBatch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


def collate(examples: list[Example], pad_id: int) -> TrainBatch:
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    a_rows, a_cols, targets, s_rows, s_cols = [], [], [], [], []
    for r, e in enumerate(examples):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        mask[r, :n] = 1
        for j in range(e.prompt_length - 1, n - 1):  # logits at j predict token j + 1
            a_rows.append(r)
            a_cols.append(j)
            targets.append(e.input_ids[j + 1])
        s_rows += [r] * n
        s_cols += range(n)
    t = lambda x: torch.tensor(x, dtype=torch.long)  # noqa: E731
    return TrainBatch(ids, mask, t(a_rows), t(a_cols), t(targets), t(s_rows), t(s_cols),
                 t([e.index for e in examples]))


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
