"""Atomic file writes: a reader never sees a half-written file, an interrupted write leaves the old one.
Tensor caches are safetensors files stamped with a key (what they were computed from)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl(path: str | os.PathLike, records) -> str:
    """Write dicts as JSON lines (UTF-8, non-ASCII kept) atomically; returns the sha256 of what was written."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    write_text(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_tensors(path: str | os.PathLike, tensors: dict, key: str, **metadata: str) -> None:
    """Save tensors as safetensors atomically, stamped with `key` (and any other string metadata)."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"key": key, **metadata})


def read_tensors(path: str | os.PathLike, key: str | None = None) -> dict | None:
    """The tensors saved at `path`; None if there is no file or (when `key` is given) it was stamped otherwise."""
    from safetensors import safe_open

    if not Path(path).is_file():
        return None
    with safe_open(path, "pt") as fh:
        if key is not None and (fh.metadata() or {}).get("key") != key:
            return None
        return {k: fh.get_tensor(k) for k in fh.keys()}
