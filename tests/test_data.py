"""EntityQuestions loading, SLiCK categories and decoding, splits, and synthetic facts."""
import gzip
import json
from collections import Counter

import datasets
import pytest
import torch

from probekit.answers import is_correct, squad_normalize
from probekit.entities import Fact
from probekit.errors import ProbekitError
from probekit.io import write_jsonl
from probekit.decoding import AnswerDecoder
from training.entityquestions import BUNDLED, load_relation, relations, templates
from training.jsonl_columns import write_jsonl_columns
from training.slick import (
    Slick, SlickConfig, categorize, choose_exemplars, exemplar_prefix, qa_text,
    run_slick,
)
from training.splits import SplitConfig, make_splits
from training.synthetic import decode_batch, real_p17, synthetic_facts, token_pools

from .conftest import byte_bpe_tokenizer, tiny_model


# --- EntityQuestions -------------------------------------------------------------------------------------------

def test_bundled_entityquestions():
    assert len(relations()) == 24 and "P17" in relations()
    facts = load_relation("P17", "dev")
    assert len(facts) > 900
    for f in facts[:50]:
        assert f.question == templates()["P17"].replace("[X]", f.entity) and f.relation == "P17" and f.answers


def test_user_dataset_dir_and_errors(tmp_path):
    root = tmp_path / "dataset"
    (root / "dev").mkdir(parents=True)
    (root / "relation_query_templates.json").write_text(json.dumps({"P36": "What is the capital of [X]?"}))
    (root / "dev" / "P36.dev.json").write_text(json.dumps([{"question": "What is the capital of Peru?",
                                                             "answers": ["Lima"]}]))
    [fact] = load_relation("P36", "dev", root)
    assert fact.entity == "Peru" and fact.answers == ("Lima",)
    with pytest.raises(ProbekitError, match="unknown relation 'P999'"):
        load_relation("P999", "dev", root)
    with pytest.raises(ProbekitError, match="no train file for P36"):
        load_relation("P36", "train", root)
    (root / "dev" / "P36.dev.json").write_text("[{oops")
    with pytest.raises(ProbekitError, match="P36.dev.json"):
        load_relation("P36", "dev", root)
    with pytest.raises(ProbekitError, match="not an EntityQuestions directory"):
        load_relation("P36", "dev", tmp_path)
    with gzip.open(root / "dev" / "P36.dev.json.gz", "wt") as fh:
        json.dump([{"question": "Who is Peru?", "answers": ["x"]}], fh)
    with pytest.raises(ProbekitError, match="does not fit template"):
        load_relation("P36", "dev", root)

    (root / "dev" / "P36.dev.json.gz").unlink()
    (root / "dev" / "P36.dev.json").write_text(json.dumps([{"question": "What is the capital of Peru?"}]))
    with pytest.raises(ProbekitError, match="P36.dev.json: records lack answers"):
        load_relation("P36", "dev", root)


def _json_reference(relation, split):
    """The loader before `datasets`: gzip + json.load, one record at a time."""
    with gzip.open(BUNDLED / split / f"{relation}.{split}.json.gz", "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    before, after = templates()[relation].split("[X]")
    facts = []
    for rec in records:
        assert rec["question"].startswith(before) and rec["question"].endswith(after)
        span = (len(before), len(rec["question"]) - len(after))
        facts.append(Fact(rec["question"], tuple(rec["answers"]), span, relation))
    return facts


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_bundled_entityquestions_load_as_before(split):
    """Loading through `datasets` gives the Facts of the plain JSON reader: every bundled relation, same order."""
    for relation in relations(split=split):
        assert load_relation(relation, split) == _json_reference(relation, split), relation


# --- SLiCK ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p_greedy,p_sampled,category", [
    (1.0, None, "HighlyKnown"),
    (1.0, 0.0, "HighlyKnown"),  # greedy decides before samples matter
    (0.95, 1.0, "MaybeKnown"),
    (0.05, 0.0, "MaybeKnown"),
    (0.0, 0.0625, "WeaklyKnown"),
    (0.0, 1.0, "WeaklyKnown"),
    (0.0, 0.0, "Unknown"),
    (0.0, None, "Unknown"),  # no samples taken: nothing shows it is known
])
def test_categories(p_greedy, p_sampled, category):
    assert categorize(p_greedy, p_sampled) == category


