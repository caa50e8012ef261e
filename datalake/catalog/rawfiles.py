"""Reading a landing folder in place: every file parsed once into an Arrow table.

The table is cached per process and keyed by each file's name, size and mtime, so
a new or replaced file is seen on the next request. DuckDB then runs the query
grammar's SQL over it (see `datalake.api.filequery`).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import threading
from datetime import UTC
from decimal import Decimal, InvalidOperation
from pathlib import Path

import orjson
import pyarrow as pa
from django.utils.dateparse import parse_datetime

from datalake.catalog import files

ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "decimal": pa.float64(),
    "timestamp": pa.timestamp("us"),  # naive UTC: DuckDB without ICU has no time zones
    "array": pa.list_(pa.string()),
}

_cache: dict[str, tuple[tuple, pa.Table]] = {}
_lock = threading.Lock()


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")


def iter_records(path: Path):
    """(line number, dict) for every record of a JSON-lines or CSV file that parses."""
    with _open_text(path) as handle:
        if ".csv" in path.name:
            reader = csv.reader(handle)
            header = next(reader, None) or []
            names = [(i, h.strip()) for i, h in enumerate(header) if h.strip()]
            for row in reader:
                if row:
                    yield reader.line_num, {n: row[i] if i < len(row) else None for i, n in names}
            return
        for number, line in enumerate(handle, start=1):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield number, record


INT64 = (-(2**63), 2**63 - 1)


def _to_int(value):
    """An integer the int64 column holds, else null (as any value that is not one)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 40:
        value = int(value)
    if isinstance(value, int) and INT64[0] <= value <= INT64[1]:
        return value
    return None


def _to_float(value):
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None  # JSON has no inf or nan


def _to_timestamp(value):
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    try:  # valid ISO that leaves the calendar in UTC (0001-01-01T00:00:00+14:00)
        return parsed.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return None


def _to_array(value):
    return [str(v) for v in value] if isinstance(value, list) else None


def _to_string(value):
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if isinstance(value, (dict, list)) else str(value)


CONVERTERS = {
    "string": _to_string,
    "integer": _to_int,
    "decimal": _to_float,
    "timestamp": _to_timestamp,
    "array": _to_array,
}


def _signature(paths: list[Path]) -> tuple:
    stats = []
    for p in paths:
        st = p.stat()
        stats.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(stats)


def _build(paths: list[Path], schema) -> pa.Table:
    names = [n for n, _ in schema]
    convert = [CONVERTERS[t] for _, t in schema]
    cols: dict[str, list] = {"_file": [], "_line": [], **{n: [] for n in names}}
    for path in paths:
        for line, record in iter_records(path):
            cols["_file"].append(path.name)
            cols["_line"].append(line)
            for name, conv in zip(names, convert, strict=True):
                cols[name].append(conv(record.get(name)))
    arrow_schema = pa.schema(
        [("_file", pa.string()), ("_line", pa.int64())] + [(n, ARROW_TYPES[t]) for n, t in schema]
    )
    return pa.table(cols, schema=arrow_schema)


def load_folder(source: str) -> pa.Table:
    """The whole folder as one Arrow table (`_file`, `_line` and the schema's columns)."""
    return loaded_folder(source)[1]


def loaded_folder(source: str) -> tuple[tuple, pa.Table]:
    """(signature, table): the table and the files' names, sizes and times it was read from."""
    paths = files.folder_files(source)
    signature = _signature(paths)
    cached = _cache.get(source)
    if cached and cached[0] == signature:
        return cached
    with _lock:
        table = _build(paths, files.folder_schema(source))
        _cache[source] = (signature, table)
    return signature, table


def folder_signature(source: str) -> tuple:
    """The folder's files as (name, size, mtime in ns): what names its state."""
    return _signature(files.folder_files(source))


_inferred: dict[str, tuple[tuple, list[str]]] = {}


def inferred_columns(source: str, sample: int = 1000) -> list[str]:
    """Column names of an undeclared folder: the keys seen in the first records of each file."""
    paths = files.folder_files(source)
    signature = _signature(paths)
    cached = _inferred.get(source)
    if cached and cached[0] == signature:
        return cached[1]
    names = _scan_keys(paths, sample)
    _inferred[source] = (signature, names)
    return names


def _scan_keys(paths: list[Path], sample: int) -> list[str]:
    seen: dict[str, None] = {}
    for path in paths:
        for count, (_line, record) in enumerate(iter_records(path)):
            seen.update(dict.fromkeys(record))
            if count >= sample:
                break
    return [n for n in seen if n and not n.startswith("_")]


def file_row_count(source: str) -> int | None:
    """Records in the folder if already loaded, else None (the catalog will not parse for it)."""
    cached = _cache.get(source)
    if cached and cached[0] == _signature(files.folder_files(source)):
        return cached[1].num_rows
    return None


def records_at(source: str, file: str, lines: set[int]) -> dict[int, dict]:
    """The records at these line numbers of one file of a landing folder, typed as the raw
    rows endpoint gives them (`_file`, `_line`, the folder's columns; timestamps in UTC).

    Reads the file once, up to the last line wanted, and parses only the lines wanted
    (CSV: every record, its quoted fields may span lines): memory does not grow with
    the file, and the folder is not loaded. A file not in the folder gives nothing.
    """
    path = next((p for p in files.folder_files(source) if p.name == file), None)
    if path is None or not lines:
        return {}
    schema = files.folder_schema(source)
    found = {}
    for number, record in _records_at(path, lines, max(lines)):
        row = {"_file": file, "_line": number}
        for name, kind in schema:
            value = CONVERTERS[kind](record.get(name))
            row[name] = value.replace(tzinfo=UTC) if kind == "timestamp" and value else value
        found[number] = row
    return found


def _records_at(path: Path, wanted: set[int], last: int):
    if ".csv" in path.name:
        for number, record in iter_records(path):
            if number in wanted:
                yield number, record
            if number >= last:
                return
        return
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if number in wanted:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    record = None
                if isinstance(record, dict):
                    yield number, record
            if number >= last:
                return
