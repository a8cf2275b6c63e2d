"""Table 4: forgetting is driven by the key, not the value — ΔD_Held for key type × value type (Appendix E).

SFT on D_Known ∪ n synthetic P17 facts for semantic / UUID keys crossed with real / semantic / UUID country values
(the study: n = 10^6; the quick profile: 64, shared with fig4's runs). Every number as `value [lo, hi]` (95%
intervals); for each value type, UUID against semantic keys as a paired ΔD_Held difference with its exact sign-flip p.

    python -m analyses.table4 [--profile quick|paper|micro] [--synthetic N] ...
"""
from __future__ import annotations

import pandas as pd

from .comparisons import comparison_lines
from .epoch_tables import run_interval
from .outputs import interval_columns, save_csv, save_table
from .profiles import synthetic_profile
from .runs import Run, run_config
from .analysis import Analysis

NAME = "table4"
SYNTHETIC = {"paper": 1_000_000, "quick": 64}  # facts per cell; other profiles: their `synthetic`
CELLS = [(k, v) for k in ("semantic", "uuid") for v in ("real", "semantic", "uuid")]


def plan(ctx, data) -> list[Run]:
    profile = ctx.profile
    splits = data.splits(profile)
    synthetic = {(k, v): data.synthetic(profile, k, v) for k, v in CELLS}
    return [Run(f"SFT {k} keys {v} values", run_config(profile, splits, unknown=path, condition="sft"),
                train_size=profile.splits.known_size + profile.synthetic) for (k, v), path in synthetic.items()]


def render(ctx, trained) -> pd.DataFrame:
    runs = dict(zip(CELLS, trained))
    table = pd.DataFrame([{"key type": k, "value type": v,
                           **interval_columns("ΔD_Held (pp)", run_interval(t, "forgetting")),
                           **interval_columns("D_Unk", run_interval(t, "last", "unknown")),
                           **interval_columns("D_Known", run_interval(t, "last", "known"))}
                          for (k, v), t in runs.items()])
    save_csv(table, NAME, ctx.figures_dir)
    title = f"Key type × value type, {ctx.profile.synthetic} facts — {ctx.caption()}"
    notes = comparison_lines([(runs["uuid", v], runs["semantic", v]) for v in ("real", "semantic", "uuid")])
    save_table(table, NAME, ctx.figures_dir, title, notes)
    print(f"done in {ctx.seconds():.0f} s")
    return table


ANALYSIS = Analysis(NAME, __doc__, plan, render, setting=synthetic_profile,
                    defaults={preset: {"synthetic": n} for preset, n in SYNTHETIC.items()})
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
