"""Uncertainty on every number: intervals over seeds and facts against plain loops, the AUC's interval, the tables
and figures that carry them (lo / hi, `value [lo, hi]`, bands), comparisons, --seeds plans and the dry run's power."""
import importlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from probekit import stats
from training.config import RunConfig

from .support.study_data import make_data


def ref_nested_forgetting(values, resamples, seed):
    """ΔD_Held averaged over seeds, by a plain loop: resample seeds, then facts (one fact resample for every seed)."""
    rng = np.random.default_rng(seed)
    n_seeds, epochs, n = values.shape
    out = []
    for _ in range(resamples):
        seeds, facts = rng.integers(0, n_seeds, n_seeds), rng.integers(0, n, n)
        per_seed = []
        for s in seeds:
            acc = [sum(values[s, e, i] for i in facts) / n for e in range(epochs)]
            per_seed.append(100 * (max(acc) - acc[-1]))
        out.append(sum(per_seed) / n_seeds)
    return np.percentile(out, 2.5), np.percentile(out, 97.5)


def test_seeds_interval_matches_plain_loop():
    rng = np.random.default_rng(7)
    rates = np.array([[[0.8], [0.7], [0.6]], [[0.8], [0.75], [0.7]], [[0.8], [0.6], [0.55]]])  # [seeds, epochs, 1]
    values = rng.random((3, 3, 60)) < rates
    est = stats.seeds_curve_ci(values, "forgetting", n_resamples=10000)
    acc = values.mean(2)
    assert est.value == pytest.approx(np.mean(100 * (acc.max(1) - acc[:, -1])))
    lo, hi = ref_nested_forgetting(values, 4000, 1)
    step = 100 / 60  # Monte Carlo noise of two independent runs stays within one fact
    assert abs(est.lo - lo) <= step and abs(est.hi - hi) <= step


def test_one_seed_is_exactly_the_fact_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.random((4, 50)) < 0.6
    for got, want in [(stats.seeds_curve_ci(a[None]), stats.accuracy_ci(a)),
                      (stats.seeds_curve_ci(a[None], "forgetting"), stats.forgetting_ci(a))]:
        assert np.array_equal(got.value, want.value) and np.array_equal(got.lo, want.lo)
        assert np.array_equal(got.hi, want.hi)


def test_large_inputs_go_in_batches_of_resamples():
    """Above MAX_ELEMENTS values per call the resamples go in batches: other draws, the same interval within noise."""
    rng = np.random.default_rng(4)
    values = rng.random((2, 3, 400)) < 0.5
    whole, batched = stats.seeds_curve_ci(values, "last"), stats.seeds_curve_ci(values, "last", batch=97)
    assert stats.batch_for(3 * 400) is None and stats.batch_for(21 * 8000) == stats.MAX_ELEMENTS // (21 * 8000)
    assert whole.value == batched.value and abs(whole.lo - batched.lo) < 0.02 and abs(whole.hi - batched.hi) < 0.02


def test_seeds_are_resampled():
    """Two seeds that disagree on every fact: the interval spans both, though each seed alone is certain."""
    values = np.stack([np.ones((2, 30), bool), np.stack([np.ones(30, bool), np.zeros(30, bool)])])
    est = stats.seeds_curve_ci(values, "last")
    assert est.value == 0.5 and est.lo == 0.0 and est.hi == 1.0
    assert stats.seeds_curve_ci(values[:1], "last").lo == 1.0


def test_auc_interval():
    from probekit.interference import permutation_auc

    rng = np.random.default_rng(2)
    pos, neg = rng.normal(1, 1, 20), rng.normal(0, 1, 60)
    est = stats.auc_ci(pos, neg)
    labels = np.r_[np.ones(20, bool), np.zeros(60, bool)]
    assert est.value == pytest.approx(permutation_auc(np.r_[pos, neg], labels, 10).auc)
    assert 0.5 < est.lo < est.value < est.hi <= 1
    assert np.isnan(stats.auc_ci([], neg).value) and np.isnan(stats.auc_ci([1.0], neg).lo)


def _trained(label, per_seed, tmp_path):
    """A Trained run from per-seed lists of per-epoch held-out outcome strings ("0110")."""
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir

    reps = [Trained(Run(label, RunConfig(seed=s)), RunDir(tmp_path / f"{label}-{s}"),
                    [{"epoch": e, "accuracy": {"held": bits.count("1") / len(bits)}, "correct": {"held": bits}}
                     for e, bits in enumerate(epochs)]) for s, epochs in enumerate(per_seed)]
    reps[0].others = reps[1:]
    return reps[0]


