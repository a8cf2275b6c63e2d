"""The dry run's wall-time estimate: each run's time is the arithmetic of the measured rates, parameter counts come
from safetensors headers, and SLiCK is costed per question, run and sample."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from analyses import wall_time
from analyses.profiles import PROFILES
from probekit.models import load_causal_lm
from training.config import RunConfig

from .support.study_data import make_data

ROOT = Path(__file__).resolve().parents[1]


def test_run_seconds_is_training_evaluation_and_probe_at_the_measured_rates():
    profile = PROFILES["standard"]
    rates = wall_time.CPU
    sft = RunConfig(model="embedded", condition="sft", epochs=5, probe=True)
    expected = (5 * 1000 * wall_time.TOKENS_PER_FACT / rates.train_tokens_per_s["sft"]
                + 5 * 2000 / rates.eval_facts_per_s + 6 * 2 * 300 / rates.probe_prompts_per_s)
    assert wall_time.run_seconds(sft, 1000, 2000, 300, profile) == pytest.approx(expected)
    # self-distillation: its snapshot epoch trains on D_Known at SFT's rate, the others at distillation's
    sd = replace(sft, condition="self_distill", variant="full", snapshot_epoch=1, probe=False)
    known = profile.splits.known_size
    expected = ((4 * 1000 / rates.train_tokens_per_s["full"] + 1 * known / rates.train_tokens_per_s["sft"])
                * wall_time.TOKENS_PER_FACT + 5 * 2000 / rates.eval_facts_per_s)
    assert wall_time.run_seconds(sd, 1000, 2000, 300, profile) == pytest.approx(expected)
    # a model twice the size takes twice as long
    gemma = replace(sft, model="gemma3-270m")
    ratio = wall_time.KNOWN_PARAMS["gemma3-270m"] / wall_time.REFERENCE_PARAMS
    assert wall_time.run_seconds(gemma, 1000, 2000, 300, profile) == pytest.approx(
        ratio * wall_time.run_seconds(sft, 1000, 2000, 300, profile))


def test_parameters_are_read_from_safetensors_headers(tmp_path):
    data = make_data(tmp_path)
    model = load_causal_lm(data["model"])
    stored = {id(p): p.numel() for p in model.parameters()}  # tied weights count once, as in the file
    assert wall_time.parameters(data["model"]) == pytest.approx(sum(stored.values()), rel=0.05)


def test_slick_is_costed_per_question_run_and_sample():
    profile = PROFILES["standard"]
    train = sum(min(len(wall_time.entityquestions.load_relation(r, "train")), 1500) for r in profile.relations)
    prompts = (train + 3530) * 4 * (1 + wall_time.NO_GREEDY_HIT_SHARE)
    assert wall_time.slick_seconds(profile) == pytest.approx(prompts / wall_time.CPU.slick_prompts_per_s["independent"])
    assert wall_time.slick_seconds(PROFILES["micro"]) == 0.0


def test_bf16_mixed_is_costed_at_the_bf16_rates():
    profile = PROFILES["standard"]
    sft = RunConfig(model="embedded", condition="sft", epochs=5, probe=True)
    bf16 = wall_time.CPU_BF16
    expected = (5 * 1000 * wall_time.TOKENS_PER_FACT / bf16.train_tokens_per_s["sft"]
                + 5 * 2000 / bf16.eval_facts_per_s + 6 * 2 * 300 / bf16.probe_prompts_per_s)
    mixed = replace(sft, precision="bf16-mixed")
    assert wall_time.run_seconds(mixed, 1000, 2000, 300, profile) == pytest.approx(expected)
    fp32 = wall_time.slick_seconds(profile)
    assert wall_time.slick_seconds(profile.replace(precision="bf16-mixed")) == pytest.approx(
        fp32 / wall_time.BF16_SPEEDUP["slick"])
    assert wall_time.rates("auto") is wall_time.rates(None) is wall_time.CPU  # auto is fp32 on the CPU


@pytest.mark.slow(seconds=25)
def test_the_bench_that_measures_the_bf16_rates_runs(tmp_path):
    out = tmp_path / "bf16.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "cpu_bf16_bench.py"), "--n", "4", "--runs", "1", "--out",
                    str(out)], check=True, cwd=ROOT, timeout=600, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})  # training is imported from the checkout
    result = json.loads(out.read_text())
    for side in ("slick", "evaluation", "probe"):
        assert result[side]["speedup"] > 0, side
    assert result["slick"]["greedy_answers_compared"] == 4 and result["evaluation"]["facts"] == 4
