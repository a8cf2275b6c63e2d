"""Whether two checkpoints tokenize text the same way, judged by what changes tokens, not by file bytes.

What counts: the vocabulary and merges (the tokenizer model), added and special tokens, the normaliser, the
pre-tokeniser and the post-processor of ``tokenizer.json``; the special tokens of ``tokenizer_config.json`` /
``special_tokens_map.json`` (bos, eos, unk, ... but not the pad token, which only pads); the bytes of a slow
tokenizer's files (``vocab.json``, ``merges.txt``, ``tokenizer.model``). What does not: the runtime
``truncation`` and ``padding`` settings a Trainer saves with the tokenizer, the decoder, the file's formatting.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

#: tokenizer.json's parts that change tokens, with the names an error gives them
_PARTS = {"added_tokens": "added tokens", "normalizer": "normaliser", "pre_tokenizer": "pre-tokeniser",
          "post_processor": "post-processor"}
_MODEL_PARTS = {"vocab": "vocabulary", "merges": "merges"}
_SLOW_FILES = ("vocab.json", "merges.txt", "tokenizer.model", "spiece.model")
_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json")
_SPECIAL_KEYS = ("additional_special_tokens", "extra_special_tokens", "added_tokens_decoder")


def _read_json(file: Path) -> dict | None:
    try:
        return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        return {"unreadable": file.name}


def _special_tokens(path: Path) -> dict | None:
    """bos/eos/unk/... tokens and additional special tokens from the tokenizer's config files (pad left out)."""
    found = None
    for name in _CONFIG_FILES:
        cfg = _read_json(path / name)
        if cfg is None:
            continue
        found = found or {}
        for key, value in cfg.items():
            if ((key.endswith("_token") and key != "pad_token") or key in _SPECIAL_KEYS) and value:
                found[key] = value  # an empty list or null is no special token
    return found


def tokenizer_identity(path: str | Path) -> dict[str, object] | None:
    """The parts of a checkpoint's tokenizer that decide its tokens, by name; None if it saved no tokenizer."""
    path = Path(path)
    parts: dict[str, object] = {}
    if (spec := _read_json(path / "tokenizer.json")) is not None:
        model = spec.get("model") or {}
        for key, name in _MODEL_PARTS.items():
            parts[name] = model.get(key)
        parts["tokenizer model settings"] = {k: v for k, v in model.items() if k not in _MODEL_PARTS}
        for key, name in _PARTS.items():
            parts[name] = spec.get(key)
    for name in _SLOW_FILES:
        if (path / name).is_file():
            parts[name] = hashlib.sha256((path / name).read_bytes()).hexdigest()
    if not parts:
        return None
    parts["special tokens"] = _special_tokens(path)
    return parts


def tokenizer_difference(a: dict[str, object], b: dict[str, object]) -> list[str]:
    """Names of the parts two tokenizer identities both have and disagree on (special tokens: which ones)."""
    out = []
    for name in a.keys() & b.keys():
        if a[name] == b[name] or a[name] is None or b[name] is None:
            continue
        if name == "special tokens":
            keys = sorted(k for k in a[name].keys() | b[name].keys() if a[name].get(k) != b[name].get(k))
            out.append(f"special tokens ({', '.join(keys)})")
        else:
            out.append(name)
    return sorted(out)
