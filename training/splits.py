"""The study's data splits from SLiCK results: D_Known, D_Unk, D_Held and held-out MaybeKnown / WeaklyKnown.

Relations are kept when at least ``min_highly_known`` (30%) of their dev questions are HighlyKnown. From the kept
relations, D_Known is a seeded sample of HighlyKnown *train* questions, D_Unk of Unknown train questions, D_Held
of HighlyKnown *dev* questions, and the held-out MaybeKnown / WeaklyKnown sets come from dev too (Appendix A).
The training mix is D_Known ∪ D_Unk (``50/50``) or D_Known alone (``only-known``).

A pool smaller than asked is taken whole and recorded as a *shortfall*; a ``50/50`` mix whose share of D_Known
ends up more than 10 points from the asked share is refused unless ``allow_short`` is set.

Everything is written as JSONL the probe CLI reads (``{"question", "answers", "entity_span", "relation", ...}``)
with ``manifest.json``: model, SLiCK settings, seed, sizes, shortfalls, kept relations and a content hash of every
file.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from probekit.config import option
from probekit.errors import ProbekitError
from probekit.io import write_json, write_jsonl

MIXES = ("50/50", "only-known")
POOLS = {  # split → (SLiCK split, category, name; the name also seeds its sample)
    "known": ("train", "HighlyKnown", "D_Known"),
    "unknown": ("train", "Unknown", "D_Unk"),
    "held": ("dev", "HighlyKnown", "D_Held"),
    "maybe_known": ("dev", "MaybeKnown", "held-out MaybeKnown"),
    "weakly_known": ("dev", "WeaklyKnown", "held-out WeaklyKnown"),
}
MAX_SHARE_GAP = 0.10  # the most D_Known's share of the 50/50 mix may differ from the asked share


@dataclass(frozen=True)
class SplitConfig:
    """Sizes (None: every eligible question) and the relation filter; the study: 8,000 + 8,000, 30%.
    `allow_short`: accept a 50/50 mix that short pools put more than 10 points off the asked share."""

    known_size: int = option(8000, "D_Known: HighlyKnown train questions sampled (at most those available)")
    unknown_size: int = option(8000, "D_Unk: Unknown train questions sampled (at most those available)")
    held_size: int | None = option(None, "D_Held: HighlyKnown dev questions sampled (unset: all)")
    maybe_known_size: int | None = option(None, "held-out MaybeKnown dev questions sampled (unset: all)")
    weakly_known_size: int | None = option(None, "held-out WeaklyKnown dev questions sampled (unset: all)")
    min_highly_known: float = option(0.30, "keep a relation if at least this share of its dev questions is "
                                     "HighlyKnown")
    mix: str = option("50/50", "training mix: D_Known ∪ D_Unk, or D_Known only", choices=MIXES)
    seed: int = option(0, "sampling seed")
    allow_short: bool = option(False, "train on D_Known ∪ D_Unk even when short pools put D_Known's share more than "
                               "10 points from the asked share")

    def asked(self) -> dict[str, int | None]:
        """Split → the size asked for (None: all)."""
        return {name: getattr(self, f"{name}_size") for name in POOLS}


def highly_known_share(records: list[dict]) -> float:
    return sum(r["category"] == "HighlyKnown" for r in records) / len(records) if records else 0.0


def keep_relations(dev: dict[str, list[dict]], threshold: float) -> list[str]:
    """Relations whose dev HighlyKnown share is at least `threshold`."""
    return sorted(r for r, recs in dev.items() if highly_known_share(recs) >= threshold)


def _sample(pool: list[dict], size: int | None, name: str, seed: int) -> list[dict]:
    """`size` questions of `pool` (seeded by `name`); all of a pool smaller than asked, in seeded order."""
    if size is None:
        return list(pool)
    return random.Random(f"{seed}:{name}").sample(pool, min(size, len(pool)))


def shortfalls(asked: dict[str, int | None], sizes: dict[str, int]) -> dict[str, dict[str, int]]:
    """Splits smaller than asked → {"asked", "available", "used"}. A short split takes its whole pool, so the
    questions available are those used."""
    return {name: {"asked": n, "available": sizes[name], "used": sizes[name]}
            for name, n in asked.items() if n is not None and sizes[name] < n}


def known_shares(asked: dict[str, int | None], sizes: dict[str, int]) -> tuple[float, float]:
    """D_Known's share of D_Known ∪ D_Unk: (asked, realised); an unset size counts as the size used."""
    def share(known: int, unknown: int) -> float:
        return known / (known + unknown) if known + unknown else 0.0

    want = {name: sizes[name] if asked.get(name) is None else asked[name] for name in ("known", "unknown")}
    return share(want["known"], want["unknown"]), share(sizes["known"], sizes["unknown"])


