"""Whether two checkpoints tokenize text the same way, judged by what changes tokens, not by file bytes.

What counts: the vocabulary and merges (the tokenizer model), added tokens, the normaliser, the pre-tokeniser and
the post-processor of ``tokenizer.json``, and the set of special-token strings (bos, eos, unk, ... and every added
token marked special; not the pad token, which only pads). What does not: the runtime ``truncation`` and
``padding`` settings a Trainer saves with the tokenizer, the decoder, the file's formatting, and how a library
version writes the same tokenizer. Both ``tokenizer.json`` files are read by the installed ``tokenizers`` and
compared as it re-writes them, so the hub's ``"a b"`` merge strings equal the ``["a", "b"]`` pairs of tokenizers
>= 0.20, and a missing ``ignore_merges`` equals its default. Special tokens are read from whichever keys the
transformers version wrote (4.x: ``added_tokens_decoder``, ``additional_special_tokens``,
``special_tokens_map.json``; 5.x: ``extra_special_tokens``). A side without tokenizer config files is not
compared on them. A checkpoint with only a slow tokenizer's files (``vocab.json``, ``merges.txt``,
``tokenizer.model``) is compared by those files' bytes, and only with another such checkpoint.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from .errors import ProbekitError

#: tokenizer.json's parts that change tokens, with the names an error gives them
_PARTS = {"added_tokens": "added tokens", "normalizer": "normaliser", "pre_tokenizer": "pre-tokeniser",
          "post_processor": "post-processor"}
_MODEL_PARTS = {"vocab": "vocabulary", "merges": "merges"}
_SLOW_FILES = ("vocab.json", "merges.txt", "tokenizer.model", "spiece.model")
_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
_EXTRA_KEYS = ("additional_special_tokens", "extra_special_tokens")
FILES = "tokenizer files"
SPECIAL = "special tokens"


@functools.lru_cache(maxsize=4)
def _canonical(text: str) -> dict:
    """tokenizer.json as the installed tokenizers library writes it back (the result is shared: do not change it)."""
    from tokenizers import Tokenizer

    return json.loads(Tokenizer.from_str(text).to_str())


def _fast_parts(file: Path) -> dict[str, object]:
    try:
        spec = _canonical(file.read_text(encoding="utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
        raise ProbekitError(f"{file} cannot be read by the tokenizers library ({str(exc).splitlines()[0]}); "
                            "re-save the tokenizer") from None
    model = spec["model"]
    parts: dict[str, object] = {name: model.get(key) for key, name in _MODEL_PARTS.items()}
    parts["tokenizer model settings"] = {k: v for k, v in model.items() if k not in _MODEL_PARTS}
    parts.update({name: spec.get(key) for key, name in _PARTS.items()})
    return parts


def _strings(value) -> set[str]:
    """The token strings in a config value: a string, an AddedToken dict ({"content": ...}), or a list or a dict
    of named tokens of them."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return {value["content"]} if "content" in value else set().union(*map(_strings, value.values()))
    if isinstance(value, list):
        return set().union(*map(_strings, value))
    return set()


def _special_tokens(path: Path, added_tokens) -> frozenset[str] | None:
    """The special-token strings of the config files (pad left out) and of the added tokens marked special; None
    if the checkpoint saved no tokenizer config."""
    configs = [json.loads((path / name).read_text(encoding="utf-8")) for name in _CONFIG_FILES
               if (path / name).is_file()]
    if not configs:
        return None
    found = {t["content"] for t in added_tokens or () if t.get("special")}
    for cfg in configs:
        for key, value in cfg.items():
            if (key.endswith("_token") and key != "pad_token") or key in _EXTRA_KEYS:
                found |= _strings(value)
        found |= {t["content"] for t in (cfg.get("added_tokens_decoder") or {}).values() if t.get("special")}
    return frozenset(found)


def tokenizer_identity(path: str | Path) -> dict[str, object] | None:
    """The parts of a checkpoint's tokenizer that decide its tokens, by name; None if it saved no tokenizer."""
    path = Path(path)
    if (path / "tokenizer.json").is_file():
        parts = {FILES: "tokenizer.json", **_fast_parts(path / "tokenizer.json")}
    elif slow := [name for name in _SLOW_FILES if (path / name).is_file()]:
        parts = {FILES: ", ".join(slow)}
        parts.update({name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in slow})
    else:
        return None
    try:
        special = _special_tokens(path, parts.get("added tokens"))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ProbekitError(f"{path}: cannot read its tokenizer config ({exc}); re-save the tokenizer") from None
    if special is not None:
        parts[SPECIAL] = special
    return parts


def tokenizer_difference(a: dict[str, object], b: dict[str, object]) -> list[str]:
    """What differs between two tokenizer identities: their files when saved in different forms (a fast tokenizer
    cannot be compared with a slow one), else the names of the parts that disagree (special tokens: which)."""
    if a[FILES] != b[FILES]:
        return [f"{FILES} ({a[FILES]} vs {b[FILES]})"]
    out = []
    for name in sorted(a.keys() & b.keys()):  # special tokens only where both sides saved a tokenizer config
        if a[name] == b[name]:
            continue
        out.append(f"{SPECIAL} ({', '.join(sorted(a[name] ^ b[name]))})" if name == SPECIAL else name)
    return out
