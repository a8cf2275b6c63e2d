"""``python -m training``: SLiCK classification, the study's splits, synthetic facts and training runs.

    python -m training slick --model embedded --relations P17,P36 --split dev --limit 300 --out data/slick
    python -m training splits --slick data/slick --out data/splits --known-size 8000 --unknown-size 8000
    python -m training synthetic --n 10000 --keys semantic --values real --out data/synthetic.jsonl
    python -m training run --known d/known.jsonl --unknown d/unknown.jsonl --held d/held.jsonl --out runs/sft

Every subcommand's flags are the fields of a settings dataclass (``--help`` shows their meaning and defaults);
``run --config run.toml`` reads RunConfig fields from TOML, and flags override them. Errors a user can cause print
one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from probekit.config import add_arguments, from_namespace, option, read_toml
from probekit.errors import ProbekitError, run_cli

from .config import RunConfig

DATA_HELP = "an EntityQuestions dataset/ directory (unset: the bundled copy)"


@dataclass
class SlickSettings:
    """``slick``: classify questions into SLiCK knowledge categories."""

    model: str = option("embedded", "checkpoint directory or 'embedded'")
    relations: str = option("P17,P36,P407,P495", "comma-separated relation ids")
    split: str = option("dev", "EntityQuestions split to classify", choices=["train", "dev", "test"])
    limit: int | None = option(None, "first N questions of each relation (unset: all)")
    preset: str = option("study", "study: 20 runs × 3 shots, 1 sample/run; gekhman: 10 × 4 shots, 16 samples/run",
                         choices=["study", "gekhman"])
    runs: int | None = option(None, "few-shot runs per question (unset: the preset's)")
    shots: int | None = option(None, "exemplars per prompt (unset: the preset's)")
    samples: int | None = option(None, "temperature samples per run (unset: the preset's)")
    exemplars: str | None = option(None, "independent: exemplars per question and run; shared: per relation and run "
                                   "(KV reuse) (unset: the preset's)", choices=["independent", "shared"])
    sample_all: bool = option(False, "sample every question, not only greedy-wrong ones")
    seed: int | None = option(None, "exemplar and sampling seed (unset: the preset's)")
    batch_size: int | None = option(None, "questions per decoding batch (unset: 32 on CPU, 256 on a GPU)")
    device: str | None = option(None, "cpu, cuda or cuda:N (unset: cuda if available, else cpu)")
    data: str | None = option(None, DATA_HELP)
    out: str = option("data/slick", "folder for <relation>.<split>.jsonl (resumable)")


@dataclass
class SplitsSettings:
    """``splits``: D_Known, D_Unk, D_Held (+ MaybeKnown, WeaklyKnown) from SLiCK results."""

    slick: str = option(help="folder with SLiCK results for train and dev")
    out: str = option(help="folder for the split JSONL files and manifest.json")
    known_size: int = option(8000, "questions in D_Known")
    unknown_size: int = option(8000, "questions in D_Unk")
    held_size: int | None = option(None, "questions in D_Held (unset: every HighlyKnown dev question)")
    maybe_known_size: int | None = option(None, "MaybeKnown dev questions (unset: all)")
    weakly_known_size: int | None = option(None, "WeaklyKnown dev questions (unset: all)")
    min_highly_known: float = option(0.30, "keep relations whose dev share of HighlyKnown is at least this")
    mix: str = option("50/50", "training mix: D_Known ∪ D_Unk, or D_Known only", choices=["50/50", "only-known"])
    seed: int = option(0, "sampling seed")
    allow_short: bool = option(False, "write a 50/50 mix even when short pools put D_Known's share more than 10 "
                               "points from the asked share")


@dataclass
class SyntheticSettings:
    """``synthetic``: synthetic P17 facts with semantic (token-mix) or UUID keys."""

    out: str = option(help="JSONL file to write")
    n: int = option(10_000, "number of facts")
    keys: str = option("semantic", "entity names: token mixes or UUIDs", choices=["semantic", "uuid"])
    values: str = option("real", "answers: real countries, token mixes or UUIDs", choices=["real", "semantic", "uuid"])
    model: str = option("embedded", "whose tokenizer builds the token-mix names")
    seed: int = option(0, "sampling seed")
    data: str | None = option(None, DATA_HELP)


def _slick(s: SlickSettings) -> None:
    from probekit.models import EMBEDDED_NAME, load_model

    from .entityquestions import load_relation
    from .slick import PRESETS, Slick, category_shares, run_slick, with_overrides

    config = with_overrides(PRESETS[s.preset], runs=s.runs, shots=s.shots, samples=s.samples,
                            exemplars=s.exemplars, seed=s.seed, sample_all=s.sample_all or None)
    model, tokenizer = load_model(s.model, device=s.device)
    name = EMBEDDED_NAME if s.model == "embedded" else str(Path(s.model).resolve())
    relations = [r.strip() for r in s.relations.split(",") if r.strip()]
    pools = {r: load_relation(r, "train", s.data) for r in relations}
    slick = Slick(model, tokenizer, pools, config, batch_size=s.batch_size)
    print(f"SLiCK: {config.runs} runs × {config.shots} shots, {config.samples} samples/run "
          f"(T={config.temperature}, top-{config.top_k}), exemplar mode: {config.exemplars}")
    for rel in relations:
        facts = load_relation(rel, s.split, s.data)[: s.limit]
        start = time.perf_counter()
        records = run_slick(slick, facts, Path(s.out) / f"{rel}.{s.split}.jsonl", name)
        shares = ", ".join(f"{k} {v:.1%}" for k, v in category_shares(records).items())
        print(f"{rel} {s.split} ({len(records)} questions, {time.perf_counter() - start:.0f} s): {shares}")


def _read_slick(folder: Path, split: str) -> dict[str, list[dict]]:
    out = {}
    for f in sorted(folder.glob(f"*.{split}.jsonl")):
        out[f.name.split(".")[0]] = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line]
    if not out:
        raise ProbekitError(f"no SLiCK results for split {split!r} in {folder}; run `python -m training slick` first")
    return out


def _splits(s: SplitsSettings) -> None:
    from .splits import SplitConfig, keep_relations, make_splits, write_splits

    config = SplitConfig(known=s.known_size, unknown=s.unknown_size, held=s.held_size, maybe_known=s.maybe_known_size,
                         weakly_known=s.weakly_known_size, min_highly_known=s.min_highly_known, mix=s.mix,
                         seed=s.seed, allow_short=s.allow_short)
    folder = Path(s.slick)
    train, dev = _read_slick(folder, "train"), _read_slick(folder, "dev")
    settings = sorted({f.read_text() for f in folder.glob("*.settings.json")})
    splits = make_splits(train, dev, config)
    manifest = write_splits(splits, s.out, config, keep_relations(dev, config.min_highly_known),
                            {"slick_settings": [json.loads(x) for x in settings], "slick_dir": str(folder.resolve())})
    print(f"relations kept: {', '.join(manifest['relations'])}; sizes: {manifest['sizes']}; wrote {s.out}")
    for name, short in manifest["shortfalls"].items():
        print(f"note: {name}: {short['asked']} asked, {short['available']} available; using {short['used']}")


def _synthetic(s: SyntheticSettings) -> None:
    from probekit.models import load_tokenizer

    from .jsonl_columns import write_jsonl_columns
    from .synthetic import synthetic_facts

    start = time.perf_counter()
    facts = synthetic_facts(load_tokenizer(s.model), s.n, s.keys, s.values, s.seed, s.data)
    write_jsonl_columns(s.out, facts)
    print(f"wrote {len(facts)} {s.keys}-key / {s.values}-value facts to {s.out} "
          f"in {time.perf_counter() - start:.1f} s")


def _run(config: RunConfig) -> None:
    from .distributed import init_distributed, shutdown_distributed
    from .trainer import Trainer

    init_distributed()
    try:
        Trainer(config).run()
    finally:
        shutdown_distributed()


RUN_DESCRIPTION = ("Fine-tune and write a checkpoint series. Flags override --config run.toml. Run the same command "
                   "again to resume; under torchrun --nproc-per-node N it trains with DDP, or with FSDP2 given "
                   "--parallel fsdp.")
COMMANDS = {  # name → (settings class, function, help)
    "slick": (SlickSettings, _slick, "classify questions into SLiCK knowledge categories"),
    "splits": (SplitsSettings, _splits, "build D_Known, D_Unk, D_Held (+ MaybeKnown, WeaklyKnown) from SLiCK results"),
    "synthetic": (SyntheticSettings, _synthetic, "synthetic P17 facts with semantic (token-mix) or UUID keys"),
    "run": (RunConfig, _run, "fine-tune and write a checkpoint series (SFT, freeze, self_distill, l2)"),
}


def build_parser(run_defaults: dict | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; `run_defaults` (a run.toml's values) replace RunConfig's defaults."""
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (settings, func, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=RUN_DESCRIPTION if name == "run" else help,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == "run":
            p.add_argument("--config", help="TOML file with RunConfig fields (flags override it)")
        add_arguments(p, settings)
        p.set_defaults(settings=settings, func=func)
        if name == "run":
            next(a for a in p._actions if a.dest == "out").required = False  # or from --config
            p.set_defaults(**(run_defaults or {}))
    return parser


def _command(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        if args.config:
            args = build_parser(read_toml(args.config, RunConfig)).parse_args(argv)
        if args.out is None:
            raise ProbekitError("give --out RUN_DIR (or out = ... in the config)")
    args.func(from_namespace(args.settings, args))


def main(argv: list[str] | None = None) -> int:
    return run_cli("python -m training", lambda: _command(argv))


if __name__ == "__main__":
    sys.exit(main())
