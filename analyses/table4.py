"""Table 4: forgetting is driven by the key, not the value — ΔD_Held for key type × value type (Appendix E).

SFT on D_Known ∪ n synthetic P17 facts for semantic / UUID keys crossed with real / semantic / UUID country values
(the study: n = 10^6; the quick profile: 64, shared with fig4's runs).

    python -m analyses.table4 [--profile quick|paper|micro] [--synthetic N] ...
"""
from __future__ import annotations

import pandas as pd

from .frames import forgetting, last_accuracy
from .outputs import caption, save_csv, save_table
from .profiles import synthetic_profile
from .runs import Run, run_config
from .skeleton import Analysis

NAME = "table4"
SYNTHETIC = {"paper": 1_000_000, "quick": 64}  # facts per cell; other profiles: their `synthetic`
CELLS = [(k, v) for k in ("semantic", "uuid") for v in ("real", "semantic", "uuid")]


def plan(ctx, data) -> list[Run]:
    profile = ctx.profile
    splits = data.splits(profile)
    synthetic = {(k, v): data.synthetic(profile, k, v) for k, v in CELLS}
    return [Run(f"SFT {k} keys {v} values", run_config(profile, splits, unknown=path, condition="sft"),
                train_size=profile.known_size + profile.synthetic) for (k, v), path in synthetic.items()]


def render(ctx, trained) -> pd.DataFrame:
    table = pd.DataFrame([{"key type": k, "value type": v, "ΔD_Held (pp)": forgetting(t.records),
                           "D_Unk": last_accuracy(t.records, "unknown"), "D_Known": last_accuracy(t.records, "known")}
                          for (k, v), t in zip(CELLS, trained)])
    save_csv(table, NAME, ctx.figures_dir)
    title = f"Key type × value type, {ctx.profile.synthetic} facts — {caption(ctx.profile)}"
    save_table(table, NAME, ctx.figures_dir, title)
    print(f"done in {ctx.seconds():.0f} s")
    return table


ANALYSIS = Analysis(NAME, __doc__, plan, render, setting=synthetic_profile,
                    defaults={preset: {"synthetic": n} for preset, n in SYNTHETIC.items()})
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
