"""The study's data splits from SLiCK results: D_Known, D_Unk, D_Held and held-out MaybeKnown / WeaklyKnown.

Relations are kept when at least ``min_highly_known`` (30%) of their dev questions are HighlyKnown. From the kept
relations, D_Known is a seeded sample of HighlyKnown *train* questions, D_Unk of Unknown train questions, D_Held
of HighlyKnown *dev* questions, and the held-out MaybeKnown / WeaklyKnown sets come from dev too (Appendix A).
The training mix is D_Known ∪ D_Unk (``50/50``) or D_Known alone (``only-known``).

Everything is written as JSONL the probe CLI reads (``{"question", "answers", "entity_span", "relation", ...}``)
with ``manifest.json``: model, SLiCK settings, seed, sizes, kept relations and a content hash of every file.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from probekit.errors import ProbekitError
from probekit.io import write_json, write_jsonl

MIXES = ("50/50", "only-known")


@dataclass(frozen=True)
class SplitConfig:
    """Sizes (None: every eligible question) and the relation filter; the study: 8,000 + 8,000, 30%."""

    known: int = 8000
    unknown: int = 8000
    held: int | None = None
    maybe_known: int | None = None
    weakly_known: int | None = None
    min_highly_known: float = 0.30
    mix: str = "50/50"
    seed: int = 0


def highly_known_share(records: list[dict]) -> float:
    return sum(r["category"] == "HighlyKnown" for r in records) / len(records) if records else 0.0


def keep_relations(dev: dict[str, list[dict]], threshold: float) -> list[str]:
    """Relations whose dev HighlyKnown share is at least `threshold`."""
    return sorted(r for r, recs in dev.items() if highly_known_share(recs) >= threshold)


def _sample(pool: list[dict], size: int | None, name: str, seed: int) -> list[dict]:
    if size is None:
        return list(pool)
    if size > len(pool):
        raise ProbekitError(f"{name}: asked for {size} questions but only {len(pool)} are eligible; ask for fewer "
                            "or classify more questions with SLiCK")
    return random.Random(f"{seed}:{name}").sample(pool, size)


def make_splits(train: dict[str, list[dict]], dev: dict[str, list[dict]], config: SplitConfig) -> dict[str, list[dict]]:
    """Split SLiCK records (relation → records) into the study's sets; disjoint by construction."""
    if config.mix not in MIXES:
        raise ProbekitError(f"mix must be one of {', '.join(MIXES)}, not {config.mix!r}")
    kept = keep_relations(dev, config.min_highly_known)
    if not kept:
        shares = ", ".join(f"{r} {highly_known_share(v):.0%}" for r, v in sorted(dev.items()))
        raise ProbekitError(f"no relation has ≥ {config.min_highly_known:.0%} HighlyKnown dev questions ({shares})")

    def pool(records: dict[str, list[dict]], category: str) -> list[dict]:
        return [r for rel in kept for r in records.get(rel, []) if r["category"] == category]

    s = config.seed
    out = {
        "known": _sample(pool(train, "HighlyKnown"), config.known, "D_Known", s),
        "unknown": _sample(pool(train, "Unknown"), config.unknown, "D_Unk", s),
        "held": _sample(pool(dev, "HighlyKnown"), config.held, "D_Held", s),
        "maybe_known": _sample(pool(dev, "MaybeKnown"), config.maybe_known, "held-out MaybeKnown", s),
        "weakly_known": _sample(pool(dev, "WeaklyKnown"), config.weakly_known, "held-out WeaklyKnown", s),
    }
    train_mix = out["known"] + (out["unknown"] if config.mix == "50/50" else [])
    out["train"] = random.Random(f"{s}:train").sample(train_mix, len(train_mix))
    return out


_KEEP = ("question", "answers", "entity_span", "relation", "category", "p_greedy", "p_sampled")


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path, config: SplitConfig, kept: list[str],
                 provenance: dict) -> dict:
    """Write ``<name>.jsonl`` per split and ``manifest.json``; returns the manifest."""
    out_dir = Path(out_dir)
    hashes = {}
    for name, records in splits.items():
        hashes[name] = write_jsonl(out_dir / f"{name}.jsonl", ({k: r[k] for k in _KEEP if k in r} for r in records))
    manifest = {
        "config": asdict(config), "relations": kept, "sizes": {k: len(v) for k, v in splits.items()},
        "sha256": hashes, **provenance,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest
