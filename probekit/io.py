"""Files written atomically (a reader never sees a half-written file or folder, an interrupted write leaves the old
one), stable hashes that key caches, and tensor caches: safetensors files stamped with the key they were computed
from."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def stable_hash(obj, length: int | None = 12) -> str:
    """sha256 of `obj` as canonical JSON (sorted keys, non-JSON values as str), first `length` hex digits."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:length] if length else digest


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; rename it onto `path` only if the block succeeds."""
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


@contextmanager
def atomic_dir(path: str | os.PathLike, *, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`, of a name no other writer uses; if the block succeeds it
    replaces `path` (whose old contents stay whole until the swap); if it fails, `path` is untouched and the
    temporary folder is removed.

    `keep_existing`: for a cache whose contents follow from its key (`path`), a `path` that another process wrote
    meanwhile is kept (the first writer wins) and this block's folder is discarded."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = _unique_name(path, "tmp"), None
    tmp.mkdir()
    try:
        yield tmp
        if keep_existing and path.exists():
            return
        if path.exists():
            old = _unique_name(path, "old")
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None and not path.exists():
                os.replace(old, path)  # the old contents back
            if not (keep_existing and path.exists()):  # not another writer of the same cache winning the race
                raise
    finally:
        for folder in (tmp, old):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def _unique_name(path: Path, suffix: str) -> Path:
    """``.<name>.<random>.<suffix>`` beside `path`: a name no other writer picks."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex}.{suffix}"


def write_text(path: str | os.PathLike, text: str) -> str:
    """Write UTF-8 text atomically; returns the sha256 of what was written."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_jsonl(path: str | os.PathLike, records) -> str:
    """Write dicts as JSON lines (UTF-8, non-ASCII kept) atomically; returns the sha256 of what was written."""
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and fsync it: a crash loses at most the line being written."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_tensors(path: str | os.PathLike, tensors: dict, key: str, **metadata: str) -> None:
    """Save tensors as safetensors atomically, stamped with `key` (and any other string metadata)."""
    from safetensors.torch import save_file

    with atomic_write(path) as tmp:
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


def tensors_key(path: str | os.PathLike) -> str | None:
    """The key a tensor file was stamped with (None: no file, or no key), without reading its tensors."""
    from safetensors import safe_open

    if not Path(path).is_file():
        return None
    with safe_open(path, "pt") as fh:
        return (fh.metadata() or {}).get("key")
