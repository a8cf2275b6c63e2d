"""The ``probekit`` command line: probe a checkpoint series, plot its metrics, list supported models.

Errors a user can cause print one line (``probekit: error: ...``) and exit with status 2.
"""
from __future__ import annotations

import argparse
import math
import sys

from .errors import ProbekitError

DESCRIPTION = """\
probekit shows what fine-tuning does to the facts a language model already knew.

  probekit probe RUN_DIR --base BASE --held held.jsonl [--unknown unk.jsonl] [--new new.jsonl] --out probes/
      probe θ0 and every checkpoint of RUN_DIR (epoch-003/, checkpoint-500/, epoch_3/, step-N/) and write
      probes/probes.csv (+ .parquet): RD, NS, MTD, Rank-rho, NTR, JSD per checkpoint. Resumable.
  probekit plot probes/ [more_probes/ ...] --metric RD --out figures/rd
      plot a metric over training, one line per run (PNG + PDF).
  probekit models
      list the supported architectures and where the embedded default model lives.

Layer l is the output of decoder block l (1-based), i.e. Hugging Face hidden_states[l]; the default is the
middle layer, num_hidden_layers // 2. Facts are JSONL lines {"question", "answers", "entity"} or
{"template", "subject", "answers"}; the probe reads the final token of the entity."""


def _probe(args) -> None:
    from .entities import read_facts
    from .series import ProbeConfig, probe_series

    config = ProbeConfig(
        layer=args.layer, k=args.k, ns_sample=args.ns_sample or None, max_pairs=args.max_pairs or None,
        seed=args.seed, jsd_log_base=args.jsd_log_base, prompt_format=args.prompt_format.replace("\\n", "\n"),
        batch_size=args.batch_size, device=args.device, dtype=args.dtype, allow_pickle=args.allow_pickle,
    )
    df = probe_series(
        args.run_dir, base=args.base, out=args.out, config=config, held=read_facts(args.held),
        unknown=read_facts(args.unknown) if args.unknown else None,
        new=read_facts(args.new) if args.new else None,
    )
    wide = df.pivot_table(index=["index", "name"], columns="metric", values="value", sort=True)
    print(wide.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {args.out}/probes.csv and probes.parquet")


def _plot(args) -> None:
    from .plot import plot_metric, read_probes

    df = read_probes(args.probes)
    for metric in args.metric:
        out = args.out if len(args.metric) == 1 else f"{args.out}-{metric}"
        for path in plot_metric(df, metric, out):
            print(f"wrote {path}")


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
    parser = argparse.ArgumentParser(
        prog="probekit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("probe", help="probe a checkpoint series against its base model",
                       description="Probe θ0 and every checkpoint of RUN_DIR; write a tidy metrics table.")
    p.add_argument("run_dir", help="directory of checkpoints (or with a checkpoints/ folder)")
    p.add_argument("--base", help="base model θ0: a checkpoint directory or 'embedded' (default: the run's record)")
    p.add_argument("--held", required=True, help="JSONL of held-out facts (D_Held)")
    p.add_argument("--unknown", help="JSONL of unknown facts (D_Unk): enables Rank-rho, NTR, JSD")
    p.add_argument("--new", help="JSONL of new/synthetic entities for MTD (default: the unknown facts)")
    p.add_argument("--out", required=True, help="output directory (tables, states cache)")
    p.add_argument("--layer", type=int, help="1-based layer (hidden_states[l]); default num_hidden_layers // 2")
    p.add_argument("--k", type=int, default=76, help="top-k size for Rank-rho, NTR, JSD (default 76)")
    p.add_argument("--ns-sample", type=int, default=1000, help="NS subsample size |S| (0 = all; default 1000)")
    p.add_argument("--max-pairs", type=int, default=10_000, help="cap on (unknown, held) pairs (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the NS subsample and the pair cap")
    p.add_argument("--jsd-log-base", type=float, default=math.e, help="log base of JSD (default e; 2 for bits)")
    p.add_argument("--prompt-format", default="Q: {question}\\nA:", help="prompt with {question} (default QA)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", help="float32, bfloat16, ... (default float32 on CPU, bfloat16 on GPU)")
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle (.bin) weights: only if you trust them")
    p.set_defaults(func=_probe)

    p = sub.add_parser("plot", help="plot a metric over training for one or more probe outputs")
    p.add_argument("probes", nargs="+", help="probe output directories (or probes.csv files)")
    p.add_argument("--metric", nargs="+", default=["RD"], help="RD, NS, MTD, Rank-rho, NTR, JSD (default RD)")
    p.add_argument("--out", default="figures/probe", help="output path without suffix (writes .png and .pdf)")
    p.set_defaults(func=_plot)

    p = sub.add_parser("models", help="list supported architectures and the embedded model")
    p.add_argument("--embedded", action="store_true", help="convert the embedded model now and print its path")
    p.set_defaults(func=_models)
    return parser


def run_command(args, prog: str) -> int:
    """Run ``args.func(args)``: a ProbekitError becomes one line on stderr and exit status 2."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars say what is happening
    try:
        args.func(args)
    except ProbekitError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv), "probekit")


if __name__ == "__main__":
    sys.exit(main())
