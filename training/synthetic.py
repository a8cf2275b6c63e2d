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
Everything is deterministic for a seed. The facts are built column-wise (numpy draws, one batched decode per round,
an Arrow table: no Python object per fact) and ``training.jsonl_columns`` writes them: 10^6 facts take seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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


def decode_batch(tokenizer, seqs: list[list[int]]) -> list[str]:
    """``tokenizer.batch_decode(seqs)``; for a fast tokenizer that does not clean up spaces, the same text from one
    parallel call of its Rust tokenizer (transformers decodes sequence by sequence in Python)."""
    def owner(name: str) -> str:
        return next(c for c in type(tokenizer).__mro__ if name in vars(c)).__module__

    backend = getattr(tokenizer, "backend_tokenizer", None)
    plain = (backend is not None and not getattr(tokenizer, "clean_up_tokenization_spaces", True)
             and owner("_decode").endswith(("tokenization_utils_tokenizers", "tokenization_utils_fast"))
             and owner("decode").endswith("tokenization_utils_base")
             and owner("batch_decode").endswith("tokenization_utils_base"))
    if not plain:
        return tokenizer.batch_decode(seqs)
    return backend.decode_batch(seqs, skip_special_tokens=False)


def _mixes(tokenizer, first: np.ndarray, middle: np.ndarray, last: np.ndarray, three: np.ndarray) -> list[str]:
    """Decoded names [want]: [first, middle, last] where `three`, else [first, last]."""
    names = np.empty(len(first), dtype=object)
    names[three] = np.array(decode_batch(tokenizer, np.stack([first, middle, last], 1)[three].tolist()), dtype=object)
    names[~three] = np.array(decode_batch(tokenizer, np.stack([first, last], 1)[~three].tolist()), dtype=object)
    return names.tolist()


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
        for name in _mixes(tokenizer, first, middle, last, three):
            name = " ".join(name.split())
            key = name.casefold()
            if name and "\ufffd" not in name and key not in taken and key not in seen:
                seen.add(key)
                out.append(name)
                if len(out) == n:
                    return out
    raise ProbekitError(f"could only make {len(out)} distinct token-mix names of {n}; the token pools are too small")


def uuid_labels(prefix: str, n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct ``<prefix>_<8 hex>`` labels (in draw order, repeats skipped)."""
    kept = np.empty(0, dtype=np.uint64)
    while len(kept) < n:
        draws = rng.integers(0, 2**32, n - len(kept) + 8, dtype=np.uint64)
        fresh = np.zeros(len(draws), dtype=bool)
        fresh[np.unique(draws, return_index=True)[1]] = True  # first occurrence in this draw
        fresh &= ~np.isin(draws, kept)
        kept = np.concatenate([kept, draws[fresh][: n - len(kept)]])
    return [f"{prefix}_{v:08x}" for v in kept.tolist()]


def real_p17(root=None) -> tuple[list[str], list[str], set[tuple[str, str]]]:
    """Real P17 place names, countries and (place, country) pairs over all splits."""
    places, countries, pairs = set(), set(), set()
    for split in SPLITS:
        for fact in load_relation(RELATION, split, root):
            places.add(fact.entity)
            countries.update(fact.answers)
            pairs.update((fact.entity.casefold(), a.casefold()) for a in fact.answers)
    return sorted(places), sorted(countries), pairs


def assign_values(keys: list[str], values: list[str], order: np.ndarray, real_pairs: set[tuple[str, str]]) -> list[str]:
    """The value of each key [n]: ``values[order[i % len(values)]]``, moved on to the next in the round-robin
    while (key, value) is a real pair (only a key that is a real place name can be in one)."""
    index = order[np.arange(len(keys)) % len(values)]
    real_places = {place for place, _ in real_pairs}
    for i in [i for i, key in enumerate(keys) if key.casefold() in real_places]:
        j = i
        while (keys[i].casefold(), values[order[j % len(values)]].casefold()) in real_pairs:
            j += 1
        index[i] = order[j % len(values)]
    return np.asarray(values, dtype=object)[index].tolist()


def synthetic_facts(tokenizer, n: int, key_type: str = "semantic", value_type: str = "real", seed: int = 0,
                    root=None):
    """`n` synthetic P17 facts as a ``datasets.Dataset``, one row per fact, columns template, subject, answers
    ([value]), relation, key_type, value_type (write it with ``training.jsonl_columns.write_jsonl_columns``)."""
    import datasets

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
    answers = assign_values(keys, values, rng.permutation(len(values)), real_pairs)
    return datasets.Dataset(pa.table({
        "template": pa.repeat(templates(root)[RELATION], n), "subject": pa.array(keys, pa.string()),
        "answers": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(answers, pa.string())),
        "relation": pa.repeat(RELATION, n), "key_type": pa.repeat(key_type, n), "value_type": pa.repeat(value_type, n),
    }))
