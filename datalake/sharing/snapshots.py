"""The Parquet files a recipient reads: one set per table state and restriction.

A snapshot is a directory `SHARING_ROOT/<resource>/<state>/<restriction>/` holding
`part-NNNNN.parquet` files of at most `SHARING_FILE_ROWS` rows and a `manifest.json`
written last (a directory without one is unfinished). `<state>` names the data:
`v<n>` for version n of a versioned table (its rows never change), `d<digest>` for an
unversioned table or a raw folder (a digest of its content, so any change makes a new
state); `<restriction>` is `Restriction.fingerprint()` (`all` for none).

The unrestricted (`all`) snapshot of a state is written from PostgreSQL (one `COPY`
streamed through pyarrow's CSV reader) or from the raw folder's Arrow table. A version
`v<n>` of a versioned table whose earlier version's snapshot is on disk is written from
that one instead (`_write_from_earlier`): its files hard-linked, those holding rows that
ended since rewritten without them, and only the rows written since read from PostgreSQL,
so that a day's ingestion costs its own rows, not the whole table again. Every
restricted one is derived from it with `Restriction.apply_to_arrow`, reading local
Parquet, not the database again. Each is written once, under a file lock, into a
temporary directory renamed into place: recipients with the same restriction share
it, concurrent first readers wait for one writer. `drop_unreachable` removes what no
recipient can reach any more (see there).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from accounts.access import Restriction
from accounts.access.masking import pseudonym
from datalake.catalog import Entry
from datalake.catalog import files as landing
from datalake.catalog.rawfiles import load_folder
from datalake.query.backends import table_queryset
from datalake.sharing.schema import UTC_MICROS, base_schema

MANIFEST = "manifest.json"
BASE = "all"


@dataclass(frozen=True)
class SharedFile:
    name: str  # part-00000.parquet
    size: int
    rows: int

    def id(self, snapshot: Snapshot) -> str:
        return hashlib.sha256(f"{snapshot.relative}/{self.name}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Snapshot:
    """The files of one state of a resource for one restriction."""

    relative: str  # <resource>/<state>/<restriction>
    files: tuple[SharedFile, ...]
    rows: int
    seconds: float  # what writing them took (0 when found written)

    @property
    def path(self) -> Path:
        return root() / self.relative


# The layout and encoding of the files written here; a change that makes old files wrong
# (a type, a column's encoding, the order of rows) takes the next number, so that no
# file of the old layout is ever served (`drop_unreachable` removes the old ones).
FORMAT = "f2"


def root() -> Path:
    return Path(settings.SHARING_ROOT) / FORMAT


def state_of(entry: Entry, version: int | None) -> str:
    """`v<n>` for a versioned table at version n; else a digest of the current data."""
    if entry.versioning and version is not None:
        return f"v{version}"
    if entry.folder is not None:
        paths = landing.folder_files(entry.folder)
        facts = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    else:
        table = entry.model._meta.db_table
        with connection.cursor() as cursor:
            # Unversioned tables are small (daily aggregates, rates): a digest of every row.
            cursor.execute(
                f'SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM "{table}" t'
            )
            facts = list(cursor.fetchone())
    return "d" + hashlib.sha256(repr(facts).encode()).hexdigest()[:16]


def snapshot(entry: Entry, state: str, restriction: Restriction, version: int | None) -> Snapshot:
    """The snapshot of `entry` in `state` as `restriction` shows it (written if need be)."""
    base = ensure(f"{entry.name}/{state}/{BASE}", lambda out: _write_base(entry, version, out))
    if not restriction.restricted:
        return base
    touch(base)  # read by the derived ones: it stays while they are handed out
    relative = f"{entry.name}/{state}/{restriction.fingerprint()}"
    return ensure(relative, lambda out: derive(base, restriction, out, entry.key))


def ensure(relative: str, write: Callable[[Path], None]) -> Snapshot:
    """The snapshot `relative`, written by `write` if it is not there; marked as handed
    out (`touch`) the moment it is found, so `drop_unreachable` leaves it."""
    found = read_manifest(relative)
    if found is not None:
        touch(found)
        return found
    target = root() / relative
    target.parent.mkdir(parents=True, exist_ok=True)  # the root too: a temporary spool goes there
    with _locked(target.with_name(target.name + ".lock")):
        found = read_manifest(relative)  # written while this one waited
        if found is not None:
            return found
        started = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=".writing-", dir=target.parent))
        try:
            write(scratch)
            files = _describe_files(scratch)
            seconds = time.perf_counter() - started
            manifest = {
                "files": [f.__dict__ for f in files],
                "rows": sum(f.rows for f in files),
                "seconds": round(seconds, 3),
                "written_at": time.time(),
            }
            (scratch / MANIFEST).write_bytes(orjson.dumps(manifest))
            _publish(scratch, target)
            found = read_manifest(relative)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return Snapshot(relative, found.files, found.rows, seconds)


def _publish(scratch: Path, target: Path) -> None:
    """Rename the written directory into place. A directory already there without a
    manifest is a crashed write's: replaced. One with a manifest is another writer's
    (whose lock this one did not share): kept, and this one's dropped."""
    if target.exists() and not (target / MANIFEST).exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(scratch, target)
    except OSError:
        if not (target / MANIFEST).exists():
            raise