def check_mix(asked: dict[str, int | None], sizes: dict[str, int]) -> None:
    """Refuse a D_Known ∪ D_Unk mix whose share of D_Known is more than 10 points from the asked share."""
    want, got = known_shares(asked, sizes)
    if round(abs(got - want), 9) <= MAX_SHARE_GAP:
        return
    short = "; ".join(f"{POOLS[name][2]}: asked for {s['asked']:,} questions but only {s['available']:,} are eligible"
                      for name, s in shortfalls(asked, sizes).items() if name in ("known", "unknown"))
    raise ProbekitError(f"training mix: D_Known would be {got:.1%} of D_Known ∪ D_Unk, not the {want:.1%} asked "
                        f"({short}); pass --allow-short to train on it anyway, or ask for sizes that exist")


def make_splits(train: dict[str, list[dict]], dev: dict[str, list[dict]], config: SplitConfig) -> dict[str, list[dict]]:
    """Split SLiCK records (relation → records) into the study's sets; disjoint by construction."""
    if config.mix not in MIXES:
        raise ProbekitError(f"mix must be one of {', '.join(MIXES)}, not {config.mix!r}")
    kept = keep_relations(dev, config.min_highly_known)
    if not kept:
        shares = ", ".join(f"{r} {highly_known_share(v):.0%}" for r, v in sorted(dev.items()))
        raise ProbekitError(f"no relation has ≥ {config.min_highly_known:.0%} HighlyKnown dev questions ({shares})")
    records = {"train": train, "dev": dev}
    out = {}
    for name, (split, category, label) in POOLS.items():
        pool = [r for rel in kept for r in records[split].get(rel, []) if r["category"] == category]
        out[name] = _sample(pool, config.asked()[name], label, config.seed)
    if config.mix == "50/50" and not config.allow_short:
        check_mix(config.asked(), {name: len(v) for name, v in out.items()})
    train_mix = out["known"] + (out["unknown"] if config.mix == "50/50" else [])
    out["train"] = random.Random(f"{config.seed}:train").sample(train_mix, len(train_mix))
    return out


_KEEP = ("question", "answers", "entity_span", "relation", "category", "p_greedy", "p_sampled")


def write_splits(splits: dict[str, list[dict]], out_dir: str | Path, config: SplitConfig, kept: list[str],
                 provenance: dict) -> dict:
    """Write ``<name>.jsonl`` per split and ``manifest.json`` (with the shortfalls of `config`'s sizes, {} when
    none); returns the manifest."""
    out_dir = Path(out_dir)
    hashes = {}
    for name, records in splits.items():
        hashes[name] = write_jsonl(out_dir / f"{name}.jsonl", ({k: r[k] for k in _KEEP if k in r} for r in records))
    sizes = {k: len(v) for k, v in splits.items()}
    manifest = {
        "config": asdict(config), "relations": kept, "sizes": sizes,
        "shortfalls": shortfalls(config.asked(), sizes), "sha256": hashes, **provenance,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest
