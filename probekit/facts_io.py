"""Read a table of fact records through Hugging Face ``datasets``, whatever holds it.

A source is a JSONL / JSON file (``.jsonl``, ``.json``, optionally ``.gz``: one object per line, or one list of
objects), a ``.csv`` or ``.parquet`` file, a folder written by ``Dataset.save_to_disk``, or a ``datasets.Dataset``.
Files are parsed into a temporary Arrow cache that is removed afterwards: nothing is left in the user's
``datasets`` cache.

``read_table`` gives the table column-wise (one Arrow type per column). ``read_records`` gives each fact record
as its source holds it, with where it comes from (``file:line`` for JSON lines, ``file row N`` otherwise): a JSON
or JSONL file is read as lines of text through ``datasets`` and each line parsed on its own, so one record's
``answers`` may be a string and another's a list, and a nested dict keeps exactly its own keys (Arrow would give
it every key any row has, as nulls). Rows of the other sources come without the null cells that Arrow adds where a
row lacks a column; in CSV, a cell holding a JSON list (``["Italy", "Italia"]``) is read as a list, so
``answers`` and ``entity_span`` work there too.
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


def _load_file(path: Path, builder: str | None = None, **options):
    builder = builder or _BUILDERS.get(_suffix(path))
    if builder is None:
        raise ProbekitError(f"{path}: unknown facts format; give .jsonl, .json, .csv, .parquet or a save_to_disk "
                            "folder")
    _check_utf8(path)
    if path.stat().st_size == 0:
        raise ProbekitError(f"{path} holds no facts")
    with _quiet_datasets() as datasets, tempfile.TemporaryDirectory(prefix="probekit-facts-") as cache:
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache,
                                         keep_in_memory=True, **options)
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


def read_records(source) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` for every fact record of `source` (see the module docstring)."""
    path = Path(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else None
    if path is not None and path.is_file() and _BUILDERS.get(_suffix(path)) == "json":
        yield from _json_records(path)
        return
    where = source if isinstance(source, (str, os.PathLike)) else "dataset"
    for row, record in enumerate(records(read_table(source)), 1):
        yield f"{where} row {row}", record


def _json_records(path: Path) -> Iterator[tuple[str, dict]]:
    """The records of a JSON lines file (or of a file holding one JSON list of records), each parsed alone."""
    from datasets import Features, Value

    lines = _load_file(path, "text", features=Features({"text": Value("string")})).data.column("text").to_pylist()
    if next((line for line in lines if line.strip()), "").lstrip().startswith("["):  # one JSON list
        items = _parse("\n".join(lines), str(path))
        if not isinstance(items, list):
            raise ProbekitError(f"{path}: expected JSON lines or one JSON list of records")
        numbered = ((f"{path} record {i}", item) for i, item in enumerate(items, 1))
    else:
        numbered = ((f"{path}:{i}", _parse(line, f"{path}:{i}")) for i, line in enumerate(lines, 1) if line.strip())
    for where, record in numbered:
        if not isinstance(record, dict):
            raise ProbekitError(f"{where}: a fact must be a JSON object, not {type(record).__name__}")
        yield where, record


def _parse(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProbekitError(f"{where}: not valid JSON ({exc.msg})") from None
