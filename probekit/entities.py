"""Facts, prompts, and the two token positions a probe reads: the key entity's final token and the answer position.

A fact is a question with its gold answers and the character span of its key (subject) entity. The span comes
from a relation template with ``[X]`` plus the subject, an explicit ``entity_span``, or an ``entity`` string that
must occur exactly once in the question. The prompt wraps the question in the trainer's QA format
(``"Q: {question}\\nA:"`` by default).

Positions are found in the *padded* batch: the entity's final token is the last real token whose character
span (from the fast tokenizer's offset mapping) covers the entity's last character, so BPE merges across the
entity's edges (" Milan", "Milan?") and left padding cannot shift it. The answer position is the last prompt
token, which under left padding is column -1 for every row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from .errors import ProbekitError

DEFAULT_PROMPT_FORMAT = "Q: {question}\nA:"


@dataclass(frozen=True)
class Fact:
    """One question; ``entity_span`` is the [start, end) character span of the key entity in ``question``."""

    question: str
    answers: tuple[str, ...]
    entity_span: tuple[int, int]
    relation: str | None = None
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def entity(self) -> str:
        return self.question[self.entity_span[0] : self.entity_span[1]]

    @property
    def answer(self) -> str:
        """The canonical gold answer (first listed), used to pair facts that share an answer."""
        return self.answers[0] if self.answers else ""


def span_from_template(template: str, subject: str) -> tuple[str, tuple[int, int]]:
    """Fill a ``[X]`` template; return the question and the subject's character span in it."""
    if template.count("[X]") != 1:
        raise ProbekitError(f"template must contain [X] exactly once: {template!r}")
    start = template.index("[X]")
    return template.replace("[X]", subject), (start, start + len(subject))


def span_of_entity(question: str, entity: str) -> tuple[int, int]:
    """Character span of `entity` in `question`; it must occur exactly once."""
    count = question.count(entity) if entity else 0
    if count == 0:
        raise ProbekitError(f"entity {entity!r} not found in prompt {question!r}")
    if count > 1:
        raise ProbekitError(
            f"entity {entity!r} occurs {count} times in prompt {question!r}; "
            "give 'template' + 'subject' or an explicit 'entity_span' instead"
        )
    start = question.index(entity)
    return start, start + len(entity)


def fact_from_record(rec: dict, where: str = "record") -> Fact:
    """A Fact from ``{"question", "answers", "entity" | "entity_span"}`` or ``{"template", "subject", "answers"}``."""
    answers = rec.get("answers", rec.get("answer"))
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ProbekitError(f"{where}: 'answers' must be a list of strings")
    if "template" in rec and "subject" in rec:
        question, span = span_from_template(rec["template"], rec["subject"])
        if "question" in rec and rec["question"] != question:
            raise ProbekitError(f"{where}: question {rec['question']!r} does not match its template and subject")
    elif "question" in rec and "entity_span" in rec:
        question = rec["question"]
        start, end = (int(x) for x in rec["entity_span"])
        if not 0 <= start < end <= len(question):
            raise ProbekitError(f"{where}: entity_span {rec['entity_span']} is outside prompt {question!r}")
        span = (start, end)
    elif "question" in rec and "entity" in rec:
        question = rec["question"]
        span = span_of_entity(question, rec["entity"])
    else:
        raise ProbekitError(
            f"{where}: a fact needs 'question' and 'answers' plus 'entity' (or 'entity_span'), "
            "or 'template' + 'subject' + 'answers'"
        )
    known = {"question", "answers", "answer", "entity", "entity_span", "template", "subject", "relation"}
    extra = {k: v for k, v in rec.items() if k not in known}
    return Fact(question, tuple(answers), span, rec.get("relation"), extra)


def read_facts(source) -> list[Fact]:
    """Read facts from a JSONL / JSON / CSV / Parquet file, a ``save_to_disk`` folder or a ``datasets.Dataset``
    (see probekit.facts_io); a bad record is an error naming the file and its row (the line, in JSONL)."""
    from .facts_io import read_records

    facts = [fact_from_record(rec, where) for where, rec in read_records(source)]
    if not facts:
        raise ProbekitError(f"{source if isinstance(source, (str, os.PathLike)) else 'dataset'} holds no facts")
    return facts


def fact_to_record(fact: Fact) -> dict:
    rec = {"question": fact.question, "answers": list(fact.answers), "entity_span": list(fact.entity_span)}
    if fact.relation:
        rec["relation"] = fact.relation
    return {**rec, **fact.extra}


def build_prompt(fact: Fact, prompt_format: str = DEFAULT_PROMPT_FORMAT) -> tuple[str, tuple[int, int]]:
    """The prompt text and the entity's character span inside it."""
    if prompt_format.count("{question}") != 1:
        raise ProbekitError(f"prompt format must contain {{question}} exactly once: {prompt_format!r}")
    offset = prompt_format.index("{question}")
    prompt = prompt_format.replace("{question}", fact.question)
    start, end = fact.entity_span
    return prompt, (offset + start, offset + end)


@dataclass
class PromptBatch:
    """A left-padded batch: ``input_ids``/``attention_mask`` [B, T], ``entity_index`` [B] (column of each
    entity's final token). The answer position is column T-1 for every row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    entity_index: torch.Tensor


def entity_token_index(offsets: torch.Tensor, real: torch.Tensor, last_char: int) -> int:
    """Index of the last real token whose character span covers `last_char`, or -1.

    offsets: [T, 2] character (start, end) per token; real: [T] bool, False for padding and special tokens.
    """
    covers = real & (offsets[:, 0] <= last_char) & (offsets[:, 1] > last_char)
    hits = covers.nonzero()
    return int(hits[-1]) if len(hits) else -1


def encode_batch(tokenizer, prompts: list[str], spans: list[tuple[int, int]]) -> PromptBatch:
    """Tokenize with left padding and locate each entity's final token; an entity not found names its prompt."""
    if not getattr(tokenizer, "is_fast", False):
        raise ProbekitError("probekit needs a fast tokenizer (tokenizer.json) for character offsets")
    enc = tokenizer(
        prompts,
        padding=True,
        padding_side="left",
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    real = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()
    index = []
    for row, (prompt, (start, end)) in enumerate(zip(prompts, spans)):
        i = entity_token_index(enc["offset_mapping"][row], real[row], end - 1) if end > start else -1
        if i < 0:
            raise ProbekitError(f"entity {prompt[start:end]!r} not found among the tokens of prompt {prompt!r}")
        index.append(i)
    return PromptBatch(enc["input_ids"], enc["attention_mask"], torch.tensor(index, dtype=torch.long))


def locate_entities(tokenizer, facts: list[Fact], prompt_format: str = DEFAULT_PROMPT_FORMAT,
                    chunk: int = 256) -> torch.Tensor:
    """Entity token index of every fact, each tokenized alone ([N]); raises on the first entity not found."""
    out = []
    for s in range(0, len(facts), chunk):
        prompts, spans = zip(*(build_prompt(f, prompt_format) for f in facts[s : s + chunk]))
        batch = encode_batch(tokenizer, list(prompts), list(spans))
        out.append(batch.entity_index - (1 - batch.attention_mask).sum(-1))  # unpadded positions
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
