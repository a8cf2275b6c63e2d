"""JSON lines written from a table's columns: the bytes ``probekit.io.write_jsonl`` writes for the same rows (keys
in column order, UTF-8 kept), built column by column (each distinct string is JSON-encoded once; no dict per row).
Columns hold strings or lists of strings, without nulls.
"""
from __future__ import annotations

import os
from json.encoder import encode_basestring  # json.dumps(..., ensure_ascii=False)'s string encoder

import numpy as np
import pyarrow as pa

from probekit.errors import ProbekitError
from probekit.io import write_text


def _strings(array: pa.Array) -> np.ndarray:
    """JSON text of each string of `array` [N] (object array)."""
    codes = array.dictionary_encode()
    texts = np.array([encode_basestring(v) for v in codes.dictionary.to_pylist()], dtype=object)
    return texts[codes.indices.to_numpy()]


def json_cells(name: str, column: pa.ChunkedArray) -> np.ndarray:
    """JSON text of every cell of a string or list-of-strings column [N] (object array)."""
    array = column.combine_chunks()
    if array.null_count:
        raise ProbekitError(f"column {name!r} has empty cells; JSON lines are written from complete columns")
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return _strings(array)
    if pa.types.is_list(array.type) and pa.types.is_string(array.type.value_type):
        items, offsets = _strings(array.values), array.offsets.to_numpy()
        if (np.diff(offsets) == 1).all():  # one item per row
            return "[" + items[offsets[:-1]] + "]"
        return np.array(["[" + ", ".join(items[a:b]) + "]" for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)
    raise ProbekitError(f"column {name!r} is {array.type}; JSON lines are written from string or list<string> columns")


def write_jsonl_columns(path: str | os.PathLike, table) -> str:
    """Write the rows of `table` (a ``datasets.Dataset`` or ``pyarrow.Table``) as JSON lines, atomically; returns
    the sha256 of what was written (as ``write_jsonl`` does)."""
    if not isinstance(table, pa.Table):  # a datasets.Dataset: its rows (any selection applied) as Arrow
        table = table.with_format("arrow")[:]
    lines = np.full(table.num_rows, "{", dtype=object)
    for i, name in enumerate(table.column_names):
        lines = lines + (", " if i else "") + encode_basestring(name) + ": " + json_cells(name, table.column(name))
    return write_text(path, "".join((lines + "}\n").tolist()))