def test_prediction_tables_give_all_four_categories():
    answers = ("Paris", "City of Paris")
    table = {  # question → (greedy answers over 4 runs, sampled answers)
        "high": (["Paris", "paris.", "The Paris", "City of Paris"], []),
        "maybe": (["Paris", "Lyon", "Lyon", "Lyon"], []),
        "weak": (["Lyon"] * 4, ["Lyon", "Paris", "Nice"]),
        "unknown": (["Lyon"] * 4, ["Lyon", "Nice", "Parisian"]),
    }
    got = {}
    for q, (greedy, sampled) in table.items():
        pg = sum(is_correct(a, answers) for a in greedy) / len(greedy)
        ps = sum(is_correct(a, answers) for a in sampled) / len(sampled) if sampled else None
        got[q] = categorize(pg, ps)
    assert got == {"high": "HighlyKnown", "maybe": "MaybeKnown", "weak": "WeaklyKnown", "unknown": "Unknown"}


def test_normalisation():
    assert squad_normalize("  The  United-States, of America! ") == "unitedstates of america"
    assert is_correct("an Italy.", ["Italy"]) and not is_correct("", [""]) and not is_correct("Italia", ["Italy"])


def test_exemplars_never_the_question():
    pool = load_relation("P36", "train")[:20]
    for mode in ("independent", "shared"):
        config = SlickConfig(runs=3, shots=3, exemplars=mode)
        for f in pool:
            for run in range(3):
                chosen = choose_exemplars(f, pool, run, config)
                assert len(chosen) == 3 and f.question not in {e.question for e in chosen}
    shared = SlickConfig(exemplars="shared")
    sets = {exemplar_prefix(choose_exemplars(f, pool, 0, shared)) for f in load_relation("P36", "dev")[:20]}
    assert len(sets) == 1  # one exemplar set per relation and run


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_decoder_matches_generate_per_prompt(arch):
    """Batched, prefix-shared greedy decoding equals HF generate on each prompt alone."""
    tok = byte_bpe_tokenizer()
    model = tiny_model(arch, vocab_size=len(tok), seed=3)
    decoder = AnswerDecoder(model, tok, max_new_tokens=6, batch_size=3)
    prefix = "Q: What is the capital of France?\nA: Paris\n\n"
    prompts = [qa_text(type("F", (), {"question": q})()) for q in
               ["Which country is Milan located in?", "Who founded St. John's College, Oxford?", "Is São Paulo?",
                "What is the capital of Bergadena?", "Which country is Zürich located in?"]]
    got = decoder.decode(prompts, prefix=prefix)
    for prompt, [answer] in zip(prompts, got):
        enc = tok(prefix + prompt, return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=6, do_sample=False, eos_token_id=decoder.stop_ids.tolist(),
                             pad_token_id=tok.pad_token_id)
        ref = tok.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True).split("\n", 1)[0].strip()
        assert answer == ref


def test_sampling_is_seeded_and_shaped():
    tok = byte_bpe_tokenizer()
    decoder = AnswerDecoder(tiny_model("llama", vocab_size=len(tok)), tok, max_new_tokens=4)
    prompts = ["Q: Which country is Milan located in?\nA:", "Q: What is the capital of France?\nA:"]
    a = decoder.decode(prompts, temperature=0.5, num_samples=3, generator=torch.Generator().manual_seed(1))
    b = decoder.decode(prompts, temperature=0.5, num_samples=3, generator=torch.Generator().manual_seed(1))
    assert a == b and [len(x) for x in a] == [3, 3]


@pytest.mark.slow
def test_slick_end_to_end_on_embedded_and_resume(embedded, tmp_path, monkeypatch):
    model, tok, _ = embedded
    pools = {"P36": load_relation("P36", "train")}
    facts = load_relation("P36", "dev")[:6]
    # answers are cut at 6 tokens (a capital's name fits): what is tested is the records and resuming, not length
    slick = Slick(model, tok, pools, SlickConfig(runs=2, shots=3, samples=2, exemplars="shared", max_new_tokens=6))
    out = tmp_path / "P36.dev.jsonl"
    records = run_slick(slick, facts, out, "smollm2", chunk=3, progress=False)
    assert [r["question"] for r in records] == [f.question for f in facts]
    for r in records:
        assert r["category"] in {"HighlyKnown", "MaybeKnown", "WeaklyKnown", "Unknown"}
        assert len(r["greedy"]) == 2 and r["category"] == categorize(r["p_greedy"], r["p_sampled"])
        assert (r["p_sampled"] is None) == (r["p_greedy"] > 0)
    # an interruption that cut the last record: resumed, the chunk is asked again, the records are the same and the
    # cut line stays on a line of its own
    cut = out.read_text(encoding="utf-8")[:-20]
    out.write_text(cut, encoding="utf-8")
    assert run_slick(slick, facts, out, "smollm2", chunk=3, progress=False) == records
    assert cut.splitlines()[-1] in out.read_text(encoding="utf-8").splitlines()
    # resume: everything cached, no decoding at all
    monkeypatch.setattr(slick, "classify", lambda *a, **k: pytest.fail("re-ran a cached chunk"))
    assert run_slick(slick, facts, out, "smollm2", chunk=3, progress=False) == records
    with pytest.raises(ProbekitError, match="other settings"):
        run_slick(Slick(model, tok, pools, SlickConfig(runs=3, max_new_tokens=6)), facts, out, "smollm2")


