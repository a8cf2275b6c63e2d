"""EntityQuestions (Sciavolino et al., 2021; MIT licence): relations, splits and templates → facts with entity spans.

The dataset ships inside this package (``training/data/entityquestions``: one gzipped JSON list per relation and
split, plus ``relation_query_templates.json`` and the LICENSE). A user's own unzipped copy in the official layout
(``dataset/{train,dev,test}/P17.{split}.json`` and the templates file) can be given as ``root`` instead.
Files load through Hugging Face ``datasets`` (``probekit.facts_io.read_table``) and are read column-wise.
Each question's key entity is the text its relation template puts at ``[X]``.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from probekit.entities import Fact
from probekit.errors import ProbekitError
from probekit.facts_io import read_table

BUNDLED = Path(__file__).parent / "data" / "entityquestions"
SPLITS = ("train", "dev", "test")
TEMPLATES_FILE = "relation_query_templates.json"


def _root(root: str | Path | None) -> Path:
    root = Path(root) if root is not None else BUNDLED
    if not (root / TEMPLATES_FILE).is_file():
        raise ProbekitError(f"{root} is not an EntityQuestions directory: it has no {TEMPLATES_FILE}")
    return root


@lru_cache
def templates(root: str | Path | None = None) -> dict[str, str]:
    """Relation id → question template with ``[X]``."""
    path = _root(root) / TEMPLATES_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProbekitError(f"{path}: malformed JSON ({exc.msg})") from None


def relations(root: str | Path | None = None, split: str = "train") -> list[str]:
    """Relations that have a file for `split`, sorted by number (P17 before P106)."""
    base = _root(root) / split
    found = {p.name.split(".")[0] for p in base.glob(f"P*.{split}.json*")}
    return sorted(found, key=lambda r: int(r[1:]))


def _template_regex(template: str) -> re.Pattern:
    before, after = template.split("[X]")
    return re.compile(re.escape(before) + "(.+)" + re.escape(after) + r"\Z", re.DOTALL)


def load_relation(relation: str, split: str, root: str | Path | None = None) -> list[Fact]:
    """All questions of one relation and split as Facts (entity span from the template; relation recorded)."""
    root = _root(root)
    if split not in SPLITS:
        raise ProbekitError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if relation not in templates(root):
        raise ProbekitError(f"unknown relation {relation!r}; known: {', '.join(sorted(templates(root)))}")
    candidates = [root / split / f"{relation}.{split}.json.gz", root / split / f"{relation}.{split}.json"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise ProbekitError(f"no {split} file for {relation} under {root / split}")
    table = read_table(path)
    missing = {"question", "answers"} - set(table.column_names)
    if missing:
        raise ProbekitError(f"{path}: records lack {', '.join(sorted(missing))}; is it an EntityQuestions file?")
    pattern = _template_regex(templates(root)[relation])
    facts = []
    columns = table.data  # pyarrow: column-wise, no dict per row
    questions, answers = columns.column("question").to_pylist(), columns.column("answers").to_pylist()
    for i, (question, answer) in enumerate(zip(questions, answers)):
        m = pattern.match(question or "")
        if m is None:
            raise ProbekitError(f"{path}[{i}]: question {question!r} does not fit template of {relation}")
        facts.append(Fact(question, tuple(answer), m.span(1), relation))
    return facts
