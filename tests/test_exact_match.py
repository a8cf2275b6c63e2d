"""Greedy exact match decided by a teacher-forced pass gives the same per-fact outcomes as decoding every answer."""
import pytest
import torch

from probekit.answers import first_word_piece, is_correct
from probekit.decoding import AnswerDecoder
from probekit.exact_match import ExactMatch

from .conftest import CORPUS, byte_bpe_tokenizer, metaspace_bpe_tokenizer, tiny_model


def memorised_model(tokenizer, steps: int = 120):
    """A tiny Llama trained until it answers the corpus questions (so the forced-correct path is exercised)."""
    model = tiny_model("llama", vocab_size=len(tokenizer)).train()
    batch = tokenizer([c + "\n" for c in CORPUS], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(**batch, labels=labels).loss.backward()
        opt.step()
    return model.eval()


def plain_outcomes(model, tokenizer, prompts, answers):
    texts = AnswerDecoder(model, tokenizer, batch_size=4).decode(prompts)
    return [is_correct(t[0], a) for t, a in zip(texts, answers)]


@pytest.mark.parametrize("make_tokenizer", [byte_bpe_tokenizer, metaspace_bpe_tokenizer])
def test_same_outcomes_as_decoding(make_tokenizer):
    tok = make_tokenizer()
    model = memorised_model(tok)
    questions = [c.split("\nA:")[0] + "\nA:" for c in CORPUS]
    gold = [c.split("\nA: ")[1] for c in CORPUS]
    prompts, answers = [], []
    for q, g in zip(questions, gold):  # right, wrong, right among several aliases, an article in front
        prompts += [q, q, q, q]
        answers += [[g], ["Norway"], ["Peru", g], [f"the {g}"]]
    prompts += ["Q: Which country is Oslo located in?\nA:", "Q: What is the capital of Peru?\nA:"]
    answers += [["Norway"], ["Lima"]]
    judge = ExactMatch(model, tok, batch_size=5)
    assert judge.correct(prompts, answers) == plain_outcomes(model, tok, prompts, answers)
    assert judge.decided["forced"] > 0 and judge.decided["first_token"] > 0


def test_first_word_piece_is_only_trusted_when_safe():
    assert first_word_piece(" Ger") == "ger" and first_word_piece("(Ital") == "ital"
    assert first_word_piece(" The") is None and first_word_piece(" a") is None  # articles vanish
    assert first_word_piece(" New York") is None and first_word_piece("\ufffd") is None
    assert first_word_piece(" -") is None and first_word_piece("ΟΔΟΣ") is None


@pytest.mark.slow(seconds=35)
def test_same_outcomes_as_decoding_on_the_embedded_model(embedded):
    from training.entityquestions import load_relation
    from training.slick import qa_text

    model, tok, _ = embedded
    facts = load_relation("P17", "dev")[:64] + load_relation("P36", "dev")[:32]
    prompts, answers = [qa_text(f) for f in facts], [list(f.answers) for f in facts]
    judge = ExactMatch(model, tok)
    assert judge.correct(prompts, answers) == plain_outcomes(model, tok, prompts, answers)
    assert judge.decided["forced"] + judge.decided["first_token"] > 0, judge.decided


def test_16_bit_decodes_everything_unless_given_a_margin():
    """In bf16 (or under autocast) no trust margin is known to be safe: every outcome is decoded by default."""
    tok = byte_bpe_tokenizer()
    model = memorised_model(tok, steps=60).to(torch.bfloat16)
    prompts = [c.split("A:")[0] + "A:" for c in CORPUS[:4]]
    answers = [[c.split("A:")[1].strip()] for c in CORPUS[:4]]
    judge = ExactMatch(model, tok, batch_size=4)
    assert judge.correct(prompts, answers) == plain_outcomes(model, tok, prompts, answers)
    assert judge.decided == {"forced": 0, "first_token": 0, "decoded": 4}
    assert ExactMatch(model, tok, margin=0.5).margin == 0.5