@contextmanager
def _locked(path: Path):
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(relative: str) -> Snapshot | None:
    try:
        data = orjson.loads((root() / relative / MANIFEST).read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    files = tuple(SharedFile(**f) for f in data["files"])
    return Snapshot(relative, files, data["rows"], 0.0)


def _describe_files(directory: Path) -> list[SharedFile]:
    found = []
    for path in sorted(directory.glob("part-*.parquet")):
        rows = pq.ParquetFile(path).metadata.num_rows
        found.append(SharedFile(path.name, path.stat().st_size, rows))
    return found


class PartWriter:
    """Batches into `part-NNNNN.parquet` files of at most SHARING_FILE_ROWS rows."""

    def __init__(self, directory: Path, schema: pa.Schema, first: int = 0):
        self.directory = directory
        self.schema = schema
        self.limit = settings.SHARING_FILE_ROWS
        self.writer: pq.ParquetWriter | None = None
        self.in_file = 0
        self.count = first  # the number of the next file (files before it are there)

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema) if table.schema != self.schema else table
        offset = 0
        while offset < table.num_rows:
            if self.writer is None:
                name = self.directory / f"part-{self.count:05d}.parquet"
                self.writer = pq.ParquetWriter(name, self.schema, compression="snappy")
                self.count += 1
                self.in_file = 0
            take = min(table.num_rows - offset, self.limit - self.in_file)
            self.writer.write_table(table.slice(offset, take), row_group_size=self.limit)
            self.in_file += take
            offset += take
            if self.in_file >= self.limit:
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def finish(self) -> None:
        """Close the last file; an empty snapshot still has one (empty) file, so that
        a recipient gets the schema from the files as from the metadata."""
        if self.count == 0:
            pq.write_table(self.schema.empty_table(), self.directory / "part-00000.parquet")
        self.close()


def _write_base(entry: Entry, version: int | None, out: Path) -> None:
    schema = base_schema(entry)
    if entry.model is not None and entry.versioning and version is not None:
        earlier = _earlier_base(entry, version)
        if earlier is not None and _write_from_earlier(entry, earlier, version, schema, out):
            return
    writer = PartWriter(out, schema)
    if entry.folder is not None:
        table = load_folder(entry.folder)
        writer.write(table.select(schema.names))
    else:
        for batch in table_batches(entry, table_queryset(entry, version), schema):
            writer.write(batch)
    writer.finish()


# -- a version from an earlier one: its files kept, the changes since applied ---------------


def _earlier_base(entry: Entry, version: int) -> tuple[int, Snapshot] | None:
    """(b, the unrestricted snapshot of version b): the latest version before `version`
    whose snapshot is written."""
    earlier = []
    for manifest in (root() / entry.name).glob(f"v*/{BASE}/{MANIFEST}"):
        state = manifest.parent.parent.name
        if state[1:].isdigit() and int(state[1:]) < version:
            earlier.append(int(state[1:]))
    for b in sorted(earlier, reverse=True):
        found = read_manifest(f"{entry.name}/v{b}/{BASE}")
        if found is not None:
            return b, found
    return None


