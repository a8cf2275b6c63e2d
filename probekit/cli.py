"""The ``probekit`` command line: probe a checkpoint series, plot its metrics, list supported models.

Every flag comes from a settings dataclass (probekit.config): the probe's from ``ProbeConfig``, its inputs from
``ProbeInputs``. Errors a user can cause print one line (``probekit: error: ...``) and exit with status 2
(probekit.errors.run_cli).
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import add_arguments, from_namespace, option
from .errors import run_cli

DESCRIPTION = """\
probekit shows what fine-tuning does to the facts a language model already knew.

  probekit probe RUN_DIR --base BASE --held held.jsonl [--unknown unk.jsonl] [--new new.jsonl] --out probes/
      probe θ0 and every checkpoint of RUN_DIR (epoch-003/, checkpoint-500/, epoch_3/, step-N/, full models or
      PEFT adapters) and write probes/probes.csv (+ .parquet): RD, NS, MTD, Rank-rho, NTR, JSD per checkpoint.
      Instead of RUN_DIR: --checkpoints DIR DIR ... (in that order), or --revisions step1000 step2000 ... of the
      --base repo id in the local Hugging Face cache. --layers 4 8 14 (or all): several layers in one pass.
      Resumable. Under torchrun (torchrun --nproc-per-node N -m probekit probe ...) the checkpoints are split
      over the ranks and rank 0 writes the one table.
  probekit plot probes/ [more_probes/ ...] --metric RD --out figures/rd [--heatmap]
      plot a metric over training, one line per run (PNG + PDF); --heatmap: over layer × checkpoint.
  probekit risk --base BASE --held held.jsonl --new new.jsonl [--known known.jsonl] --out risk/
      before fine-tuning: rank the held facts by the probability that a fine-tune on the new (and known) facts
      forgets them, from one θ0 pass; writes risk/risk.md, risk.csv and risk.parquet with the expected number lost.
      After the fine-tune, --validate PROBES scores the report against what the probed series lost.
  probekit models
      list the supported architectures and where the embedded default model lives.

Layer l is the output of decoder block l (1-based), i.e. Hugging Face hidden_states[l]; the default is the
middle layer, num_hidden_layers // 2. Facts are JSONL, CSV or Parquet files (or save_to_disk folders) with
{"question", "answers", "entity"} or {"template", "subject", "answers"}; the probe reads the final token of the
entity. Nothing is downloaded: models are local folders or repo ids already in the local Hugging Face cache."""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows every default (a text with a newline as its escape) and keeps the description's layout."""

    def _get_help_string(self, action):
        if action.required or action.default is None:  # a None default is described by the help text itself
            return action.help
        if isinstance(action.default, str) and "\n" in action.default:
            return f"{action.help} (default: %(default)r)"
        return super()._get_help_string(action)


@dataclass
class ProbeInputs:
    """What `probekit probe` reads and where it writes."""

    held: str = option(help="held-out facts (D_Held): JSONL, CSV, Parquet or a save_to_disk folder")
    out: str = option(help="output folder (tables, probe.json, states cache); a re-run resumes it")
    base: str | None = option(None, "base model θ0: a checkpoint folder, a repo id in the local Hugging Face cache "
                                    "(org/name or org/name@revision) or 'embedded'; default: what the run records")
    unknown: str | None = option(None, "unknown facts (D_Unk), same formats: enables Rank-rho, NTR and JSD")
    new: str | None = option(None, "new/synthetic entities for MTD (default: the unknown facts)")
    checkpoints: list[str] | None = option(None, "an explicit, ordered list of checkpoint folders (instead of "
                                                 "RUN_DIR)")
    revisions: list[str] | None = option(None, "revisions of the --base repo id in the local Hugging Face cache, in "
                                               "order (instead of RUN_DIR), e.g. step1000 step2000")


@dataclass
class PlotSettings:
    """What `probekit plot` draws and where."""

    metric: list[str] = option(default_factory=lambda: ["RD"], help="RD, NS, MTD, Rank-rho, NTR, JSD, accuracy_held, "
                                                                     "accuracy_unknown and/or accuracy_new")
    out: str = option("figures/probe", "output path without suffix (writes .png and .pdf)")
    heatmap: bool = option(False, "draw the metric over layer × checkpoint (a table probed with --layers)")


@dataclass
class RiskInputs:
    """What `probekit risk` reads and where it writes."""

    held: str = option(help="the facts to keep (D_Held): JSONL, CSV, Parquet or a save_to_disk folder")
    new: str = option(help="the new facts the planned fine-tune teaches, same formats")
    out: str = option(help="output folder: risk.md, risk.csv, risk.parquet")
    base: str = option("embedded", "base model θ0: a checkpoint folder, a repo id in the local Hugging Face cache or "
                                   "'embedded'")
    known: str | None = option(None, "the rest of the training set (facts the model already knows), same formats")
    layer: int | None = option(None, "probe layer, 1-based (None: the middle layer, num_hidden_layers // 2)")
    device: str | None = option(None, "cpu, cuda, cuda:N (None: cuda if available)")
    predictor: str | None = option(None, "a predictor JSON from `python -m analyses.risk` (None: the shipped one)")
    validate: str | None = option(None, "a `probekit probe` output of the fine-tuned series: score this report "
                                        "against the facts it lost (AUC, expected vs observed count)")
    top: int = option(25, "facts listed in risk.md")


