"""The entity-token locator on real tokenizers, under left padding, BPE merges, repeats and non-ASCII."""
import json

import pytest
import torch

from probekit.entities import (
    Fact, build_prompt, encode_batch, fact_from_record, read_facts, span_from_template,
)
from probekit.errors import ProbekitError

from .conftest import byte_bpe_tokenizer, metaspace_bpe_tokenizer

CASES = [
    ("Which country is [X] located in?", "Milan"),
    ("Which country is [X] located in?", "Zürich"),
    ("Which country is [X] located in?", "São Paulo"),
    ("Who founded [X]?", "St. John's College, Oxford"),
    ("Who is [X]'s child?", "Bergadena"),
    ("What is the capital of [X]?", "Loc_fcfb46ee"),
    ("Which country is [X] located in?", "located"),  # the entity string repeats in the question
    ("What is the capital of [X]?", "東京"),
]


def facts():
    out = []
    for template, subject in CASES:
        q, span = span_from_template(template, subject)
        out.append(Fact(q, ("x",), span))
    return out


def reference_index(tokenizer, prompt: str, span) -> int:
    """Plain reference, unpadded: the first token after which the decoded text holds the whole entity."""
    ids = tokenizer(prompt)["input_ids"]
    for i in range(len(ids)):
        text = tokenizer.decode(ids[: i + 1], skip_special_tokens=True)
        done = text.rstrip("\ufffd")  # a multi-byte character split over tokens is not complete yet
        if len(done) >= span[1] and prompt[: span[1]] == done[: span[1]]:
            return i
    raise AssertionError(f"entity never completed in {prompt!r}")


@pytest.mark.parametrize("make_tok", [byte_bpe_tokenizer, metaspace_bpe_tokenizer], ids=["bytebpe", "metaspace"])
def test_left_padding_does_not_shift_entity(make_tok):
    tok = make_tok()
    fs = facts()
    prompts, spans = zip(*(build_prompt(f) for f in fs))
    batch = encode_batch(tok, list(prompts), list(spans))
    assert batch.attention_mask[:, -1].all(), "left padding: last column is the answer position"
    for row, (prompt, span) in enumerate(zip(prompts, spans)):
        alone = encode_batch(tok, [prompt], [span])
        pad = batch.input_ids.shape[1] - alone.input_ids.shape[1]
        assert int(batch.entity_index[row]) == int(alone.entity_index[0]) + pad
        assert torch.equal(batch.input_ids[row, pad:], alone.input_ids[0])
        assert int(alone.entity_index[0]) == reference_index(tok, prompt, span), prompt


def test_entity_token_covers_last_char_with_bpe_merges():
    tok = byte_bpe_tokenizer()
    prompt, span = build_prompt(Fact("Which country is Milan located in?", ("Italy",), (17, 22)))
    enc = tok(prompt, return_offsets_mapping=True)
    i = int(encode_batch(tok, [prompt], [span]).entity_index[0])
    start, end = enc["offset_mapping"][i]
    assert start <= span[1] - 1 < end
    assert "Milan".endswith(tok.decode(enc["input_ids"][i]).strip()[-2:])  # the token " Milan" or its tail


def test_embedded_tokenizer_left_padding(embedded):
    _, tok, _ = embedded
    fs = facts()
    prompts, spans = zip(*(build_prompt(f) for f in fs))
    batch = encode_batch(tok, list(prompts), list(spans))
    for row, (prompt, span) in enumerate(zip(prompts, spans)):
        alone = encode_batch(tok, [prompt], [span])
        pad = batch.input_ids.shape[1] - alone.input_ids.shape[1]
        assert int(batch.entity_index[row]) == int(alone.entity_index[0]) + pad
        assert int(alone.entity_index[0]) == reference_index(tok, prompt, span), prompt


def test_entity_not_found_names_prompt():
    with pytest.raises(ProbekitError, match="Milano.*Which country is Milan"):
        fact_from_record({"question": "Which country is Milan located in?", "answers": ["Italy"], "entity": "Milano"})


