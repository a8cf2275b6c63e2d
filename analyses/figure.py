"""The shape every EntityQuestions figure module shares: parse the profile, plan runs, dry-run or run them."""
from __future__ import annotations

from collections.abc import Callable

from .common import Timer, dry_run, ensure_run, parser, placeholder_data, prepare_splits, profile_from, standard_runs


def run_figure(name: str, doc: str, labels: list[str], render: Callable, argv=None):
    """Train (or reuse) the standard runs named in `labels`, then ``render(metrics, profile, args, seconds)``."""
    args = parser(name, doc).parse_args(argv)
    profile = profile_from(args)
    if args.dry_run:
        runs = standard_runs(profile, placeholder_data())
        dry_run(name, profile, [runs[label] for label in labels])
        return None
    with Timer() as timer:
        runs = standard_runs(profile, prepare_splits(profile, args.runs_dir))
        metrics = {label: ensure_run(runs[label], args.runs_dir) for label in labels}
    return render(metrics, profile, args, timer.seconds)