@pytest.mark.slow(seconds=40)
@pytest.mark.parametrize("mode", ["independent", "shared"])
def test_slick_stops_settled_questions_with_the_same_categories(embedded, mode):
    """A MaybeKnown question leaves the later runs: the categories, P_sampled and the answers it was given are those
    of asking every question every run."""
    model, tok, _ = embedded
    pools = {"P17": load_relation("P17", "train")}
    facts = load_relation("P17", "dev")[:32]
    config = SlickConfig(runs=4, shots=3, samples=1, exemplars=mode, max_new_tokens=6)  # a country fits in 6
    fast = Slick(model, tok, pools, config).classify(facts)
    full = Slick(model, tok, pools, config, stop_early=False).classify(facts)
    assert [r["category"] for r in fast] == [r["category"] for r in full]
    assert [r["p_sampled"] for r in fast] == [r["p_sampled"] for r in full]
    assert all(r["greedy"] == f["greedy"][: r["greedy_runs"]] for r in fast for f in [full[fast.index(r)]])
    assert any(r["greedy_runs"] < 4 for r in fast)  # some question was settled early
    assert all(r["greedy_runs"] == 4 for r in fast if r["category"] != "MaybeKnown")


# --- splits -----------------------------------------------------------------------------------------------------

def slick_table(relation, split, counts):
    out = []
    for cat, n in counts.items():
        out += [{"question": f"{relation} {split} {cat} {i}?", "answers": ["a"], "entity_span": [0, 1],
                 "relation": relation, "category": cat} for i in range(n)]
    return out


def test_slick_asks_the_model_in_the_profiles_precision(monkeypatch, tmp_path):
    """--precision bf16-mixed gives SLiCK bf16 weights and its own results folder; fp32 on the CPU keeps the folder
    SLiCK results had before the flag existed."""
    from dataclasses import asdict

    from analyses import data as analyses_data
    from analyses.profiles import PROFILES
    from probekit.entities import fact_to_record
    from probekit.io import stable_hash

    tok, asked = byte_bpe_tokenizer(), []

    def load_model(model, device, dtype):
        weights = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        return tiny_model("qwen2", len(tok)).to(weights), tok

    def run_slick(slick, facts, out_file, model_name):
        asked.append((next(slick.decoder.model.parameters()).dtype, out_file.parent.name))
        return [{**fact_to_record(f), "category": "Unknown"} for f in facts]

    monkeypatch.setattr(analyses_data, "load_model", load_model)
    monkeypatch.setattr(analyses_data, "run_slick", run_slick)
    quick = PROFILES["quick"].replace(train_questions=2, dev_questions=2, device="cpu")
    for precision in ("auto", "fp32", "bf16-mixed"):
        analyses_data._slick_records(quick.replace(precision=precision), tmp_path)
    config = SlickConfig(runs=quick.slick.runs, shots=quick.slick.shots, samples=quick.slick.samples,
                         exemplars=quick.slick.exemplars, seed=quick.seed)
    before = stable_hash([quick.model, asdict(config)])
    assert {a for a in asked if a[0] == torch.float32} == {(torch.float32, before)}
    assert {a[1] for a in asked if a[0] == torch.bfloat16} - {before}
    assert [a[1] for a in asked] == [analyses_data.slick_folder(tmp_path, quick.replace(precision=p)).name
                                     for p in ("auto", "fp32", "bf16-mixed") for _ in range(2)]  # nothing loaded


