"""The study's claims as verdicts: each comparison's rule against a plain reading of it, the claim's combination, and
the table's text cells."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyses.claims import claim_verdict, comparison_verdict, tost_p
from analyses.comparisons import Paired
from analyses.outputs import markdown
from probekit.pooled import pooled_mean
from probekit.stats import Estimate
from training.config import RunConfig

finite = st.floats(-50, 50, allow_nan=False)
ps = st.floats(0, 1)


def paired(lo: float, hi: float, p: float) -> Paired:
    """One seed's comparison: a bootstrap interval and the exact p."""
    return Paired("a", "b", "ΔD_Held", Estimate((lo + hi) / 2, lo, hi), p, 100)


def pooled_paired(mean: float, spread: float = 0.3, seeds: int = 3, facts: int = 400) -> Paired:
    """Several seeds' comparison around `mean` (per-fact values with a little fact and seed noise)."""
    rng = np.random.default_rng(0)
    d = mean + spread * (rng.normal(size=(seeds, facts)) + 0.2 * rng.normal(size=(seeds, 1)))
    d -= d.mean() - mean
    r = pooled_mean(d)
    return Paired("a", "b", "ΔD_Held", Estimate(r.value, r.lo, r.hi), r.p, facts, test="pooled", pooled=r)


def ref_verdict(lo, hi, p, relation, margin, one_seed=True):
    """The rule as the docstring words it, case by case."""
    low, high = (0, float("inf")) if relation == ">" else (-margin, margin)
    if low < lo and hi < high:
        verdict = "supported"
    elif hi < low or lo > high:
        verdict = "contradicted"
    else:
        return "undecided"
    if relation == ">" and one_seed and not p < 0.05:
        return "undecided"
    return verdict


@given(finite, finite, ps, st.sampled_from([">", "≈"]), st.floats(0, 10))
def test_comparison_verdict_follows_the_rule(a, b, p, relation, margin):
    lo, hi = min(a, b), max(a, b)
    assert comparison_verdict(paired(lo, hi, p), relation, margin) == ref_verdict(lo, hi, p, relation, margin)


@given(finite, finite, ps, st.floats(0, 10))
def test_swapping_the_runs_mirrors_the_verdict(a, b, p, margin):
    """b − a: "a > b" supported ⇔ "b > a" contradicted; "a ≈ b" is symmetric."""
    lo, hi = min(a, b), max(a, b)
    forward, backward = paired(lo, hi, p), paired(-hi, -lo, p)
    swap = {"supported": "contradicted", "contradicted": "supported", "undecided": "undecided"}
    assert comparison_verdict(backward, ">", 0) == swap[comparison_verdict(forward, ">", 0)]
    assert comparison_verdict(backward, "≈", margin) == comparison_verdict(forward, "≈", margin)


def test_one_seed_needs_its_exact_p_at_zero_but_not_at_a_margin():
    assert comparison_verdict(paired(2, 9, 0.01), ">", 0) == "supported"
    assert comparison_verdict(paired(2, 9, 0.2), ">", 0) == "undecided"
    assert comparison_verdict(paired(-1, 2, 0.9), "≈", 3) == "supported"
    assert comparison_verdict(paired(-1, 4, 0.9), "≈", 3) == "undecided"
    assert comparison_verdict(paired(4, 9, 0.9), "≈", 3) == "contradicted"  # the margin's side: no p against 0


@pytest.mark.parametrize("mean, expected", [(0.0, "supported"), (2.0, "supported"), (3.0, "undecided"),
                                            (-3.0, "undecided"), (4.0, "contradicted"), (-6.0, "contradicted")])
def test_equivalence_is_tost_at_the_margin(mean, expected):
    """Pooled seeds around a known mean against ± 3: inside, at, and outside the margin; TOST's p agrees."""
    c = pooled_paired(mean)
    assert comparison_verdict(c, "≈", 3.0) == expected, c.diff
    assert (tost_p(c, 3.0) < 0.025) == (expected == "supported")
    shown_outside = min(c.pooled.p_above(3.0), c.pooled.p_below(-3.0)) < 0.025
    assert shown_outside == (expected == "contradicted")


@pytest.mark.parametrize("mean, expected", [(1.0, "supported"), (0.0, "undecided"), (-1.0, "contradicted")])
def test_greater_is_the_same_rule_at_zero(mean, expected):
    c = pooled_paired(mean)
    assert comparison_verdict(c, ">", 0.0) == expected
    assert (c.p < 0.05) == (expected != "undecided")


def test_claim_verdict_combines_its_comparisons():
    assert claim_verdict(["supported", "supported"]) == "supported"
    assert claim_verdict(["supported", "undecided"]) == "undecided"
    assert claim_verdict(["supported", "contradicted"]) == "contradicted"
    assert claim_verdict(["undecided", "contradicted"]) == "contradicted"


def test_markdown_keeps_text_cells_as_written():
    table = markdown(pd.DataFrame({"x": [0.12345], "p": ["7.3e-12"], "n": [38]}))
    assert "7.3e-12" in table and "0.123" in table and "0.000" not in table


def _run(label, per_epoch, held, seeds=1):
    """A Trained run whose held-out outcomes per epoch are `per_epoch` ("0110" strings), at `seeds` seeds."""
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir

    reps = [Trained(Run(label, RunConfig(seed=s, held=str(held))), RunDir(held.parent / f"{label}-{s}"),
                    [{"epoch": e, "accuracy": {"held": bits.count("1") / len(bits)}, "correct": {"held": bits}}
                     for e, bits in enumerate(per_epoch)]) for s in range(seeds)]
    reps[0].others = reps[1:]
    return reps[0]


def test_claims_frame_from_runs(tmp_path):
    """SFT loses 60 of 300 facts, self-distillation and Only Known none: the first two claims are supported; fig5's
    runs have no probe states, so their RD comparisons are not paired and their claims stay undecided."""
    import json

    from analyses.claims import FIG5, claims_frame

    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"question": "Where is Paris?", "answers": ["France"], "entity_span": [9, 14]}) + "\n")
    kept, lost = ["1" * 300] * 3, ["1" * 300, "1" * 300, "0" * 60 + "1" * 240]
    runs = [_run("SFT", lost, held), _run("Self-distillation", kept, held), _run("Only Known", kept, held),
            *[_run(label, lost if label == FIG5[0] else kept, held) for label in FIG5]]
    df = claims_frame(runs, 3.0, 0.005)
    verdicts = dict(zip(df["claim"], df["claim verdict"]))
    assert verdicts["SFT forgets more than self-distillation"] == "supported"
    assert verdicts["self-distillation ≈ Only Known"] == "supported"
    assert verdicts["semantic keys drift and forget more than UUID keys"] == "undecided"  # its RD half is missing
    first = df.iloc[0]
    assert first["difference"] == pytest.approx(20.0) and first["difference lo"] > 0 and first["n"] == 300
    assert df["comparison"].str.startswith("not paired").sum() == 3


def test_plot_rows_name_their_statistic():
    from analyses.claims import row_label

    assert row_label("SFT − Self-distillation: ΔD_Held > 0") == "SFT − Self-distillation, ΔD_Held"
    assert (row_label("SFT − Self-distillation: D_Held lost by the last epoch > 0")
            == "SFT − Self-distillation, D_Held lost by the last epoch")
    assert (row_label("Self-distillation, semantic keys − SFT, UUID keys: RD at the last epoch ≈ 0 within ± 0.005")
            == "Self-distillation, semantic keys − SFT, UUID keys, RD at the last epoch")
