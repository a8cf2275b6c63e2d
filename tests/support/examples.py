"""Training examples of varied lengths (prompt and answer token counts) for packing and distillation tests."""
from __future__ import annotations

from probekit.distillation.batches import Example

TEXTS = ["Q: Which country is Milan located in?\nA: Italy\n", "Q: Oslo?\nA: Norway\n",
         "Q: What is the capital of Zürich, São Paulo?\nA: Paris\n", "Q: Where is Lyon?\nA: France\n",
         "Q: Bern?\nA: Switzerland, a federal state\n", "Q: Kyoto?\nA: Japan\n", "Q: Which river?\nA: Nile\n"]


def examples(tok) -> list[Example]:
    """One Example per text in TEXTS, tokenized by `tok`, the prompt ending at "A:"."""
    out = []
    for i, text in enumerate(TEXTS):
        prompt, answer = text.split("A:")
        p = tok(prompt + "A:")["input_ids"]
        out.append(Example(i, tuple(p + tok(answer, add_special_tokens=False)["input_ids"]), len(p)))
    return out