def test_accuracy_tables_carry_intervals_over_seeds(tmp_path):
    from analyses.epoch_tables import run_accuracy, run_interval

    one = _trained("SFT", [["1111", "1100"]], tmp_path)
    df = run_accuracy(one)
    assert df["accuracy"].tolist() == [1.0, 0.5] and list(df.columns) == ["run", "epoch", "split", "accuracy", "lo",
                                                                         "hi"]
    want = stats.accuracy_ci(np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool))
    assert df["lo"].tolist() == want.lo.tolist() and df["hi"].tolist() == want.hi.tolist()
    two = _trained("SFT", [["1111", "1100"], ["1111", "1110"]], tmp_path)
    df = run_accuracy(two)
    assert df["accuracy"].tolist() == [1.0, 0.625]
    assert (df["lo"] <= df["accuracy"]).all() and (df["accuracy"] <= df["hi"]).all()
    f = run_interval(two, "forgetting")
    assert f.value == pytest.approx(37.5) and f.lo <= f.value <= f.hi


def test_comparison_lines_per_seed_and_verdicts(tmp_path):
    from analyses.comparisons import difference_line, forgetting_lines

    a = _trained("SFT", [["1111", "0011"], ["1111", "0111"]], tmp_path)
    b = _trained("Self-distillation", [["1111", "1111"], ["1111", "1111"]], tmp_path)
    lines = forgetting_lines([a, b])
    assert "over 4 facts × 2 seeds" in lines[0]
    assert lines[2].startswith("Self-distillation − SFT: ΔD_Held -37.5 pp [")
    assert "over 4 facts × 2 seeds (per seed -50.0 / -25.0), pooled p 0.363, seed heterogeneity p 0.391: " \
           "undecided (80% power only for differences ≥ ≈" in lines[2]
    wide = [["1" * 200, "1" * 100 + "0" * 100]]
    line = difference_line(_trained("A", wide, tmp_path), _trained("B", [["1" * 200] * 2], tmp_path), "last")
    assert line.startswith("A − B: D_Held at the last epoch -50.0 pp [") and line.endswith(": decided")
    # 4 of 38 facts lost: the percentile interval excludes 0, McNemar (p = 0.125) does not: undecided
    few = difference_line(_trained("A", [["1" * 38, "0" * 4 + "1" * 34]], tmp_path),
                          _trained("B", [["1" * 38] * 2], tmp_path), "last")
    assert "[-21.1, -2.6]" in few and "McNemar p 0.125: undecided: the interval excludes 0" in few


def test_a_nan_p_decides_nothing():
    from analyses.comparisons import Paired, p_text, verdict
    from probekit.stats import Estimate

    nan = float("nan")
    undecided = Paired("a", "b", "ΔD_Held", Estimate(5.0, 2.0, 8.0), nan, 600)
    assert not undecided.decided and verdict(undecided).startswith("undecided")
    assert Paired("a", "b", "ΔD_Held", Estimate(5.0, 2.0, 8.0), 0.01, 600).decided
    assert p_text(nan) == "n/a" and p_text(0.01) == "0.010" and p_text(3e-6) == "3e-6"
    assert p_text(0.049828) == "0.0498" and p_text(0.0502) == "0.0502" and p_text(0.0506) == "0.051"


def test_forgetting_is_tested_on_the_drops_not_on_the_last_epoch(tmp_path):
    """Two runs that keep what they knew (no drop) but knew different amounts: their last epochs differ (McNemar
    p 0.002) and their ΔD_Held do not (sign-flip p 1): a ΔD_Held comparison reads the drops."""
    from analyses.comparisons import difference_line

    keeps_all = _trained("A", [["1" * 20, "1" * 20]], tmp_path)
    keeps_half = _trained("B", [["0" * 10 + "1" * 10] * 2], tmp_path)
    drop = difference_line(keeps_all, keeps_half)
    assert "ΔD_Held +0.0 pp [+0.0, +0.0], sign-flip p 1.000: undecided" in drop
    assert "McNemar p 0.002: decided" in difference_line(keeps_all, keeps_half, "last")
    # drops that differ fact by fact: A loses facts 0–5; B (peak at epoch 0, the first of two level epochs) gains
    # fact 0 and loses fact 7, so d = (2, 1, 1, 1, 1, 1, 0, −1): of the 2^7 sign flips, 14 reach |sum| ≥ 6
    loses = _trained("A", [["11111111", "00000011"]], tmp_path)
    trades = _trained("B", [["01111111", "11111110"]], tmp_path)
    line = difference_line(loses, trades)
    assert "ΔD_Held +75.0 pp [" in line and "sign-flip p 0.109:" in line, line
    assert stats.sign_flip_p([2, 1, 1, 1, 1, 1, 0, -1]) == pytest.approx(14 / 128)


def test_markdown_cells_are_value_and_interval():
    from analyses.outputs import interval_columns, markdown

    row = {"run": "SFT", **interval_columns("D_Held", stats.Estimate(0.5, 0.25, 0.75)),
           **interval_columns("D_Unk", stats.Estimate(None, np.nan, np.nan))}
    text = markdown(pd.DataFrame([row]))
    assert "0.500 [0.250, 0.750]" in text and "—" in text and " lo" not in text


def test_figures_draw_bands():
    import matplotlib.pyplot as plt

    from analyses.plots import lines, run_panels, split_panels, style

    df = pd.DataFrame({"run": ["SFT"] * 3, "epoch": [0, 1, 2], "split": "held", "accuracy": [0.2, 0.5, 0.4],
                       "lo": [0.1, 0.3, 0.2], "hi": [0.3, 0.7, 0.6]})
    with style():
        for fig in (run_panels(df, ["SFT"], ["held"]), split_panels(df, ["held"])):
            assert any(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
            plt.close(fig)
        fig, ax = plt.subplots()
        lines(ax, df.drop(columns=["lo", "hi"]), "epoch", "accuracy", "run")
        assert not ax.collections  # no interval, no band
        plt.close(fig)


def test_dry_run_prints_the_detectable_difference(capsys):
    from analyses import fig2

    fig2.main(["--profile", "micro", "--held-size", "600", "--eval-limit", "1000", "--dry-run"])
    out = capsys.readouterr().out
    assert "D_Held of at most 600 facts" in out and "detected at 80% power is 3.8 pp" in out
    fig2.main(["--profile", "paper", "--dry-run"])
    assert "an estimate of" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["fig2", "fig3", "table1"])
def test_seeds_plan_every_run_per_seed_and_share_them(name, capsys):
    """--seeds 0 1: each run once per training seed (data unchanged); seed 0's run is the single-seed run, and
    analyses that need the same run at a seed share it."""
    from analyses.data import DryRunData
    from analyses.runs import seeded, training_seeds

    module = importlib.import_module(f"analyses.{name}")
    ctx = module.ANALYSIS.context(["--profile", "micro", "--seeds", "0", "1"])
    single = module.ANALYSIS.context(["--profile", "micro"])
    assert training_seeds(ctx.profile) == [0, 1] and training_seeds(single.profile) == [0]
    groups = seeded(module.ANALYSIS.plan(ctx, DryRunData()), training_seeds(ctx.profile))
    plain = module.ANALYSIS.plan(single, DryRunData())
    assert [g[0].key() for g in groups] == [r.key() for r in plain]  # seed 0: the runs a single seed trains
    assert all(g[1].config == replace(g[0].config, seed=1) for g in groups)
    fig2 = importlib.import_module("analyses.fig2")
    shared = {r.key() for g in seeded(fig2.ANALYSIS.plan(ctx, DryRunData()), [0, 1]) for r in g}
    if name == "fig3":
        assert shared <= {r.key() for g in groups for r in g}  # SFT and Only Known at both seeds
    module.main(["--profile", "micro", "--seeds", "0", "1", "--dry-run"])
    out = capsys.readouterr().out
    assert "[seed 0]" in out and "[seed 1]" in out and "80% power" in out


def test_drift_items_reproduce_the_recorded_metrics(tmp_path):
    """The per-fact / per-pair values recomputed from the probe's cached states average to what the trainer
    recorded, for all six metrics, so each gets a band."""
    from analyses.drift_items import drift_frame, item_values
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir
    from training.trainer import Trainer

    config = dict(make_data(tmp_path), lr=3e-3, batch_size=4, epochs=1, eval_batch_size=8, probe=True)
    records = Trainer(RunConfig(out=str(tmp_path / "run"), **config)).run()
    t = Trained(Run("SFT", RunConfig(**config)), RunDir(tmp_path / "run"), records)
    items = item_values(t)
    assert set(items) == {"RD", "NS", "MTD", "Rank-rho", "NTR", "JSD"}
    for metric, values in items.items():
        assert values.shape[0] == len(records)
        assert np.nanmean(values[-1]) == pytest.approx(records[-1]["probe"][metric], rel=1e-6, abs=1e-12)
    df = drift_frame(t)
    assert df[["lo", "hi"]].notna().all().all()
    last = df[df["epoch"] == 1]
    assert (last["lo"] <= last["value"] + 1e-12).all() and (last["value"] <= last["hi"] + 1e-12).all()


