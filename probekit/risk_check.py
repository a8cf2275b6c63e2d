"""A risk report scored against what a probed series actually lost: a user checks the prediction on their own run.

``check(report, probe_dir)`` joins the report (``probekit risk``'s table) with the series' per-fact outcomes
(``probekit probe``'s ``outcomes.parquet`` and ``held_forgetting.json``) by each fact's position in the held file,
checking that question and answer agree. The predictor's
probability is conditional on the fact being answered at the peak (the study's forgetting: answered at the peak,
not at the last checkpoint), so the facts scored are those the peak answered; among them it reports the AUC of
the probability for the facts lost with its 95% interval, and the expected number lost (Σ p, with the central
interval of the count) beside the number observed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ProbekitError
from .stats import auc_ci


def held_outcomes(probe_dir: str | Path) -> pd.DataFrame:
    """Per held fact of a probed series: question, answer, at_peak (answered at the peak), lost (answered at the
    peak, not at the last model)."""
    probe_dir = Path(probe_dir)
    files = probe_dir / "outcomes.parquet", probe_dir / "held_forgetting.json"
    if not all(f.is_file() for f in files):
        raise ProbekitError(f"{probe_dir} holds no per-fact outcomes (outcomes.parquet, held_forgetting.json): probe "
                            "the series with probekit probe, without --no-accuracy")
    summary = json.loads(files[1].read_text())
    held = pd.read_parquet(files[0]).query("set == 'held'")
    wide = held.pivot_table(index=["fact", "question", "answer"], columns="name", values="correct", sort=False)
    at_peak, last = wide[summary["peak"]] == 1, wide[summary["last"]] == 1
    return pd.DataFrame({"at_peak": at_peak, "lost": at_peak & ~last}).reset_index()


def check(report: pd.DataFrame, probe_dir: str | Path) -> dict:
    """AUC (with interval) and expected vs observed number lost of `report` against the series in `probe_dir`."""
    from .risk import expected_lost

    truth = held_outcomes(probe_dir)
    joined = report.merge(truth, on="fact", how="inner", suffixes=("", "_probed"))
    same = (joined["question"] == joined["question_probed"]) & (joined["answer"] == joined["answer_probed"])
    if len(joined) != len(report) or len(truth) != len(report) or not same.all():
        raise ProbekitError(f"the report's {len(report)} held facts are not the {len(truth)} held facts {probe_dir} "
                            "was probed with, in the same order: give the same --held file to both")
    scored = joined[joined["at_peak"]]
    p, lost = scored["probability"].to_numpy(float), scored["lost"].to_numpy(bool)
    auc = auc_ci(p[lost], p[~lost])
    expected, lo, hi = expected_lost(p)
    return {"facts": int(len(joined)), "answered_at_peak": int(len(scored)), "observed_lost": int(lost.sum()),
            "expected_lost": [expected, lo, hi], "auc": [auc.value, auc.lo, auc.hi],
            "validated": bool(np.isfinite(auc.lo) and auc.lo > 0.5)}


def check_lines(result: dict) -> list[str]:
    """The check for the command line."""
    e, lo, hi = result["expected_lost"]
    auc, alo, ahi = result["auc"]
    verdict = ("the ranking beats chance on this run" if result["validated"] else
               "the interval holds 0.5: this run does not show the ranking beats chance")
    return [f"checked against the probed series: {result['answered_at_peak']} of {result['facts']} held facts "
            f"answered at the peak, {result['observed_lost']} lost; expected {e:.1f} (95% interval of the count "
            f"{lo}–{hi})", f"AUC {auc:.2f} [{alo:.2f}, {ahi:.2f}]: {verdict}"]
