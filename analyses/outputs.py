"""What an analysis writes: figures (PNG + PDF), the numbers behind them (CSV), Markdown tables, captions.

A number's 95% interval sits beside it: a figure's CSV of one value column has `lo` / `hi`; a table's column `c`
has `c lo` / `c hi` after it (``interval_columns``), and its Markdown prints `value [lo, hi]` in one cell.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from probekit import plot
from probekit.io import atomic_write, write_text

from .profiles import Profile, model_name
from .runs import training_seeds

FIGURES = Path("figures")


def caption(profile: Profile, extra: str = "", models: list[str] | None = None) -> str:
    """The figure's model(s) (default: the profile's), flagged unless all are the study's, its profile, its training
    seeds (where several), `extra`."""
    models = models or [model_name(profile)]
    study = all("qwen2.5-1.5b" in m.lower() for m in models)
    note = "" if study else " (not the study's Qwen2.5-1.5B)"
    seeds = training_seeds(profile)
    several = f", training seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else ""
    return f"{', '.join(models)}{note}, profile {profile.name}{several}{', ' + extra if extra else ''}"


def save_figure(fig, name: str, figures_dir: Path) -> list[Path]:
    """The figure as `name`.png and `name`.pdf (150 dpi, tight)."""
    return plot.save_figure(fig, figures_dir / name, bbox_inches="tight")


def write_outputs(fig, df: pd.DataFrame, name: str, figures_dir: Path, seconds: float) -> list[Path]:
    """Save the numbers behind a figure as CSV and the figure as PNG + PDF; close it; say where and how long."""
    import matplotlib.pyplot as plt

    save_csv(df, name, figures_dir)
    paths = save_figure(fig, name, figures_dir)
    plt.close(fig)
    print(f"wrote {', '.join(map(str, paths))} and {name}.csv in {seconds:.0f} s")
    return paths


def save_csv(df: pd.DataFrame, name: str, figures_dir: Path) -> Path:
    path = figures_dir / f"{name}.csv"
    with atomic_write(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def interval_columns(column: str, est) -> dict:
    """A table row's cells of one number with its interval (an ``Estimate``): `column`, `column lo`, `column hi`."""
    return {column: est.value, f"{column} lo": est.lo, f"{column} hi": est.hi}


def band_of(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """`df` with `column lo` / `column hi` as lo / hi: the band a plot draws around `column`."""
    return df.rename(columns={f"{column} lo": "lo", f"{column} hi": "hi"})


def interval_cell(value, lo, hi, fmt: str = ".3f") -> str | None:
    """`value [lo, hi]`; the value alone where the interval is missing; None where the value is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if any(v is None or math.isnan(v) for v in (lo, hi)):
        return f"{value:{fmt}}"
    return f"{value:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def markdown(df: pd.DataFrame) -> str:
    """A Markdown table, 3 decimals, missing values as —; a column with `c lo` / `c hi` as `value [lo, hi]`; text
    cells as written (a p of "7e-12" stays that)."""
    text = [c for c in df.columns if df[c].map(lambda v: isinstance(v, str) or pd.isna(v)).all()]
    df = df.astype(object).where(df.notna(), None)
    for column in [c for c in df.columns if f"{c} lo" in df.columns and f"{c} hi" in df.columns]:
        df[column] = pd.Series([interval_cell(*v) for v in zip(df[column], df[f"{column} lo"], df[f"{column} hi"])],
                               index=df.index, dtype=object)
        df = df.drop(columns=[f"{column} lo", f"{column} hi"])
    as_written = [i for i, c in enumerate(df.columns) if c in text] if len(df) else False  # (tabulate: no rows)
    return df.to_markdown(index=False, floatfmt=".3f", missingval="—", disable_numparse=as_written)


def save_table(df: pd.DataFrame, name: str, figures_dir: Path, title: str, notes: list[str] = ()) -> Path:
    """`name`.md: the title, the table and `notes` (e.g. paired comparisons), one per line (also printed)."""
    text = f"{title}\n\n{markdown(df)}\n" + "".join(f"\n{note}\n" for note in notes)
    print(text)
    path = figures_dir / f"{name}.md"
    write_text(path, text)
    return path