def test_slick_asked_share_counts_the_questions_on_disk(tmp_path):
    """A dry run's SLiCK left: the share of the profile's questions whose records a resumable SLiCK has written
    (a line cut by an interruption and questions of other profiles not counted); all once the splits exist."""

    from analyses import data as analyses_data
    from analyses.profiles import PROFILES

    profile = PROFILES["standard"].replace(relations=["P17", "P36"], train_questions=30, dev_questions=20,
                      device="cpu")
    assert analyses_data.slick_asked_share(tmp_path, profile) == 0.0
    folder = analyses_data.slick_folder(tmp_path, profile)
    folder.mkdir(parents=True)
    asked = load_relation("P17", "train")[:12] + load_relation("P17", "train")[40:45]  # 5 beyond the profile's 30
    lines = [json.dumps({"question": f.question, "relation": "P17", "category": "Unknown"}) for f in asked]
    (folder / "P17.train.jsonl").write_text("\n".join(lines) + '\n{"question": "cut', encoding="utf-8")
    (folder / "P36.dev.jsonl").write_text(
        json.dumps({"question": load_relation("P36", "dev")[3].question, "relation": "P36"}) + "\n", encoding="utf-8")
    wanted = sum(len({f.question for f in load_relation(r, s)[:n]})
                 for r in ("P17", "P36") for s, n in (("train", 30), ("dev", 20)))
    assert analyses_data.slick_asked_share(tmp_path, profile) == pytest.approx(13 / wanted)
    splits = analyses_data.splits_folder(tmp_path, profile)
    splits.mkdir(parents=True)
    (splits / "manifest.json").write_text("{}")
    assert analyses_data.slick_asked_share(tmp_path, profile) == 1.0


