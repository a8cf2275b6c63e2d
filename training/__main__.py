"""``python -m training``: SLiCK classification, the study's splits, synthetic facts and training runs.

    python -m training slick --model embedded --relations P17,P36 --split dev --limit 300 --out data/slick
    python -m training splits --slick data/slick --out data/splits --known-size 8000 --unknown-size 8000
    python -m training synthetic --n 10000 --keys semantic --values real --out data/synthetic.jsonl
    python -m training run --known d/known.jsonl --unknown d/unknown.jsonl --held d/held.jsonl --out runs/sft

Every subcommand's flags are the fields of a settings dataclass (``training.commands``; run's: ``RunConfig``), the
SLiCK and split settings those of ``SlickConfig`` and ``SplitConfig``, which the analyses' profiles nest too
(``--help`` shows their meaning and defaults); ``slick --preset gekhman`` gives the SLiCK flags that preset's
defaults; ``run --config run.toml`` reads RunConfig fields from TOML, and flags override them. Errors a user can
cause print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from probekit.config import add_arguments, flat_values, from_namespace, named_preset, read_toml
from probekit.errors import ProbekitError, run_cli

from .commands import SlickCommand, SplitsCommand, SyntheticCommand
from .config import OLD_NAMES, RunConfig


def _slick(s: SlickCommand) -> None:
    from probekit.models import EMBEDDED_NAME, load_model

    from .entityquestions import load_relation
    from .slick import Slick, category_shares, run_slick

    config = s.slick
    model, tokenizer = load_model(s.model, device=s.device)
    name = EMBEDDED_NAME if s.model == "embedded" else str(Path(s.model).resolve())
    relations = s.relation_ids()
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


def _splits(s: SplitsCommand) -> None:
    from .splits import keep_relations, make_splits, write_splits

    config = s.splits
    folder = Path(s.slick)
    train, dev = _read_slick(folder, "train"), _read_slick(folder, "dev")
    settings = sorted({f.read_text() for f in folder.glob("*.settings.json")})
    splits = make_splits(train, dev, config)
    manifest = write_splits(splits, s.out, config, keep_relations(dev, config.min_highly_known),
                            {"slick_settings": [json.loads(x) for x in settings], "slick_dir": str(folder.resolve())})
    print(f"relations kept: {', '.join(manifest['relations'])}; sizes: {manifest['sizes']}; wrote {s.out}")
    for name, short in manifest["shortfalls"].items():
        print(f"note: {name}: {short['asked']} asked, {short['available']} available; using {short['used']}")


def _synthetic(s: SyntheticCommand) -> None:
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
    "slick": (SlickCommand, _slick, "classify questions into SLiCK knowledge categories"),
    "splits": (SplitsCommand, _splits, "build D_Known, D_Unk, D_Held (+ MaybeKnown, WeaklyKnown) from SLiCK results"),
    "synthetic": (SyntheticCommand, _synthetic, "synthetic P17 facts with semantic (token-mix) or UUID keys"),
    "run": (RunConfig, _run, "fine-tune and write a checkpoint series (SFT, freeze, self_distill, l2)"),
}


def build_parser(run_defaults: dict | None = None, slick_preset: str = "study") -> argparse.ArgumentParser:
    """The parser of every subcommand; `run_defaults` (a run.toml's values) replace RunConfig's defaults, and
    `slick_preset` names the SlickConfig preset whose values are the defaults of slick's SLiCK flags."""
    from .slick import PRESETS

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
            p.set_defaults(**(run_defaults or {}))
        if name == "slick":
            p.set_defaults(preset=slick_preset, **flat_values(PRESETS[slick_preset]))
    return parser


def _slick_preset(argv: list[str] | None) -> str:
    """The preset `slick --preset NAME` names (study if none; an unknown one is left to the parser to refuse)."""
    from .slick import PRESETS

    argv = sys.argv[1:] if argv is None else argv
    return named_preset(argv[1:], "--preset", PRESETS, "study") if argv and argv[0] == "slick" else "study"


def _command(argv: list[str] | None) -> None:
    args = build_parser(slick_preset=_slick_preset(argv)).parse_args(argv)
    overrides = {}
    if args.command == "run":
        if args.config:
            args = build_parser(read_toml(args.config, RunConfig, OLD_NAMES)).parse_args(argv)
        if args.out is None:
            raise ProbekitError("give --out RUN_DIR (or out = ... in the config)")
        overrides["prompt_format"] = args.prompt_format.replace("\\n", "\n")  # as probekit probe reads it
    args.func(from_namespace(args.settings, args, **overrides))


def main(argv: list[str] | None = None) -> int:
    return run_cli("python -m training", lambda: _command(argv))


if __name__ == "__main__":
    sys.exit(main())
