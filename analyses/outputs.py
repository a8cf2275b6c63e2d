"""What an analysis writes: figures (PNG + PDF), the numbers behind them (CSV), Markdown tables, captions."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from probekit import plot
from probekit.io import atomic_write, write_text

from .profiles import Profile, model_name

FIGURES = Path("figures")


def caption(profile: Profile, extra: str = "", models: list[str] | None = None) -> str:
    """The figure's model(s) (default: the profile's), flagged unless all are the study's, its profile, `extra`."""
    models = models or [model_name(profile)]
    study = all("qwen2.5-1.5b" in m.lower() for m in models)
    note = "" if study else " (not the study's Qwen2.5-1.5B)"
    return f"{', '.join(models)}{note}, profile {profile.name}{', ' + extra if extra else ''}"


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


def markdown(df: pd.DataFrame) -> str:
    """A Markdown table, 3 decimals, missing values as —."""
    return df.astype(object).where(df.notna(), None).to_markdown(index=False, floatfmt=".3f", missingval="—")


def save_table(df: pd.DataFrame, name: str, figures_dir: Path, title: str) -> Path:
    """`name`.md: the title and the table (also printed)."""
    text = f"{title}\n\n{markdown(df)}\n"
    print(text)
    path = figures_dir / f"{name}.md"
    write_text(path, text)
    return path