def _write_from_earlier(
    entry: Entry, earlier: tuple[int, Snapshot], version: int, schema: pa.Schema, out: Path
) -> bool:
    """Version `version` from version b's files: each hard-linked (the same bytes), or
    rewritten without the rows that ended in (b, version] (found by the table's key: a
    version holds one row per key) when it holds some; then the rows written in
    (b, version] and still valid at `version`, from PostgreSQL. False (nothing written)
    when more than a quarter of b's rows ended: a full write costs no more then."""
    b, base = earlier
    rows = entry.model._default_manager.all()
    key = list(entry.key)
    ended = rows.filter(valid_from__lte=b, valid_to__gt=b, valid_to__lte=version)
    if ended.count() > base.rows // 4:
        return False
    gone = pa.Table.from_pylist(
        [dict(zip(key, k, strict=True)) for k in ended.values_list(*key)],
        schema=pa.schema([schema.field(k) for k in key]),
    )
    count = 0
    try:
        for shared in base.files:
            source, target = base.path / shared.name, out / f"part-{count:05d}.parquet"
            if gone.num_rows and _holds_any(source, gone, key):
                table = _without(pq.read_table(source), gone, key)
                if not table.num_rows:
                    continue
                pq.write_table(
                    table, target, compression="snappy", row_group_size=settings.SHARING_FILE_ROWS
                )
            else:
                os.link(source, target)
            count += 1
    except FileNotFoundError:  # version b dropped meanwhile (drop_unreachable): a full write
        for part in out.glob("part-*.parquet"):
            part.unlink()
        return False
    written = rows.filter(valid_from__gt=b, valid_from__lte=version).filter(
        Q(valid_to__isnull=True) | Q(valid_to__gt=version)
    )
    writer = PartWriter(out, schema, first=count)
    for batch in table_batches(entry, written, schema):
        writer.write(batch)
    writer.finish()
    return True


def _holds_any(path: Path, gone: pa.Table, key: list[str]) -> bool:
    keys = pq.read_table(path, columns=key)
    if len(key) == 1:
        return bool(pc.any(pc.is_in(keys[key[0]], value_set=gone[key[0]])).as_py())
    return keys.join(gone, keys=key, join_type="inner").num_rows > 0


def _without(table: pa.Table, gone: pa.Table, key: list[str]) -> pa.Table:
    if len(key) == 1:
        return table.filter(pc.invert(pc.is_in(table[key[0]], value_set=gone[key[0]])))
    return table.join(gone, keys=key, join_type="left anti").select(table.column_names)


def derive(
    base: Snapshot,
    restriction: Restriction,
    out: Path,
    key: tuple[str, ...] = (),
    prepare: Callable[[pa.Table], pa.Table] | None = None,
) -> None:
    """The files of `base` as `restriction` shows them (each through `prepare` first).
    Where it masks or hides a column of the `key`, the rows of all the files are in the
    order of the key's pseudonyms (as the rows API orders them, `_reordered`), so that
    neither a row's rank nor the file it is in says anything of its key."""
    concealed = [k for k in key if restriction.hides(k) or k in restriction.masked]
    if concealed:
        _reordered(base, restriction, out, concealed, prepare)
        return
    writer = None
    for shared in base.files:
        table = pq.read_table(base.path / shared.name)
        table = restriction.apply_to_arrow(prepare(table) if prepare else table)
        if writer is None:
            writer = PartWriter(out, table.schema)
        writer.write(table)
    writer.finish()


BUCKET_DIGITS = 4  # hex digits of a pseudonym that choose its bucket


