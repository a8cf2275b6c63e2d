"""Synthetic P17 facts (Appendix E): new place names that look real ("Bergadena") or are random ("Loc_fcfb46ee").

Keys:
- ``semantic``: token-mix names. Every real P17 place name is tokenized with the *model's* tokenizer; names of two
  or more tokens give three position-aware pools (first tokens, middle tokens, last tokens). A new name is
  [first, last] or [first, middle, last] drawn from the pools and decoded; any name equal to a real place name
  (case-insensitive) is rejected, as are repeats.
- ``uuid``: ``Loc_<8 hex>``.

Values (Table 4): ``real`` countries from P17, ``semantic`` token-mix country names (the same process on the country
names), or ``uuid`` labels ``Country_<8 hex>``. Values are assigned in a shuffled round-robin over the value list,
so each appears equally often (±1), and never as a (place, country) pair that the dataset already has.
Everything is deterministic for a seed, and 10^6 facts take seconds (numpy draws, one batched decode per round).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from probekit.errors import ProbekitError

from .entityquestions import SPLITS, load_relation, templates

RELATION = "P17"
KEY_TYPES = ("semantic", "uuid")
VALUE_TYPES = ("real", "semantic", "uuid")


@dataclass
class TokenPools:
    """Position-aware token pools from multi-token names (token ids of the model's tokenizer)."""

    first: np.ndarray
    middle: np.ndarray
    last: np.ndarray


def token_pools(tokenizer, names: list[str]) -> TokenPools:
    first, middle, last = set(), set(), set()
    for ids in tokenizer(names, add_special_tokens=False)["input_ids"]:
        if len(ids) >= 2:
            first.add(ids[0])
            middle.update(ids[1:-1])
            last.add(ids[-1])
    if not first or not last:
        raise ProbekitError("no multi-token names to build token pools from")
    as_array = lambda s: np.array(sorted(s), dtype=np.int64)  # noqa: E731
    return TokenPools(as_array(first), as_array(middle), as_array(last))


def token_mix_names(tokenizer, pools: TokenPools, n: int, forbidden: set[str], rng: np.random.Generator) -> list[str]:
    """`n` distinct token-mix names, none equal (case-insensitively) to a forbidden name."""
    taken = {f.casefold() for f in forbidden}
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(50):
        want = int((n - len(out)) * 1.3) + 16
        three = rng.random(want) < 0.5 if len(pools.middle) else np.zeros(want, dtype=bool)
        first = pools.first[rng.integers(0, len(pools.first), want)]
        last = pools.last[rng.integers(0, len(pools.last), want)]
        middle = pools.middle[rng.integers(0, max(len(pools.middle), 1), want)] if len(pools.middle) else first
        seqs = [[f, m, la] if t else [f, la] for f, m, la, t in zip(first.tolist(), middle.tolist(),
                                                                    last.tolist(), three.tolist())]
        for name in tokenizer.batch_decode(seqs):
            name = " ".join(name.split())
            key = name.casefold()
            if name and "\ufffd" not in name and key not in taken and key not in seen:
                seen.add(key)
                out.append(name)
                if len(out) == n:
                    return out
    raise ProbekitError(f"could only make {len(out)} distinct token-mix names of {n}; the token pools are too small")


def uuid_labels(prefix: str, n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct ``<prefix>_<8 hex>`` labels."""
    out: list[str] = []
    seen: set[int] = set()
    while len(out) < n:
        for v in rng.integers(0, 2**32, n - len(out) + 8, dtype=np.uint64).tolist():
            if v not in seen:
                seen.add(v)
                out.append(f"{prefix}_{v:08x}")
                if len(out) == n:
                    break
    return out


def real_p17(root=None) -> tuple[list[str], list[str], set[tuple[str, str]]]:
    """Real P17 place names, countries and (place, country) pairs over all splits."""
    places, countries, pairs = set(), set(), set()
    for split in SPLITS:
        for fact in load_relation(RELATION, split, root):
            places.add(fact.entity)
            countries.update(fact.answers)
            pairs.update((fact.entity.casefold(), a.casefold()) for a in fact.answers)
    return sorted(places), sorted(countries), pairs


def synthetic_facts(tokenizer, n: int, key_type: str = "semantic", value_type: str = "real", seed: int = 0,
                    root=None) -> list[dict]:
    """`n` synthetic P17 facts as records ``{"template", "subject", "answers", "relation", "key_type", ...}``."""
    if key_type not in KEY_TYPES or value_type not in VALUE_TYPES:
        raise ProbekitError(f"key type must be one of {KEY_TYPES} and value type one of {VALUE_TYPES}")
    rng = np.random.default_rng(seed)
    places, countries, real_pairs = real_p17(root)
    if key_type == "semantic":
        keys = token_mix_names(tokenizer, token_pools(tokenizer, places), n, set(places), rng)
    else:
        keys = uuid_labels("Loc", n, rng)
    if value_type == "real":
        values = countries
    elif value_type == "semantic":
        values = token_mix_names(tokenizer, token_pools(tokenizer, countries), len(countries), set(countries), rng)
    else:
        values = uuid_labels("Country", len(countries), rng)
    order = rng.permutation(len(values))
    template = templates(root)[RELATION]
    facts = []
    for i, key in enumerate(keys):
        j = i
        value = values[order[j % len(values)]]
        while (key.casefold(), value.casefold()) in real_pairs:  # never an existing (place, country) pair
            j += 1
            value = values[order[j % len(values)]]
        facts.append({"template": template, "subject": key, "answers": [value], "relation": RELATION,
                      "key_type": key_type, "value_type": value_type})
    return facts

