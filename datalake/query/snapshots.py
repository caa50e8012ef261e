"""Which state of a resource a read sees: its data version, pinned for a walk.

Every read of rows names the state it read (`X-Data-Version`, the body's
`data_version`, the ETag), and a walk by `next_cursor` reads its first page's state
to the end, whatever lands meanwhile:

- a **versioned table**: the version (`42`). Rows of every version are kept
  (`valid_from`/`valid_to`), so a walk's later pages read `version 42` exactly, and a
  version stays readable as long as its `Version` row exists (its id is sealed too:
  a database restored from a backup may reuse a number for other data).
- a **table without versions**: how many statements changed it (`stamp:<n>`,
  `datalake.models.DataStamp`). Its past states are not kept: a walk over it that
  outlives a change gets 410 `snapshot_expired`.
- a **folder of raw files**: a digest of its files' names, sizes and times
  (`files:<digest>`). The first page of a walk keeps the folder's manifest in the
  cache for `LAKE_SNAPSHOT_SECONDS`; while it lasts, later pages read only the files
  it lists, as long as none of them changed: files landing meanwhile are not in the
  walk. A listed file changed or gone, or the manifest expired: 410 `snapshot_expired`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace

from django.conf import settings
from django.core.cache import cache

from datalake.catalog import Entry
from datalake.catalog.rawfiles import folder_signature
from datalake.errors import Gone, Unavailable
from datalake.platform import piggyback, replicas
from datalake.platform.db import prepared_cursor

VERSION_SQL = (
    "SELECT r.current_version, v.id FROM datalake_resource r LEFT JOIN lineage_version v "
    "ON v.resource_id = r.id AND v.version = coalesce(%s, r.current_version) WHERE r.name = %s"
)
# The same current version as a scalar (a JSON array, NULL for no such resource).
CURRENT_SQL = (
    "(SELECT json_build_array(r.current_version, v.id) FROM datalake_resource r "
    "LEFT JOIN lineage_version v ON v.resource_id = r.id AND v.version = r.current_version "
    "WHERE r.name = %s)"
)
logger = logging.getLogger(__name__)
STAMP_SQL = 'SELECT stamp FROM datalake_datastamp WHERE "table" = %s'
EXPIRED = (
    "This walk's snapshot of {name!r} is no longer kept ({why}); start the walk again "
    "from its first page."
)


@dataclass(frozen=True)
class DataVersion:
    """One state of a resource. `kind`: `version`, `stamp` or `files`; `value`: the
    version number, the stamp or the folder's digest; `ident`: the version row's id."""

    kind: str
    value: int | str
    ident: int | None = None
    pinned: bool = False  # read at a version named by the caller or by a cursor
    latest: bool = False  # pinned, and the table's current version when it was read

    @property
    def label(self) -> str:
        """What `X-Data-Version` and the body's `data_version` say."""
        return str(self.value) if self.kind == "version" else f"{self.kind}:{self.value}"

    @property
    def version(self) -> int | None:
        """The version number to read at, for a versioned table."""
        return self.value if self.kind == "version" else None

    def sealed(self) -> list:
        """What a cursor carries (`datalake.query.cursors`)."""
        return [self.kind, self.value, self.ident]

    def same_state(self, other: DataVersion) -> bool:
        return (self.kind, self.value, self.ident) == (other.kind, other.value, other.ident)


def current(entry: Entry, *, fresh: bool = False) -> DataVersion:
    """The resource's state now (one small query, or a stat of the folder's files).
    `fresh`: read now, never the answer that rode on the token lookup (a check that
    nothing landed while a page was read)."""
    if entry.kind != "table":
        return folder_state(entry, folder_signature(entry.folder))
    if not entry.versioning:
        with prepared_cursor(replicas.reads()) as cursor:
            cursor.execute(STAMP_SQL, [entry.model._meta.db_table])
            row = cursor.fetchone()
        return DataVersion("stamp", row[0] if row else 0)
    return at_version(entry, None, fresh=fresh)


def ask_current(entry: Entry | None) -> None:
    """The request will read `entry`'s current version first: ask for it with the token
    lookup (`datalake.platform.piggyback`), which saves that read its own round trip."""
    if entry is not None and entry.kind == "table" and entry.versioning:
        piggyback.ask(("version", entry.name), CURRENT_SQL, [entry.name])


def at_version(entry: Entry, number: int | None, *, fresh: bool = False) -> DataVersion | None:
    """Version `number` of a versioned table (None: the current one); None if unknown."""
    # What rode on the token lookup is the primary's: a replica's reads ask the replica.
    ridden = number is None and not fresh and replicas.on_primary()
    row = piggyback.take(("version", entry.name)) if ridden else piggyback.MISSING
    if row is piggyback.MISSING:
        with prepared_cursor(replicas.reads()) as cursor:
            cursor.execute(VERSION_SQL, [number, entry.name])
            row = cursor.fetchone()
    if number is not None and (row is None or row[1] is None) and not replicas.on_primary():
        raise replicas.Behind(f"{entry.name} version {number}")  # the primary answers
    if row is None:
        return None
    if number is None:
        return DataVersion("version", row[0], row[1])
    if row[1] is None:
        return None
    return DataVersion("version", number, row[1], pinned=True, latest=row[0] == number)


def folder_state(entry: Entry, signature: tuple) -> DataVersion:
    digest = hashlib.sha256(repr(signature).encode()).hexdigest()[:24]
    return DataVersion("files", digest)


def remember(entry: Entry, state: DataVersion, signature: tuple | None) -> None:
    """Keep a folder's manifest for the walks that begin at `state` (for
    LAKE_SNAPSHOT_SECONDS from the newest walk's start). The cache away: not kept, and
    those walks end with a 410 if the folder changes."""
    if state.kind != "files" or signature is None:
        return
    key, seconds = _manifest_key(entry, state), settings.LAKE_SNAPSHOT_SECONDS
    try:
        if not cache.add(key, signature, seconds):
            cache.touch(key, seconds)
    except Exception:  # Redis down: the page is served, its manifest not kept
        logger.warning("The manifest of %s could not be kept", entry.name, exc_info=True)


def _manifest_key(entry: Entry, state: DataVersion) -> str:
    return f"snapshot:files:{entry.name}:{state.value}"


def pinned(entry: Entry, sealed: list) -> tuple[DataVersion, frozenset[str] | None]:
    """The state a cursor's walk reads, and for a folder the files it is made of
    (None: the folder as it is now). 410 if that state is no longer kept."""
    kind, value, ident = sealed if len(sealed) == 3 else (None, None, None)
    state = DataVersion(kind, value, ident, pinned=True)
    if kind == "version" and ident is None and entry.versioning:
        # Rows written outside any merge (no version yet): the walk reads them while
        # no version is made.
        if not current(entry).same_state(DataVersion("version", value)):
            _behind_on_replica(entry)
            raise _expired(entry, "a version was made since the walk began")
        return DataVersion("version", value), None
    if kind == "version" and isinstance(value, int) and entry.versioning:
        found = at_version(entry, value)
        if found is None or found.ident != ident:
            raise _expired(entry, f"version {value} is gone")
        return found, None
    if kind == "stamp" and entry.kind == "table" and not entry.versioning:
        if not current(entry).same_state(DataVersion("stamp", value)):
            _behind_on_replica(entry)
            raise _expired(entry, "the table changed and keeps no versions")
        return DataVersion("stamp", value), None
    if kind == "files" and entry.kind != "table":
        signature = folder_signature(entry.folder)
        if folder_state(entry, signature).value == value:
            return DataVersion("files", value), None
        try:
            manifest = cache.get(_manifest_key(entry, state))
        except Exception:  # Redis down
            raise Unavailable("The cache that keeps folder walks does not answer.") from None
        if manifest is None:
            raise _expired(entry, "the folder changed and its manifest has expired")
        if not set(manifest) <= set(signature):
            raise _expired(entry, "a file of the walk changed or was removed")
        return DataVersion("files", value, pinned=True), frozenset(m[0] for m in manifest)
    # Sealed by this server for this query, yet of another kind: the resource changed
    # kind (versioning switched) since the walk began.
    raise _expired(entry, "the resource changed how it keeps its versions")


def _behind_on_replica(entry: Entry) -> None:
    """A walk's state that a replica does not show may be one it has not replayed yet (or
    one it replayed and another server has not): the primary says whether it is gone."""
    if not replicas.on_primary():
        raise replicas.Behind(f"{entry.name}: the walk's state")


def moved(state: DataVersion) -> DataVersion:
    """A pinned version that is no longer the latest: read it as history."""
    return replace(state, latest=False)


def expired(entry: Entry, why: str) -> Gone:
    return _expired(entry, why)


def _expired(entry: Entry, why: str) -> Gone:
    return Gone(EXPIRED.format(name=entry.name, why=why), code="snapshot_expired")