@dataclass
class ModelsSettings:
    embedded: bool = option(False, "convert the embedded model now and print its path")


def _probe(args) -> None:
    from .entities import read_facts
    from .series import ProbeConfig, probe_series

    config = from_namespace(ProbeConfig, args, prompt_format=args.prompt_format.replace("\\n", "\n"))
    inputs = from_namespace(ProbeInputs, args)
    facts = {name: read_facts(getattr(inputs, name)) if getattr(inputs, name) else None
             for name in ("held", "unknown", "new")}
    df = probe_series(args.run_dir, base=inputs.base, out=inputs.out, config=config, checkpoints=inputs.checkpoints,
                      revisions=inputs.revisions, **facts)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun: rank 0 speaks for all
        return
    rows = ["index", "name"] + (["layer"] if df["layer"].nunique() > 1 else [])
    wide = df.pivot_table(index=rows, columns="metric", values="value", sort=True)
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {inputs.out}/probes.csv and probes.parquet")
    if summary := df.attrs.get("held_forgetting"):
        from .outcomes import summary_line

        print(summary_line(summary))
        print(f"wrote {inputs.out}/outcomes.parquet (per fact), lost.csv and held_forgetting.json")


def _plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a command line only saves files
    import matplotlib.pyplot as plt

    from .plot import plot_heatmap, plot_metric, read_probes, save_figure

    settings = from_namespace(PlotSettings, args)
    df = read_probes(args.probes)
    for metric in settings.metric:
        fig = plot_heatmap(df, metric) if settings.heatmap else plot_metric(df, metric)
        out = settings.out if len(settings.metric) == 1 else f"{settings.out}-{metric}"
        for path in save_figure(fig, out):
            print(f"wrote {path}")
        plt.close(fig)


def _risk(args) -> None:
    from .risk import Predictor, risk, validation_notes, write_report

    inputs = from_namespace(RiskInputs, args)
    if inputs.validate:
        from .risk_check import held_outcomes

        held_outcomes(inputs.validate)  # a folder without outcomes is refused before the model runs
    predictor = Predictor.load(inputs.predictor)
    df = risk(inputs.base, inputs.held, inputs.new, inputs.known, layer=inputs.layer, predictor=predictor,
              device=inputs.device)
    expected, lo, hi = df.attrs["expected_lost"]
    print(df.head(inputs.top)[["rank", "question", "answer", "probability"]].to_string(index=False))
    print(f"expected number lost: {expected:.1f} of {len(df)} (95% interval of the count {lo}–{hi})")
    for note in validation_notes(df):
        print(f"validation: {note}")
    for path in write_report(df, inputs.out, inputs.top):
        print(f"wrote {path}")
    if inputs.validate:
        from .io import write_json
        from .risk_check import check, check_lines

        result = check(df, inputs.validate)
        print("\n".join(check_lines(result)))
        write_json(Path(inputs.out) / "check.json", result)
        print(f"wrote {Path(inputs.out) / 'check.json'}")


def _models(args) -> None:
    from .families import FAMILIES
    from .models import cache_dir, embedded_model_dir

    print("supported architectures (model_type → family):")
    for f in FAMILIES:
        print(f"  {', '.join(f.model_types):<28} {f.name:<9} layers at {f.layers}")
    if args.embedded:
        print(f"embedded model: {embedded_model_dir()}")
    else:
        print(f"embedded model cache: {cache_dir()} (run `probekit models --embedded` to convert it now)")


def build_parser() -> argparse.ArgumentParser:
    from .series import ProbeConfig

    parser = argparse.ArgumentParser(prog="probekit", description=DESCRIPTION, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("probe", help="probe a checkpoint series against its base model", formatter_class=_Formatter,
                       description="Probe θ0 and every checkpoint of a series; write a tidy metrics table.")
    p.add_argument("run_dir", nargs="?", help="folder of checkpoints (or with a checkpoints/ folder); or give "
                                              "--checkpoints or --revisions instead")
    add_arguments(p, ProbeInputs)
    add_arguments(p, ProbeConfig)
    p.set_defaults(func=_probe)

    p = sub.add_parser("plot", help="plot a metric over training for one or more probe outputs",
                       formatter_class=_Formatter)
    p.add_argument("probes", nargs="+", help="probe output folders (or probes.csv files)")
    add_arguments(p, PlotSettings)
    p.set_defaults(func=_plot)

    p = sub.add_parser("risk", help="before fine-tuning: which held facts a fine-tune on new facts will forget",
                       formatter_class=_Formatter,
                       description="Rank held facts by their forgetting probability under a planned fine-tune on "
                                   "new facts, from one pass of the base model (no training).")
    add_arguments(p, RiskInputs)
    p.set_defaults(func=_risk)

    p = sub.add_parser("models", help="list supported architectures and the embedded model", formatter_class=_Formatter)
    add_arguments(p, ModelsSettings)
    p.set_defaults(func=_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``probekit`` console script: exit status 0, or 2 with one line for an error a user can fix."""
    return run_cli("probekit", lambda: _dispatch(argv))


def _dispatch(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