def test_splits_disjoint_sized_and_filtered():
    train = {"P1": slick_table("P1", "train", {"HighlyKnown": 50, "Unknown": 60, "MaybeKnown": 5}),
             "P2": slick_table("P2", "train", {"HighlyKnown": 50, "Unknown": 60})}
    dev = {"P1": slick_table("P1", "dev", {"HighlyKnown": 10, "MaybeKnown": 8, "WeaklyKnown": 4, "Unknown": 8}),
           "P2": slick_table("P2", "dev", {"HighlyKnown": 2, "Unknown": 18})}  # 10% HighlyKnown: dropped
    splits = make_splits(train, dev, SplitConfig(known_size=30, unknown_size=40, held_size=5, seed=1))
    assert {k: len(v) for k, v in splits.items()} == {
        "known": 30, "unknown": 40, "held": 5, "maybe_known": 8, "weakly_known": 4, "train": 70}
    names = ["known", "unknown", "held", "maybe_known", "weakly_known"]
    qs = {n: {r["question"] for r in splits[n]} for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not qs[a] & qs[b], (a, b)
    assert all(r["relation"] == "P1" for n in names for r in splits[n])
    assert {r["category"] for r in splits["known"]} == {"HighlyKnown"}
    assert {r["category"] for r in splits["unknown"]} == {"Unknown"}
    only = make_splits(train, dev, SplitConfig(known_size=30, unknown_size=40, held_size=5, seed=1, mix="only-known"))
    assert len(only["train"]) == 30 and only["known"] == splits["known"]
    with pytest.raises(ProbekitError, match="D_Unk: asked for 100 questions but only 60"):
        make_splits(train, dev, SplitConfig(known_size=30, unknown_size=100))


# --- synthetic facts --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smol_tokenizer():
    from probekit.models import embedded_model_dir, load_tokenizer

    return load_tokenizer(embedded_model_dir())


def test_synthetic_semantic_keys(smol_tokenizer):
    facts = synthetic_facts(smol_tokenizer, 3000, "semantic", "real", seed=7).to_list()
    keys = [f["subject"] for f in facts]
    places, countries, pairs = real_p17()
    assert len(set(keys)) == len(keys) == 3000
    assert not {k.casefold() for k in keys} & {p.casefold() for p in places}
    assert facts == synthetic_facts(smol_tokenizer, 3000, "semantic", "real", seed=7).to_list()
    assert facts != synthetic_facts(smol_tokenizer, 3000, "semantic", "real", seed=8).to_list()
    counts = Counter(f["answers"][0] for f in facts)
    assert set(counts) <= set(countries) and max(counts.values()) - min(counts.values()) <= 2
    assert not any((f["subject"].casefold(), f["answers"][0].casefold()) in pairs for f in facts)
    # every key is made of real place-name tokens: it re-tokenizes into pool tokens it starts and ends with
    pools = token_pools(smol_tokenizer, places)
    texts = lambda ids: {smol_tokenizer.decode([i]).strip() for i in ids.tolist()}  # noqa: E731
    firsts, lasts = texts(pools.first), texts(pools.last)
    for key in keys[:300]:
        assert any(key.startswith(t) for t in firsts if t) and any(key.endswith(t) for t in lasts if t), key


def test_synthetic_uuid_keys_and_values(smol_tokenizer):
    facts = synthetic_facts(smol_tokenizer, 2000, "uuid", "uuid", seed=0).to_list()
    keys = [f["subject"] for f in facts]
    assert len(set(keys)) == 2000 and all(k.startswith("Loc_") and len(k) == 12 for k in keys)
    assert all(f["answers"][0].startswith("Country_") for f in facts)
    places = {p.casefold() for p in real_p17()[0]}
    assert not {k.casefold() for k in keys} & places
    # UUID keys are hex: none contains a real multi-letter place name
    assert not any(p in k.casefold() for k in keys[:200] for p in places if len(p) >= 4)
    semantic_values = synthetic_facts(smol_tokenizer, 100, "semantic", "semantic", seed=0)
    assert not {a for [a] in semantic_values["answers"]} & set(real_p17()[1])


# sha256 of the JSONL that the record-by-record implementation (one dict per fact, probekit.io.write_jsonl) wrote
BEFORE_COLUMNS = {
    ("semantic", "real", 7, 500): "809ab5c136321ccf08d11f0f10446349917015edf10fa0d5cfd8e5cf0ff4deec",
    ("uuid", "uuid", 0, 500): "92c8cf05066a360c2fe0d26ab16c3b4469bb9d80acd703cf8489181126cfea16",
    ("semantic", "semantic", 3, 300): "605e968a4a3a27b474b236a15d46385eb71b98f9cf7cb7342367f88242153c6b",
    ("uuid", "real", 1, 400): "8f9613367feefbd2250bf4cdf9838984a539687874b5514fe74309042482038e",
    ("uuid", "semantic", 2, 50): "a28c10096500d6951dc33c240c5fe39e515a3f827a79f2a51d56b3ddb8fccec9",
}


@pytest.mark.parametrize("key_type,value_type,seed,n", list(BEFORE_COLUMNS))
def test_synthetic_facts_are_the_same_bytes_as_before(smol_tokenizer, tmp_path, key_type, value_type, seed, n):
    facts = synthetic_facts(smol_tokenizer, n, key_type, value_type, seed)
    digest = write_jsonl_columns(tmp_path / "s.jsonl", facts)
    assert digest == BEFORE_COLUMNS[key_type, value_type, seed, n]
    assert write_jsonl(tmp_path / "r.jsonl", facts.to_list()) == digest  # the record writer agrees


def test_jsonl_columns_match_write_jsonl(tmp_path):
    rows = [{"q": 'a "quoted"\\ line\nnext', "answers": ["Zürich", "東京", "\u2028"], "k": "x"},
            {"q": "tab\there", "answers": [], "k": "x"}, {"q": "", "answers": ["é"], "k": "y"}]
    table = datasets.Dataset.from_list(rows)
    assert write_jsonl_columns(tmp_path / "c.jsonl", table) == write_jsonl(tmp_path / "r.jsonl", rows)
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "r.jsonl").read_bytes()
    assert write_jsonl_columns(tmp_path / "s.jsonl", table.select([2, 0])) == write_jsonl(tmp_path / "t.jsonl",
                                                                                             [rows[2], rows[0]])
    with pytest.raises(ProbekitError, match="column 'n' is int64"):
        write_jsonl_columns(tmp_path / "n.jsonl", datasets.Dataset.from_list([{"n": 1}]))


def test_decode_batch_is_batch_decode(smol_tokenizer):
    seqs = torch.randint(0, len(smol_tokenizer), (2000, 3), generator=torch.Generator().manual_seed(0)).tolist()
    seqs += [s[:2] for s in seqs[:500]] + [[]]
    assert decode_batch(smol_tokenizer, seqs) == smol_tokenizer.batch_decode(seqs)
    tok = byte_bpe_tokenizer()
    assert decode_batch(tok, seqs[:100]) == tok.batch_decode(seqs[:100])
