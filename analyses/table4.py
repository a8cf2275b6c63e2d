"""Table 4: forgetting is driven by the key, not the value — ΔD_Held for key type × value type (Appendix E).

SFT on D_Known ∪ n synthetic P17 facts for semantic / UUID keys crossed with real / semantic / UUID country values
(the study: n = 10^6; the quick profile: 64, shared with fig4's runs).

    python -m analyses.table4 [--profile quick|paper|micro] [--synthetic N] ...
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from .common import (
    Run, Timer, caption, dry_run, ensure_run, forgetting, parser, prepare_splits, prepare_synthetic, profile_from,
    run_config, save_csv, save_table, synthetic_profile,
)

NAME = "table4"
SYNTHETIC = {"paper": 1_000_000, "quick": 64}  # facts per cell; other profiles: their `synthetic`
CELLS = [(k, v) for k in ("semantic", "uuid") for v in ("real", "semantic", "uuid")]


def main(argv=None):
    args = parser(NAME, __doc__).parse_args(argv)
    profile = synthetic_profile(profile_from(args))
    if args.synthetic is None and args.profile in SYNTHETIC:
        profile = replace(profile, synthetic=SYNTHETIC[args.profile])
    label = lambda k, v: f"SFT {k} keys {v} values"  # noqa: E731
    if args.dry_run:
        runs = [Run(label(k, v), run_config(profile, {"known": "<known>", "held": "<held>"}, unknown="<synthetic>",
                                            condition="sft")) for k, v in CELLS]
        for r in runs:
            r.config["_train_size"] = profile.known + profile.synthetic
        dry_run(NAME, profile, runs)
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        rows = []
        for k, v in CELLS:
            path = prepare_synthetic(profile, args.runs_dir, k, v)
            m = ensure_run(Run(label(k, v), run_config(profile, data, unknown=path, condition="sft")), args.runs_dir)
            rows.append({"key type": k, "value type": v, "ΔD_Held (pp)": forgetting(m),
                         "D_Unk": m[-1]["accuracy"].get("unknown"), "D_Known": m[-1]["accuracy"].get("known")})
    table = pd.DataFrame(rows)
    save_csv(table, NAME, args.figures_dir)
    save_table(table, NAME, args.figures_dir, f"Key type × value type, {profile.synthetic} facts — {caption(profile)}")
    print(f"done in {timer.seconds:.0f} s")
    return table


if __name__ == "__main__":
    main()
