"""A table of the last epoch's accuracy per run with 95% intervals, and each run's D_Held against a reference's
(table1, table3)."""
from __future__ import annotations

import pandas as pd

from .comparisons import comparison_lines
from .epoch_tables import run_interval
from .outputs import interval_columns, save_csv, save_table
from .analysis import Analysis, standard_plan

COLUMNS = {"D_Unk": "unknown", "D_Known": "known", "D_Held": "held"}


def last_cells(t) -> dict:
    """A row's cells: the run's last-epoch accuracy on each column's split with its interval."""
    cells = {}
    for column, split in COLUMNS.items():
        cells.update(interval_columns(column, run_interval(t, "last", split)))
    return cells


def group_table(name: str, doc: str, rows: dict[str, str], reference: str | None = None) -> Analysis:
    """A table of the last epoch's accuracy with 95% intervals, one row per run (`rows`: row name → standard run
    label), and each row's D_Held against the `reference` row's (default: the first) as a paired difference."""
    def render(ctx, trained):
        runs = dict(zip(rows, trained))
        table = pd.DataFrame([{"updated params": row, **last_cells(t)} for row, t in runs.items()])
        if "All (Only Known)" in table["updated params"].values:  # D_Unk is not trained on there
            table.loc[table["updated params"] == "All (Only Known)", ["D_Unk", "D_Unk lo", "D_Unk hi"]] = None
        base = runs[reference or next(iter(rows))]
        notes = comparison_lines([(t, base) for t in runs.values() if t is not base], "last")
        save_csv(table, name, ctx.figures_dir)
        save_table(table, name, ctx.figures_dir, f"{name}: last-epoch accuracy — {ctx.caption()}", notes)
        print(f"done in {ctx.seconds():.0f} s")
        return table

    return Analysis(name, doc, standard_plan(list(rows.values())), render)