def _reordered(base, restriction, out, concealed, prepare) -> None:
    """`derive` in the order of the concealed key columns' pseudonyms, one base file in
    memory at a time: each file's rows go to one of as many buckets as there are files,
    by the first hex digits of the first column's pseudonym (uniform: a keyed hash),
    then each bucket is sorted and written, buckets in order."""
    order = [f"__order_{i}" for i in range(len(concealed))]
    hidden = any(restriction.hides(k) for k in concealed)
    count = max(len(base.files), 1)
    spill = Path(tempfile.mkdtemp(prefix=".buckets-", dir=out.parent))
    writers: dict[int, pq.ParquetWriter] = {}
    shown = None  # the schema of what the recipient sees
    try:
        for shared in base.files:
            table = pq.read_table(base.path / shared.name)
            table = prepare(table) if prepare else table
            if hidden:  # the pseudonyms of the key of the rows kept, before it is dropped
                table = replace(restriction, columns=None, masked=frozenset()).apply_to_arrow(table)
                names = [pseudonym_array(table[k], restriction.resource, k) for k in concealed]
                table = restriction.apply_to_arrow(table)
            else:  # masked: the key's columns hold its pseudonyms
                table = restriction.apply_to_arrow(table)
                names = [table[k] for k in concealed]
            shown = table.schema
            for name, values in zip(order, names, strict=True):
                table = table.append_column(name, values)
            prefixes = table[order[0]].to_pylist()
            cut = 16**BUCKET_DIGITS
            buckets = pa.array(
                [int(p[5 : 5 + BUCKET_DIGITS], 16) * count // cut if p else 0 for p in prefixes],
                pa.int32(),
            )
            for bucket in pc.unique(buckets).to_pylist():
                rows = table.filter(pc.equal(buckets, bucket))
                if bucket not in writers:
                    writers[bucket] = pq.ParquetWriter(spill / f"{bucket:06d}.parquet", rows.schema)
                writers[bucket].write_table(rows)
        for writer in writers.values():
            writer.close()
        writer = PartWriter(out, shown) if shown is not None else None
        for bucket in sorted(writers):
            rows = pq.read_table(spill / f"{bucket:06d}.parquet")
            rows = rows.sort_by([(n, "ascending") for n in order]).drop_columns(order)
            writer.write(rows)
        if writer is None:  # no file at all: nothing to show, in the base's columns
            empty = restriction.apply_to_arrow(pq.read_schema(base.path / base.files[0].name)
                                               .empty_table())  # fmt: skip
            writer = PartWriter(out, empty.schema)
        writer.finish()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def pseudonym_array(values: pa.ChunkedArray, resource: str, column: str) -> pa.Array:
    """The pseudonym of each value (None for a null), each distinct value hashed once."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    names = [pseudonym(resource, column, v) for v in encoded.dictionary.to_pylist()]
    return pa.array(names, type=pa.string()).take(encoded.indices)


# -- PostgreSQL to Arrow: one COPY, parsed by pyarrow's CSV reader ------------------------


def _select_sql(entry: Entry, schema: pa.Schema, extra: tuple[str, ...] = ()) -> list[str]:
    """Each column as text pyarrow parses at C speed: timestamps as epoch microseconds,
    arrays as JSON."""
    out = []
    for f in schema:
        quoted = connection.ops.quote_name(f.name)
        if pa.types.is_timestamp(f.type):
            out.append(f"(extract(epoch FROM {quoted}) * 1000000)::bigint AS {quoted}")
        elif pa.types.is_list(f.type):
            out.append(f"array_to_json({quoted})::text AS {quoted}")
        else:
            out.append(quoted)
    return out + list(extra)


def _csv_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    types = {}
    for f in schema:
        if pa.types.is_timestamp(f.type):
            types[f.name] = pa.int64()
        elif pa.types.is_list(f.type):
            types[f.name] = pa.string()
        else:
            types[f.name] = f.type
    return types


def _to_schema(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    columns = []
    for f in schema:
        column = batch.column(f.name)
        if pa.types.is_timestamp(f.type):
            column = column.cast(pa.timestamp("us")).cast(UTC_MICROS)
        elif pa.types.is_list(f.type):
            column = pa.array(
                [None if v is None else json.loads(v) for v in column.to_pylist()], f.type
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def table_batches(
    entry: Entry, queryset, schema: pa.Schema, extra_sql: tuple[str, ...] = (), extra=()
) -> Iterator[pa.Table]:
    """The rows of `queryset` as Arrow tables of `schema` (plus `extra` fields, whose SQL
    is `extra_sql`), through one `COPY ... TO STDOUT` into a temporary file."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    where = sql[sql.index(" FROM ") :]
    select = ", ".join(_select_sql(entry, schema, extra_sql))
    full = pa.schema([*schema, *extra])
    with tempfile.TemporaryFile(dir=root()) as spool:
        with transaction.atomic(), connection.cursor() as cursor:
            # A snapshot of a large table takes longer than an API statement may.
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", ["0"])
            raw = cursor.cursor  # psycopg's own cursor: COPY with client-side parameters
            copy_sql = f"COPY (SELECT {select}{where}) TO STDOUT (FORMAT csv)"
            with raw.copy(copy_sql, params) as copy:
                for chunk in copy:
                    spool.write(chunk)
        if spool.tell() == 0:  # no rows: pyarrow refuses an empty CSV file
            return
        spool.seek(0)
        types = _csv_types(full)
        reader = pacsv.open_csv(
            spool,
            read_options=pacsv.ReadOptions(column_names=full.names, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                true_values=["t"],
                false_values=["f"],
                # NULL is an empty unquoted field in PostgreSQL's CSV, and nothing else:
                # pyarrow's default list would read "NA" (Namibia), "null", "nan" as nulls.
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        for batch in reader:
            yield _to_schema(batch, full)


PAST = ".past"  # in a state's folder: its files were written for a read of the past


def mark_past(entry: Entry, state: str) -> None:
    """Note that `state`'s files are there for time travel (see `live_past_states`)."""
    folder = root() / entry.name / state
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PAST).touch()


def live_past_states(resource: str, now: float | None = None) -> set[str]:
    """The states of `resource` written for time travel (`mark_past`) whose files were
    handed out within the URL lifetime: what SHARING_MAX_PAST_VERSIONS bounds. The
    versions read while they were current, and the change feed's files, are not."""
    now = time.time() if now is None else now
    horizon = now - settings.SHARING_URL_LIFETIME_SECONDS
    found = set()
    for marker in (root() / resource).glob(f"v*/{PAST}"):
        for manifest in marker.parent.glob(f"*/{MANIFEST}"):
            with contextlib.suppress(FileNotFoundError):
                if manifest.stat().st_mtime >= horizon:
                    found.add(marker.parent.name)
    return found


def touch(found: Snapshot) -> None:
    """Mark a snapshot as just handed out: its URLs live SHARING_URL_LIFETIME_SECONDS."""
    with contextlib.suppress(FileNotFoundError):  # dropped meanwhile: written again next time
        os.utime(found.path / MANIFEST)


def drop_unreachable(current: dict[str, int], now: float | None = None) -> list[str]:
    """Remove the snapshots no recipient can reach; returns what was removed.

    A snapshot's URLs die SHARING_URL_LIFETIME_SECONDS after its last query
    (`touch`); past that (with a minute's margin) nothing signed names it any more,
    and a later query writes it again. The unrestricted snapshot of a versioned
    table's current version (`current`: resource -> version) stays, so the next
    recipient of that version does not wait for a COPY; until that one is written, the
    latest version's written before it stays instead (the next version is written from
    it, `_write_from_earlier`, not from PostgreSQL). Unfinished writes
    (`.writing-*`) an hour old are leftovers of a crash.
    """
    now = time.time() if now is None else now
    horizon = now - settings.SHARING_URL_LIFETIME_SECONDS - 60
    removed = []
    base = root()
    for old in base.parent.glob("f[0-9]*") if base.parent.is_dir() else ():
        if old.is_dir() and old.name != FORMAT and old.name[1:].isdigit():
            shutil.rmtree(old, ignore_errors=True)  # files of an older layout
            removed.append(old.name)
    if not base.is_dir():
        return removed
    for resource in sorted(p for p in base.iterdir() if p.is_dir()):
        kept = _kept_version(resource, current.get(resource.name))
        for state in sorted(p for p in resource.iterdir() if p.is_dir()):
            for snap in sorted(p for p in state.iterdir() if p.is_dir()):
                name = f"{resource.name}/{state.name}/{snap.name}"
                if snap.name.startswith((".writing-", ".buckets-")):  # a crashed write's
                    if snap.stat().st_mtime < now - 3600:
                        shutil.rmtree(snap, ignore_errors=True)
                        removed.append(name)
                    continue
                keep = state.name == f"v{kept}" and snap.name == BASE
                manifest = snap / MANIFEST
                with contextlib.suppress(FileNotFoundError):
                    used = manifest.stat().st_mtime if manifest.exists() else snap.stat().st_mtime
                    lock = state / f"{snap.name}.lock"
                    if not keep and used < horizon and _drop(snap, [lock]):
                        removed.append(name)
            if not any(p.is_dir() for p in state.iterdir()):
                _drop(state, sorted(state.glob("*.lock")))
    return removed


def _drop(folder: Path, locks: list[Path]) -> bool:
    """Remove `folder` unless a writer holds one of `locks` (its snapshot's lock file,
    or those of an emptied state's snapshots), taken without waiting."""
    handles = []
    try:
        for lock in locks:
            handle = open(lock, "a+")  # noqa: SIM115 (closed below)
            handles.append(handle)
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, FileNotFoundError):
        return False
    else:
        shutil.rmtree(folder, ignore_errors=True)
        return True
    finally:
        for handle in handles:
            handle.close()


def _kept_version(resource: Path, current: int | None) -> int | None:
    """The version whose unrestricted snapshot `drop_unreachable` keeps: the current one,
    or the latest written before it."""
    if current is None:
        return None
    names = (manifest.parent.parent.name for manifest in resource.glob(f"v*/{BASE}/{MANIFEST}"))
    written = [int(n[1:]) for n in names if n[1:].isdigit() and int(n[1:]) <= current]
    return max(written, default=None)