def test_repeated_entity_string_is_ambiguous_without_template():
    rec = {"question": "Is Paris in Paris, Texas?", "answers": ["no"], "entity": "Paris"}
    with pytest.raises(ProbekitError, match="occurs 2 times"):
        fact_from_record(rec)
    fact = fact_from_record({"question": rec["question"], "answers": ["no"], "entity_span": [12, 24]})
    assert fact.entity == "Paris, Texas"


def test_template_gives_exact_span_when_subject_repeats_template_words():
    fact = fact_from_record({"template": "Which country is [X] located in?", "subject": "located", "answers": ["x"]})
    assert fact.entity_span == (17, 24)


def test_read_facts_reports_line(tmp_path):
    f = tmp_path / "facts.jsonl"
    f.write_text(json.dumps({"question": "What is the capital of France?", "answers": ["Paris"], "entity": "France"})
                 + "\n{not json\n")
    with pytest.raises(ProbekitError, match="facts.jsonl:2"):
        read_facts(f)


def test_bad_prompt_format():
    with pytest.raises(ProbekitError, match="question"):
        build_prompt(Fact("q?", ("a",), (0, 1)), "no placeholder")


def test_read_facts_from_every_datasets_source(tmp_path):
    """JSONL, CSV (a JSON list in a cell), Parquet, a Dataset and a save_to_disk folder give the same facts."""
    import pandas as pd
    from datasets import Dataset

    rows = [{"question": "What is the capital of France?", "answers": ["Paris"], "entity": "France"},
            {"template": "Which country is [X] located in?", "subject": "Milan", "answers": ["Italy", "Italia"]}]
    jsonl = tmp_path / "f.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    want = read_facts(jsonl)
    assert [f.entity for f in want] == ["France", "Milan"] and want[1].answers == ("Italy", "Italia")
    table = Dataset.from_pandas(pd.DataFrame(rows))  # every column; a row's missing cells are null
    pd.DataFrame([{**r, "answers": json.dumps(r["answers"])} for r in rows]).to_csv(tmp_path / "f.csv", index=False)
    table.to_parquet(tmp_path / "f.parquet")
    table.save_to_disk(tmp_path / "saved")
    for source in (tmp_path / "f.csv", tmp_path / "f.parquet", tmp_path / "saved", table):
        assert read_facts(source) == want, source


def test_read_facts_not_utf8(tmp_path):
    f = tmp_path / "latin.jsonl"
    f.write_bytes('{"question": "Où est Zürich?", "answers": ["CH"], "entity": "Zürich"}\n'.encode("latin-1"))
    with pytest.raises(ProbekitError, match="latin.jsonl is not UTF-8 text"):
        read_facts(f)


def test_jsonl_records_keep_their_own_types_and_lines(tmp_path):
    """JSONL the line-by-line reader accepted still loads: answers a string in one row and a list in another, a
    nested dict with only its own keys (so the facts' hashes do not change), errors naming the line past blanks."""
    from probekit.series import _hash_facts

    rows = [{"question": "What is the capital of France?", "answers": "Paris", "entity": "France",
             "meta": {"source": "a"}},
            {"template": "Which country is [X] located in?", "subject": "Milan", "answers": ["Italy", "Italia"],
             "meta": {"id": 7}}]
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    facts = read_facts(f)
    assert [fact.answers for fact in facts] == [("Paris",), ("Italy", "Italia")]
    assert [fact.extra for fact in facts] == [{"meta": {"source": "a"}}, {"meta": {"id": 7}}]
    assert _hash_facts(facts) == _hash_facts([fact_from_record(r) for r in rows])
    f.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps({**rows[1], "answers": [1]}) + "\n")
    with pytest.raises(ProbekitError, match="mixed.jsonl:3: 'answers' must be a list of strings"):
        read_facts(f)