def test_drift_items_survive_archiving_without_the_states(tmp_path):
    """A run archived without its cached states (results/ keeps no probes/states/) keeps its per-item values, and
    a stale item cache (other probed epochs) is not read as this run's."""
    import shutil

    from analyses.drift_items import item_values
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir
    from training.trainer import Trainer

    config = dict(make_data(tmp_path), lr=3e-3, batch_size=4, epochs=2, eval_batch_size=8, probe=True)
    records = Trainer(RunConfig(out=str(tmp_path / "run"), **config)).run()
    t = Trained(Run("SFT", RunConfig(**config)), RunDir(tmp_path / "run"), records)
    before = item_values(t)
    assert t.dir.probe_items.is_file() and set(before) == {"RD", "NS", "MTD", "Rank-rho", "NTR", "JSD"}
    shutil.rmtree(t.dir.probes / "states")
    after = item_values(t)
    assert set(after) == set(before) and all(np.array_equal(after[m], before[m], equal_nan=True) for m in before)
    fewer = Trained(t.run, t.dir, records[:-1])  # the cache was made for epochs 0-2, not 0-1
    assert item_values(fewer) == {}


def test_drift_difference_is_paired_by_fact_with_a_wilcoxon_p(tmp_path):
    """RD of one run against another on the same held-out facts: the mean difference of the per-fact drifts
    (1 − cos of each fact's state at θ0 and at the last checkpoint, a plain loop), its interval, and scipy's
    Wilcoxon signed-rank p on those per-fact values; runs on other facts are not compared."""
    import torch
    from scipy.stats import wilcoxon

    from analyses.drift_items import drift_difference_lines
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir
    from training.trainer import Trainer

    config = dict(make_data(tmp_path), batch_size=4, epochs=1, eval_batch_size=8, probe=True)
    runs = {}
    for label, lr in (("fast", 3e-3), ("slow", 3e-4)):
        records = Trainer(RunConfig(out=str(tmp_path / label), lr=lr, **config)).run()
        runs[label] = Trained(Run(label, RunConfig(**config, lr=lr)), RunDir(tmp_path / label), records)

    def rd(t):
        base, last = t.dir.probe_states(None)["held_states"], t.dir.probe_states(1)["held_states"]
        return np.array([1 - torch.nn.functional.cosine_similarity(b, s, dim=0).item() for b, s in zip(base, last)])

    x, y = rd(runs["fast"]), rd(runs["slow"])
    [line] = drift_difference_lines(runs["fast"], runs["slow"], ["RD"])
    assert line.startswith(f"fast − slow: RD at the last epoch {np.mean(x - y):+.4f} [")
    assert f"Wilcoxon signed-rank p {wilcoxon(x, y).pvalue:.3f}: undecided" in line
    other = Trained(Run("other", RunConfig(**{**config, "held": config["known"]})), runs["slow"].dir,
                    runs["slow"].records)
    assert drift_difference_lines(runs["fast"], other, ["RD"]) == []


def test_frontier_compares_the_drop_and_what_is_kept_at_equal_acquisition(tmp_path):
    """Where both runs first reach 50% of D_Unk (A at epoch 1, B at epoch 2), the lines compare the drop from each
    one's peak (level here: no run drops) and what each keeps there (A 20 of 20, B 10 of 20: decided)."""
    from analyses.frontier import at_threshold, comparison_lines
    from analyses.runs import Run, Trained
    from training.run_dir import RunDir

    def run(label, held, unknown):
        return Trained(Run(label), RunDir(tmp_path / label),
                       [{"epoch": e, "correct": {"held": h, "unknown": u}} for e, (h, u) in enumerate(zip(held,
                                                                                                         unknown))])
    a = run("A", ["1" * 20] * 3, ["0000", "1100", "1111"])
    b = run("B", ["0" * 10 + "1" * 10] * 3, ["0000", "1000", "1100"])
    drop, kept = comparison_lines([a, b], 0.5)
    assert drop.startswith("D_Unk 50%: B (epoch 2) − A (epoch 1): ΔD_Held +0.0 pp") and "sign-flip p 1.000" in drop
    assert "D_Held there -50.0 pp [" in kept and kept.endswith("McNemar p 0.002: decided")
    rows = at_threshold([a, b], 0.5)
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["D_Held"].startswith("0.500 [")


def test_power_line_reads_the_discordance_of_finished_runs():
    from analyses.comparisons import observed_discordance, power_line
    from analyses.profiles import PROFILES

    def records(bits):
        return [{"epoch": 5, "correct": {"held": bits}}]

    finished = [records("1" * 80 + "0" * 20), records("1" * 60 + "0" * 40), records("1" * 100)]
    assert observed_discordance(finished) == (0.2, 3, 100)  # shares 0.2, 0.2 and 0.4
    assert observed_discordance(finished[:1]) is None
    line = power_line(PROFILES["micro"], finished=finished)
    assert "D_Held of 100 facts evaluated" in line and "20% of facts discordant" in line
    assert "an assumed 10%" in power_line(PROFILES["micro"])
