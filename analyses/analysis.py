"""The one shape of every analysis: parse the profile, plan runs, then either print the plan (``--dry-run``) or train
(resume, reuse) them and render the figure / table / CSV, timed.

A module declares ``ANALYSIS = Analysis(NAME, __doc__, plan, render, ...)``; ``plan(ctx, data)`` returns the Runs
(``data`` is ``Data`` or, in a dry run, ``DryRunData``: the same calls), ``render(ctx, trained)`` gets them
trained, inside the figures' ``style()``: one ``Trained`` per planned run, its other training seeds (``--seeds``) in
``Trained.others``. A dry run also prints the smallest ΔD_Held difference the planned D_Held detects.
``python -m analyses.<name>`` goes through ``Analysis.cli``.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probekit.config import add_arguments, flat_values, from_namespace, named_preset
from probekit.errors import run_cli

from .data import Data, DryRunData, shortfall_note
from .dry_run import print_plan
from .outputs import FIGURES, caption
from .plots import FONT_SCALE, style
from .profiles import PROFILES, Profile, model_label
from .runs import Run, Trained, ensure_replicates, seeded, standard_runs, training_seeds


def runs_shortfall(trained: list[Trained]) -> str:
    """The pool shortfalls of the runs' splits (read from each splits manifest, beside its files); where the runs
    use several models' splits (``families``), each note is prefixed with its model."""
    notes: dict[str, tuple[str, str]] = {}
    for t in trained:
        if known := t.run.config.known:
            notes.setdefault(str(Path(known).parent), (model_label(t.run.config.model), shortfall_note(known)))
    if len(notes) == 1:
        return next(iter(notes.values()))[1]
    return "; ".join(f"{model}: {note}" for model, note in notes.values() if note)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written; every flag's default after its help."""


@dataclass
class Context:
    """What the plan and the render of one invocation see."""

    name: str
    profile: Profile
    options: Any  # the analysis's own flags (its `options` dataclass), or None
    runs_dir: Path
    figures_dir: Path
    dry_run: bool
    started: float = field(default_factory=time.perf_counter)
    shortfall: str = ""  # the splits' pool shortfalls (``data.shortfall_note``), once the data exist

    def caption(self, extra: str = "", models: list[str] | None = None) -> str:
        """The figure's caption (``outputs.caption``), naming any pool that was smaller than asked."""
        short = f"pools short: {self.shortfall}" if self.shortfall else ""
        return caption(self.profile, ", ".join(p for p in (extra, short) if p), models)

    def seconds(self) -> float:
        """Seconds since the analysis started (data, runs and computation)."""
        return time.perf_counter() - self.started


@dataclass
class Analysis:
    """One analysis: its name and docstring (the --help text), plan and render, and what it adds to the flags.

    `options`: a dataclass of its own flags (``probekit.config.option`` fields); `defaults`: per preset, flag
    defaults that differ from the preset's; `setting`: the profile it really uses (e.g. P17 only); `describe`: a
    line a dry run adds to the plan; `font_scale`: the figure's text size, if it needs another."""

    name: str
    doc: str
    plan: Callable[[Context, Data | DryRunData], list[Run]]
    render: Callable[[Context, list[Trained]], Any]
    options: type | None = None
    defaults: dict[str, dict] = field(default_factory=dict)
    setting: Callable[[Profile], Profile] | None = None
    describe: Callable[[Context], str] | None = None
    font_scale: float = FONT_SCALE

    @property
    def prog(self) -> str:
        return f"python -m analyses.{self.name}"

    def parser(self, argv: list[str] | None = None) -> argparse.ArgumentParser:
        """The flags, with the defaults of the preset that `argv`'s --profile names (quick if none)."""
        ap = argparse.ArgumentParser(prog=self.prog, description=self.doc, formatter_class=HelpFormatter)
        add_arguments(ap, Profile)
        ap.add_argument("--runs-dir", default=Path("runs"), type=Path,
                        help="where data and runs are kept and reused (each in a folder named by its config hash)")
        ap.add_argument("--figures-dir", default=FIGURES, type=Path, help="where figures, CSVs and tables go")
        ap.add_argument("--dry-run", action="store_true", help="print the runs, sizes and an estimate; train nothing")
        if self.options is not None:
            add_arguments(ap, self.options)
        preset = _preset(argv)
        ap.set_defaults(**{**flat_values(PROFILES[preset]), **self.defaults.get(preset, {})})
        return ap

    def context(self, argv: list[str] | None = None) -> Context:
        args = self.parser(argv).parse_args(argv)
        profile = from_namespace(Profile, args).validate()
        options = from_namespace(self.options, args) if self.options is not None else None
        return Context(self.name, self.setting(profile) if self.setting else profile, options, args.runs_dir,
                       args.figures_dir, args.dry_run)

    def main(self, argv: list[str] | None = None):
        """Dry run: print the plan, return None. Otherwise ensure the runs and return what render returns."""
        ctx = self.context(argv)
        seeds = training_seeds(ctx.profile)
        if ctx.dry_run:
            planned = seeded(self.plan(ctx, DryRunData(ctx.runs_dir)), seeds)
            print_plan(self.name, ctx.profile, [r for group in planned for r in group],
                       self.describe(ctx) if self.describe else None, ctx.runs_dir)
            return None
        trained = [ensure_replicates(group, ctx.runs_dir) for group in seeded(self.plan(ctx, Data(ctx.runs_dir)),
                                                                              seeds)]
        ctx.shortfall = runs_shortfall(trained)
        with style(self.font_scale):
            return self.render(ctx, trained)

    def cli(self) -> None:
        """``python -m analyses.<name>``."""
        cli(self.prog, self.main)


def cli(prog: str, main: Callable[[], Any]) -> None:
    """A command line: figures to files (Agg backend, set here, never at import), a user error as one line and
    exit status 2."""
    import matplotlib

    matplotlib.use("Agg")
    sys.exit(run_cli(prog, main))


def _preset(argv: list[str] | None) -> str:
    """The preset named by --profile (an unknown one is left to the full parser to refuse)."""
    return named_preset(sys.argv[1:] if argv is None else argv, "--profile", PROFILES, "quick")


def standard_plan(labels: list[str]) -> Callable[[Context, Data | DryRunData], list[Run]]:
    """A plan of the standard EntityQuestions runs named in `labels` (see ``runs.standard_runs``)."""
    def plan(ctx: Context, data) -> list[Run]:
        runs = standard_runs(ctx.profile, data.splits(ctx.profile))
        return [runs[label] for label in labels]
    return plan


def by_label(trained: list[Trained]) -> dict[str, list[dict]]:
    """Run label → its per-epoch records."""
    return {t.label: t.records for t in trained}
