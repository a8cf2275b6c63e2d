"""θ0's evaluation outcomes are computed once per base model, eval set and decoding setting, and shared by runs."""
import json

from probekit.entities import build_prompt, read_facts
from probekit.models import load_causal_lm, load_tokenizer
from training.base_outcomes import BaseOutcomes
from training.config import RunConfig
from training.evaluation import evaluate
from training.run_dir import RunDir
from training.trainer import Trainer

from .support.study_data import make_data


def base_record(data, out, **kw):
    return Trainer(RunConfig(**data, out=str(out), batch_size=4, epochs=0, eval_batch_size=8, **kw)).run()[0]


def test_a_second_run_reads_theta0_outcomes_the_first_computed(tmp_path):
    data = make_data(tmp_path)
    first = base_record(data, tmp_path / "runs" / "a")
    files = sorted((tmp_path / "runs" / ".base-outcomes").glob("*.json"))
    assert len(files) == 3  # known, unknown, held
    model, tok = load_causal_lm(data["model"]), load_tokenizer(data["model"])
    facts = {n: read_facts(data[n]) for n in ("known", "unknown", "held")}
    assert evaluate(model, tok, facts, None, 8)[1] == first["correct"]  # the cached bits are evaluation's
    # flip the held set's stored outcomes: a run of another seed on the same base must report the flipped bits
    cache = BaseOutcomes(tmp_path / "runs" / ".base-outcomes", data["model"], device_type="cpu", precision="fp32",
                         max_new_tokens=16)
    held = cache.path([build_prompt(f)[0] for f in facts["held"]], [list(f.answers) for f in facts["held"]])
    stored = json.loads(held.read_text())
    flipped = "".join("0" if b == "1" else "1" for b in stored["correct"])
    held.write_text(json.dumps({**stored, "correct": flipped}))
    second = base_record(data, tmp_path / "runs" / "b", seed=3)
    assert second["correct"]["held"] == flipped
    assert second["correct"]["known"] == first["correct"]["known"]
    # --cache-dir moves the cache: a run there evaluates θ0 itself
    third = base_record(data, tmp_path / "runs" / "c", cache_dir=str(tmp_path / "cache"))
    assert third["correct"] == first["correct"]
    assert len(list((tmp_path / "cache" / "base-outcomes").glob("*.json"))) == 3


def test_the_key_names_weights_prompts_answers_and_decoding(tmp_path):
    data = make_data(tmp_path)
    base = RunDir(tmp_path / "runs" / "a").outcome_cache(None)
    cache = BaseOutcomes(base, data["model"], device_type="cpu", precision="fp32", max_new_tokens=16)
    prompts, answers = ["Q: Where is Paris?\nA:"], [["France"]]
    key = cache.path(prompts, answers)
    assert cache.path(["Q: Where is Rome?\nA:"], answers) != key
    assert cache.path(prompts, [["Italy"]]) != key
    for other in (dict(device_type="cuda", precision="fp32"), dict(device_type="cpu", precision="bf16-mixed")):
        assert BaseOutcomes(base, data["model"], max_new_tokens=16, **other).path(prompts, answers) != key
    cache.write(prompts, answers, "1")
    assert cache.read(prompts, answers) == "1"
    weights = next((tmp_path / "base").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # rewritten weights: a new stamp, a new key
    rewritten = BaseOutcomes(base, data["model"], device_type="cpu", precision="fp32", max_new_tokens=16)
    assert rewritten.read(prompts, answers) is None
