"""Exports of `rows/`: the whole result of a `RowQuery` as Arrow record batches, streamed.

A JSON page is 10 rows; an export is every row of the same query (filters, projection,
ordering, the caller's restriction), read with bounded memory:

- tables: one statement, `COPY (<the compiled SELECT of the pages>) TO STDOUT (FORMAT
  csv)` through psycopg's `cursor.copy()`, parsed block by block by pyarrow's CSV reader
  with the columns' Arrow types (`LAKE_EXPORT_BATCH_ROWS` rows a block, about). No
  OFFSET, no server-side cursor round trips: COPY is PostgreSQL's fastest way out. The
  export runs in one REPEATABLE READ, READ ONLY transaction on a connection of its own,
  opened when the export is (so the version it reports, `data_version`, is the state it
  streams) and closed when the stream ends or is closed; its statements have
  `LAKE_EXPORT_STATEMENT_TIMEOUT_MS` (a client that stops reading holds the COPY).
- raw-file folders: the page SQL over DuckDB's in-memory Arrow table, read as record
  batches.

Every batch then shows what the JSON pages show: array columns as lists, masked columns
as the same pseudonyms (`Restriction.mask_arrow`, each distinct value of a batch hashed
once); hidden columns are never selected and row filters are in the SQL, as for pages.

Quotas: `limit` stops after that many rows and `on_batch(n)` is called with the size of
each batch before it is handed on (it may raise to stop the stream); the row quota
(`accounts.quotas`) is meant to plug in there.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
from django.conf import settings
from django.db import connections

from datalake.platform import replicas
from datalake.query.backends import FileBackend, backend_for, ident
from datalake.query.grammar import RowQuery

ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "boolean": pa.bool_(),
    "array": pa.list_(pa.string()),
}
VERSION_SQL = "SELECT current_version FROM datalake_resource WHERE name = %s"
BYTES_PER_ROW = 64  # the CSV block read per batch: LAKE_EXPORT_BATCH_ROWS x this


class Export:
    """The rows of one query, ready to stream: `schema`, `data_version`, `batches()`.

    Open it where the response is made (the transaction starts there); iterate
    `batches()` once; `close()` ends the transaction if the stream never ran. Its
    connection cannot see a caller's uncommitted transaction.
    """

    def __init__(
        self,
        query: RowQuery,
        version: int | None = None,
        *,
        limit: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.query = query
        self.backend = backend_for(query, version)
        self.limit = limit
        self.on_batch = on_batch
        self.schema = pa.schema(
            [(n, pa.string() if n in query.restriction.masked else self._type(n))
             for n in query.fields]
        )  # fmt: skip
        self.data_version = None
        self._db = self._running = None
        if not isinstance(self.backend, FileBackend):
            try:
                self._begin(version)
            except BaseException:
                self.close()
                raise

    def _type(self, name: str) -> pa.DataType:
        if isinstance(self.backend, FileBackend):  # the folder's own Arrow types, in UTC
            found = self.backend.table.schema.field(name).type
            return pa.timestamp(found.unit, tz="UTC") if pa.types.is_timestamp(found) else found
        column = self.query.column(name)
        if column.type == "decimal":
            field = self.query.entry.model._meta.get_field(name)
            return pa.decimal128(field.max_digits, field.decimal_places)
        return ARROW_TYPES[column.type]

    def _begin(self, version: int | None) -> None:
        """Its own connection: the request's (with what middleware writes after the view)
        stays out of the export's long read-only transaction. To the database the request
        reads from (a replica's, datalake.platform.replicas)."""
        self._db = connections.create_connection(replicas.read_alias())
        self._db.ensure_connection()
        pg = self._db.connection
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        ms = settings.LAKE_EXPORT_STATEMENT_TIMEOUT_MS
        pg.execute("SELECT set_config('statement_timeout', %s, true)", [f"{ms}ms"])
        if self.query.entry.versioning:
            row = pg.execute(VERSION_SQL, [self.query.entry.name]).fetchone()
            self.data_version = version if version is not None else row and row[0]

    def close(self) -> None:
        """Stop the stream where it is (its COPY ended first) and close the export's
        connection (its transaction ends with it); idempotent."""
        running, self._running = self._running, None
        if running is not None:
            running.close()
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, batch by batch, as the JSON pages show them; then the export closes."""
        self._running = self._batches()
        return self._running

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            left = self.limit
            for batch in self._raw_batches():
                if left is not None:
                    batch = batch.slice(0, left)
                    left -= batch.num_rows
                if batch.num_rows:
                    if self.on_batch is not None:
                        self.on_batch(batch.num_rows)
                    yield self._shown(batch)
                if left == 0:
                    break
        finally:
            self._running = None  # this generator is ending: close() must not close it
            self.close()

    def _shown(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        table = pa.Table.from_batches([batch])
        for name in self.schema.names:
            if self.query.column(name).type == "array" and table[name].type == pa.string():
                lists = [None if v is None else json.loads(v) for v in table[name].to_pylist()]
                index = table.column_names.index(name)
                table = table.set_column(index, name, pa.array(lists, pa.list_(pa.string())))
        table = self.query.restriction.mask_arrow(table)
        if table.schema != self.schema:  # raw timestamps to UTC; a cast costs even when a no-op
            table = table.cast(self.schema)
        return table.combine_chunks().to_batches()[0]

    def _select(self) -> list[str]:
        """The page's SELECT: the fields, then the ordering's other columns (not shown)."""
        names = self.query.ordering_names
        return self.query.fields + [n for n in names if n not in self.query.fields]

    def _raw_batches(self) -> Iterator[pa.RecordBatch]:
        if isinstance(self.backend, FileBackend):
            yield from self._file_batches(settings.LAKE_EXPORT_BATCH_ROWS)
            return
        statement = self.copy_statement()
        if statement is None:  # an empty result by construction
            return
        sql, params, names = statement
        types = {  # arrays come as JSON text, made lists by _shown
            n: pa.string() if self.query.column(n).type == "array" else self._type(n)
            for n in self.query.fields
        }
        rows = settings.LAKE_EXPORT_BATCH_ROWS
        with self._db.connection.cursor() as cursor, cursor.copy(sql, params) as copy:
            source = _CopyFile(copy)
            if not source.read_ahead():  # no rows (pyarrow refuses an empty CSV)
                return
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(
                    column_names=names,
                    block_size=max(rows * BYTES_PER_ROW, 1 << 14),
                    use_threads=True,
                ),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    include_columns=self.query.fields,
                    true_values=["t"],
                    false_values=["f"],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,  # "" is an empty text, nothing is NULL
                ),
            )
            yield from reader

    def copy_statement(self) -> tuple[str, tuple, list[str]] | None:
        """A table's `COPY (<page SQL>) TO STDOUT (FORMAT csv)` (array columns as JSON
        text, LIMIT if limited), its parameters and columns; None for an empty result."""
        found = self.backend.compiled(self._select())
        if found is None:
            return None
        compiled, params = found
        sql, names = compiled.sql, list(compiled.names)
        arrays = [n for n in names if self.query.column(n).type == "array"]
        if arrays:  # a projection of the ordered rows keeps their order
            columns = ", ".join(
                f"array_to_json(q.{ident(n)})::text" if n in arrays else f"q.{ident(n)}"
                for n in names
            )
            sql = f"SELECT {columns} FROM ({sql}) q"
        if self.limit is not None:
            sql, params = f"{sql} LIMIT %s", (*params, self.limit)
        return f"COPY ({sql}) TO STDOUT (FORMAT csv)", params, names

    def _file_batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        sql, params = self.backend.select_sql(self._select())
        for batch in self.backend.cursor().sql(sql, params=params).to_arrow_reader(rows):
            yield batch.select(self.query.fields)


class _CopyFile(io.RawIOBase):
    """COPY's data rows as a readable file (what pyarrow's CSV reader reads from).

    psycopg hands each row over as a memoryview of libpq's buffer; each is appended to
    one growing bytearray at once, which frees it (keeping thousands of views alive
    until a join halved the rows/s of the export).
    """

    def __init__(self, copy):
        self.chunks = iter(copy)
        self.rest = bytearray()

    def readable(self) -> bool:
        return True

    def read_ahead(self) -> bool:
        """Whether there is anything to read (the first row read ahead)."""
        chunk = next(self.chunks, None)
        if chunk is not None:
            self.rest += chunk
        return bool(self.rest)

    def read(self, size: int = -1) -> bytes:
        buf = self.rest
        if size < 0:
            for chunk in self.chunks:
                buf += chunk
            self.rest = bytearray()
            return bytes(buf)
        if len(buf) < size:
            for chunk in self.chunks:
                buf += chunk
                if len(buf) >= size:
                    break
        with memoryview(buf) as view:
            data = bytes(view[:size])
        del buf[:size]
        return data
