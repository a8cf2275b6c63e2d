"""Read a table of fact records through Hugging Face ``datasets``, whatever holds it.

A source is a JSONL / JSON file (``.jsonl``, ``.json``, optionally ``.gz``: one object per line, or one list of
objects), a ``.csv`` or ``.parquet`` file, a folder written by ``Dataset.save_to_disk``, or a ``datasets.Dataset``.
Files are parsed into a temporary Arrow cache that is removed afterwards: nothing is left in the user's
``datasets`` cache. Columns are read column-wise; ``records`` yields one dict per row without the null cells that
Arrow adds where a row lacks a column. In CSV, a cell holding a JSON list (``["Italy", "Italia"]``) is read as a
list, so ``answers`` and ``entity_span`` work there too.
"""
from __future__ import annotations

import codecs
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ProbekitError

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_LIST_COLUMNS = ("answers", "entity_span")


def _suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lower() if suffixes else ""


def _check_utf8(path: Path) -> None:
    """A text file that is not UTF-8 is an error naming the file and the byte where decoding failed."""
    if path.suffix == ".gz" or _suffix(path) == ".parquet":
        return
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise ProbekitError(f"{path} is not UTF-8 text (byte {offset + exc.start}); save it as UTF-8") from None
            offset += len(chunk)


@contextmanager
def _quiet_datasets():
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield datasets
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _load_file(path: Path):
    builder = _BUILDERS.get(_suffix(path))
    if builder is None:
        raise ProbekitError(f"{path}: unknown facts format; give .jsonl, .json, .csv, .parquet or a save_to_disk "
                            "folder")
    _check_utf8(path)
    with _quiet_datasets() as datasets, tempfile.TemporaryDirectory(prefix="probekit-facts-") as cache:
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache,
                                         keep_in_memory=True)
        except StopIteration:  # the json builder finds no first record
            raise ProbekitError(f"{path} holds no facts") from None
        except datasets.exceptions.DatasetGenerationError as exc:
            cause = str(exc.__cause__ or exc)
            row = re.search(r"in row (\d+)", cause)
            where = f"{path}:{int(row.group(1)) + 1}" if row and builder == "json" else str(path)
            raise ProbekitError(f"{where}: cannot read facts ({cause.splitlines()[-1]})") from None


def read_table(source):
    """The facts table of `source` (path, save_to_disk folder or ``datasets.Dataset``) as a ``datasets.Dataset``."""
    import datasets

    if isinstance(source, datasets.DatasetDict):
        raise ProbekitError(f"give one split of the DatasetDict ({', '.join(source)}), not all of them")
    if isinstance(source, datasets.Dataset):
        return source
    path = Path(os.fspath(source))
    if path.is_dir():
        try:
            table = datasets.load_from_disk(str(path), keep_in_memory=True)
        except FileNotFoundError:
            raise ProbekitError(f"{path} is a folder but not one written by Dataset.save_to_disk") from None
        if isinstance(table, datasets.DatasetDict):
            raise ProbekitError(f"{path} holds several splits ({', '.join(table)}); give one split's folder")
        return table
    if not path.is_file():
        raise ProbekitError(f"facts file not found: {path}")
    return _load_file(path)


def _cell(column: str, value):
    if column in _LIST_COLUMNS and isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def records(table) -> Iterator[dict]:
    """The rows of a facts table as dicts, without null cells (a column that row does not have)."""
    columns = table.column_names
    for batch in table.iter(batch_size=4096):
        for values in zip(*(batch[c] for c in columns)):
            yield {c: _cell(c, v) for c, v in zip(columns, values) if v is not None}
