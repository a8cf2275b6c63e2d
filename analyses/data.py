"""The facts an analysis trains and evaluates on: SLiCK-filtered splits and synthetic facts, cached under the runs
folder by a hash of everything they depend on. ``DryRunData`` stands in for them in a dry run.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from probekit.entities import fact_to_record
from probekit.io import stable_hash
from probekit.models import default_device, load_model, load_tokenizer, resolve_dtype, resolve_model_path
from training.entityquestions import load_relation
from training.jsonl_columns import write_jsonl_columns
from training.slick import Slick, SlickConfig, category_shares, run_slick
from training.splits import POOLS, SplitConfig, check_mix, keep_relations, make_splits, shortfalls, write_splits
from training.synthetic import synthetic_facts

from .profiles import Profile, model_name

SPLITS = ("known", "unknown", "held", "maybe_known", "weakly_known")
class Data:
    """Prepares (or reuses) the data of a profile under `runs_dir`/data and `runs_dir`/slick."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = Path(runs_dir)

    def splits(self, profile: Profile) -> dict[str, str]:
        """D_Known, D_Unk, D_Held and held-out MaybeKnown / WeaklyKnown as JSONL paths (cached)."""
        folder = splits_folder(self.runs_dir, profile)
        if not (folder / "manifest.json").exists():
            start = time.perf_counter()
            _write_splits(profile, folder, self.runs_dir)
            print(f"== data: SLiCK and the splits took {time.perf_counter() - start:.0f} s", flush=True)
        elif not profile.splits.allow_short:  # written with --allow-short: refused without it, as a fresh one would be
            manifest = _read_manifest(folder)
            check_mix({n: s["asked"] for n, s in recorded_shortfalls(manifest).items()}, manifest["sizes"])
        return {n: str(folder / f"{n}.jsonl") for n in SPLITS}

    def synthetic(self, profile: Profile, key_type: str, value_type: str = "real", n: int | None = None) -> str:
        """Synthetic P17 facts (JSONL path, cached) for the profile's model."""
        n = n or profile.synthetic
        path = synthetic_path(self.runs_dir, profile, key_type, value_type, n)
        if not path.exists():
            tokenizer = load_tokenizer(resolve_model_path(profile.model))
            write_jsonl_columns(path, synthetic_facts(tokenizer, n, key_type, value_type, profile.seed))
        return str(path)


class DryRunData:
    """What a dry run plans with: the same calls as ``Data``, nothing prepared. Data already prepared under
    `runs_dir` is named by its real path, so that the runs planned on it are those on disk (their progress shown)."""

    def __init__(self, runs_dir: Path | None = None):
        self.runs_dir = runs_dir

    def splits(self, profile: Profile) -> dict[str, str]:
        folder = self.runs_dir and splits_folder(self.runs_dir, profile)
        if folder and (folder / "manifest.json").exists():
            return {k: str(folder / f"{k}.jsonl") for k in SPLITS}
        return {k: f"<{k}>.jsonl" for k in SPLITS}

    def synthetic(self, profile: Profile, key_type: str, value_type: str = "real", n: int | None = None) -> str:
        path = self.runs_dir and synthetic_path(self.runs_dir, profile, key_type, value_type, n)
        return str(path) if path and path.exists() else f"<synthetic {key_type} keys {value_type} values>.jsonl"


def splits_folder(runs_dir: Path, profile: Profile) -> Path:
    """Where the profile's splits are kept (by a hash of the settings they depend on)."""
    return Path(runs_dir) / "data" / f"splits-{stable_hash(['splits', data_key(profile)])}"


def synthetic_path(runs_dir: Path, profile: Profile, key_type: str, value_type: str = "real",
                   n: int | None = None) -> Path:
    """Where the profile's synthetic facts of a key and value type are kept."""
    key = stable_hash([profile.model, profile.seed])
    return Path(runs_dir) / "data" / f"synthetic-{key_type}-{value_type}-{n or profile.synthetic}-{key}.jsonl"


# SLiCK and split settings added after the split folders were first named (in their key only when not the default)
_LATER_SLICK = ("temperature", "top_k", "sample_all", "max_new_tokens")
_LATER_SPLITS = ("maybe_known_size", "weakly_known_size")


def data_key(profile: Profile) -> dict:
    """The settings the splits depend on, under the names they had when the split folders were first named; SLiCK
    and split settings added since enter only when they differ from their defaults, so that folders keep their
    names."""
    slick, splits = profile.slick, profile.splits
    key = {"model": profile.model, "relations": profile.relations, "slick": profile.use_slick,
           "slick_runs": slick.runs, "slick_shots": slick.shots, "slick_samples": slick.samples,
           "slick_exemplars": slick.exemplars, "train_questions": profile.train_questions,
           "dev_questions": profile.dev_questions, "min_highly_known": splits.min_highly_known,
           "known": splits.known_size, "unknown": splits.unknown_size, "held": splits.held_size, "seed": profile.seed}
    later = {**{f"slick_{k}": getattr(slick, k) for k in _LATER_SLICK},
             **{k: getattr(splits, k) for k in _LATER_SPLITS}}
    defaults = {**{f"slick_{k}": getattr(SlickConfig(), k) for k in _LATER_SLICK},
                **{k: getattr(SplitConfig(), k) for k in _LATER_SPLITS}}
    return {**key, **{k: v for k, v in later.items() if v != defaults[k]}}



