"""Capture equals plain Hugging Face (output_hidden_states, full logits) on each prompt run alone."""
import pytest
import torch

from probekit.capture import Prober
from probekit.entities import Fact, build_prompt, encode_batch, span_from_template
from probekit.errors import ProbekitError

from .conftest import byte_bpe_tokenizer, tiny_model

SUBJECTS = ["Milan", "Zürich", "São Paulo", "St. John's College, Oxford", "Bergadena", "東京", "Loc_fcfb46ee"]


def facts():
    out = []
    for subject in SUBJECTS:
        question, span = span_from_template("Which country is [X] located in?", subject)
        out.append(Fact(question, ("x",), span))
    return out


def hf_reference(model, tokenizer, fact, layer):
    """Plain HF on the prompt alone: (hidden_states[layer] at the entity token, last-position logits)."""
    prompt, span = build_prompt(fact)
    batch = encode_batch(tokenizer, [prompt], [span])
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    return out.hidden_states[layer][0, batch.entity_index[0]], out.logits[0, -1], out.hidden_states


ARCHS = ["qwen2", "llama", "gpt2", "gemma", "gemma2", "mistral", "gpt_neox", "phi", "phi3", "opt"]


@pytest.mark.parametrize("arch", ARCHS)
def test_capture_matches_hf(arch):
    tok = byte_bpe_tokenizer()
    model = tiny_model(arch, vocab_size=len(tok))
    fs = facts()
    for layer in (1, 2, 3):
        prober = Prober(model, tok, layer=layer, batch_size=4)  # several batches, sorted by length
        cap = prober.capture(fs, keep_logits=True, topk=5)
        for i, f in enumerate(fs):
            h, z, _ = hf_reference(model, tok, f, layer)
            torch.testing.assert_close(cap.states[i], h, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(cap.logits[i], z, atol=1e-5, rtol=1e-4)
            assert torch.equal(cap.topk_ids[i], z.topk(5).indices)
        # hidden states only: the forward stops at layer l, same numbers
        torch.testing.assert_close(prober.capture(fs).states, cap.states)
    # every layer in one pass == HF hidden_states[l] (l < L; the last is the block output, tested below)
    every = Prober(model, tok, batch_size=3).capture_layers(fs)
    assert every.shape[:2] == (4, len(fs))
    for i, f in enumerate(fs):
        prompt, span = build_prompt(f)
        entity = encode_batch(tok, [prompt], [span]).entity_index[0]
        hs = hf_reference(model, tok, f, 1)[2]
        for layer in (1, 2, 3):
            torch.testing.assert_close(every[layer - 1, i], hs[layer][0, entity], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(every[3], Prober(model, tok, layer=4).capture(fs).states, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_last_layer_is_block_output_without_final_norm(arch):
    tok = byte_bpe_tokenizer()
    model = tiny_model(arch, vocab_size=len(tok))
    f = facts()[0]
    cap = Prober(model, tok, layer=4).capture([f])
    prompt, span = build_prompt(f)
    batch = encode_batch(tok, [prompt], [span])
    norm = model.model.norm if arch == "llama" else model.transformer.ln_f
    _, _, hs = hf_reference(model, tok, f, 4)
    with torch.no_grad():
        torch.testing.assert_close(norm(cap.states[0]), hs[4][0, batch.entity_index[0]], atol=1e-5, rtol=1e-4)


def test_gather_picks_logits_per_pair():
    tok = byte_bpe_tokenizer()
    model = tiny_model("qwen2", vocab_size=len(tok))
    fs = facts()
    rows = torch.tensor([0, 3, 3, 6])
    index = torch.randint(0, len(tok), (4, 7))
    cap = Prober(model, tok, batch_size=3).capture(fs, gather=(rows, index), keep_logits=True)
    torch.testing.assert_close(cap.gathered, cap.logits[rows.unsqueeze(1), index])


def test_layer_out_of_range():
    tok = byte_bpe_tokenizer()
    with pytest.raises(ProbekitError, match="layers 1..4"):
        Prober(tiny_model("llama", vocab_size=len(tok)), tok, layer=5)


@pytest.mark.slow
def test_embedded_capture_matches_hf(embedded):
    model, tok, _ = embedded
    fs = facts()[:4]
    cap = Prober(model, tok).capture(fs, keep_logits=True)
    assert Prober(model, tok).layer == 15
    for i, f in enumerate(fs):
        h, z, _ = hf_reference(model, tok, f, 15)
        torch.testing.assert_close(cap.states[i], h, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cap.logits[i], z, atol=1e-4, rtol=1e-4)