def _write_splits(profile: Profile, folder: Path, runs_dir: Path) -> None:
    train, dev = _slick_records(profile, runs_dir)
    config = profile.splits
    shares = {s: {r: category_shares(v) for r, v in recs.items()} for s, recs in (("train", train), ("dev", dev))}
    kept = keep_relations(dev, config.min_highly_known)
    manifest = write_splits(make_splits(train, dev, config), folder, config, kept,  # manifest.json last: complete
                            {"profile": asdict(profile), "slick_shares": shares})
    if manifest["shortfalls"]:
        print(f"note: pools smaller than asked, each taken whole: {shortfall_note(manifest)}")


def recorded_shortfalls(manifest: dict) -> dict[str, dict[str, int]]:
    """The manifest's shortfalls (split → asked, available, used); for splits written before they were recorded,
    from the profile's sizes (a short pool was taken whole then too)."""
    if "shortfalls" in manifest:
        return manifest["shortfalls"]
    profile = manifest.get("profile", {})
    sizes = {**profile, **profile.get("splits", {})}  # the profile flat (earlier) or with its splits section
    asked = {n: sizes.get(f"{n}_size", sizes.get(n)) for n in ("known", "unknown", "held")}
    return shortfalls(asked, manifest["sizes"])


def shortfall_note(source: str | Path | dict) -> str:
    """A caption fragment naming the splits smaller than asked, e.g. "D_Known 242 of 1,000 asked" ("" when none).
    `source`: a splits folder, its manifest.json or any file in it (no manifest there, as in a dry run: ""), or the
    manifest itself."""
    manifest = source if isinstance(source, dict) else _read_manifest(Path(source))
    if manifest is None:
        return ""
    return ", ".join(f"{POOLS[n][2]} {s['used']:,} of {s['asked']:,} asked"
                     for n, s in recorded_shortfalls(manifest).items())


def _read_manifest(path: Path) -> dict | None:
    """The manifest.json of a splits folder, given the folder or a file in it; None when there is none."""
    folder = path if path.is_dir() else path.parent
    file = folder / "manifest.json"
    return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None


def slick_dtype(profile: Profile) -> str | None:
    """SLiCK's weights in the profile's precision (bfloat16 for bf16-mixed and bf16, float32 for fp32), so that it
    asks the model in the precision the runs train and evaluate in; auto: the device's default (float32 on the CPU,
    bfloat16 on a GPU)."""
    return {"bf16-mixed": "bfloat16", "bf16": "bfloat16", "fp32": "float32"}.get(profile.run.precision)


def slick_folder(runs_dir: Path, profile: Profile) -> Path:
    """Where SLiCK's records for the profile's model, knowledge-test settings, device and dtype are kept; profiles
    that ask the same share them (the relations are files in it)."""
    device = profile.run.device or default_device()
    dtype = str(resolve_dtype(slick_dtype(profile), device))
    precision = [] if device == "cpu" and dtype == "torch.float32" else [device, dtype]  # fp32 CPU: keys as before
    return Path(runs_dir) / "slick" / stable_hash([profile.model, asdict(profile.slick), *precision])


def slick_asked_share(runs_dir: Path, profile: Profile) -> float:
    """The share of the profile's SLiCK questions (train and dev, every relation) already asked under `runs_dir`:
    1.0 once its splits are written, else the questions the (resumable) SLiCK records hold."""
    if not profile.use_slick or (splits_folder(runs_dir, profile) / "manifest.json").exists():
        return 1.0
    folder, asked, total = slick_folder(runs_dir, profile), 0, 0
    for split, limit in (("train", profile.train_questions), ("dev", profile.dev_questions)):
        for r in profile.relations:
            wanted = {f.question for f in load_relation(r, split)[:limit]}
            total += len(wanted)
            file = folder / f"{r}.{split}.jsonl"
            if file.exists():
                asked += len(wanted & set(_questions(file)))
    return asked / total if total else 1.0


def _questions(records_file: Path) -> list[str]:
    """The questions of a SLiCK records file (JSONL; a line cut by an interruption is skipped, as SLiCK does)."""
    out = []
    for line in records_file.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line)["question"])
        except (json.JSONDecodeError, KeyError):
            continue
    return out


def _slick_records(profile: Profile, runs_dir: Path) -> tuple[dict, dict]:
    """SLiCK (or, in the micro profile, plain assignment) of the profile's questions → relation → records."""
    train = {r: load_relation(r, "train")[: profile.train_questions] for r in profile.relations}
    dev = {r: load_relation(r, "dev")[: profile.dev_questions] for r in profile.relations}
    if not profile.use_slick:  # micro: no knowledge test; alternate categories so every split has members
        cats = ("HighlyKnown", "Unknown")
        label = lambda facts, d: [{**fact_to_record(f), "category": cats[i % 2] if d else cats[0]}  # noqa: E731
                                  for i, f in enumerate(facts)]
        return ({r: label(v, True) for r, v in train.items()}, {r: label(v, False) for r, v in dev.items()})
    model, tokenizer = load_model(profile.model, device=profile.run.device or default_device(),
                                  dtype=slick_dtype(profile))
    folder = slick_folder(runs_dir, profile)
    pools = {r: load_relation(r, "train") for r in profile.relations}
    slick = Slick(model, tokenizer, pools, profile.slick)
    out = ({}, {})
    for i, (split, facts) in enumerate((("train", train), ("dev", dev))):
        for r, fs in facts.items():
            out[i][r] = run_slick(slick, fs, folder / f"{r}.{split}.jsonl", model_name(profile))
    return out
