"""Versions of the versioned resources: taken in the merging transaction, recorded after.

Two ways to merge into a resource, both inside the merge's transaction:

- `version_lock`: alone. Every merge of the resource waits for the others and takes
  `current_version + 1` (the daily files, the API's writes).
- `version_begin` ... `version_publish`: side by side (the pipeline's consumers, one
  per set of partitions). A merge takes the next free number at once and writes its
  rows concurrently with the others; `version_publish` then waits until every merge
  holding a lower number has ended, so versions become current in their order and a
  version, once current, never changes (no lower one can commit after it). A number
  whose merge changed nothing or rolled back is taken again by the next merge when
  no higher one is running; otherwise it stays unused (a gap in the numbers).

Which merge holds which number lives in PostgreSQL's advisory locks (pg_locks), not in
a table: a lock ends with its transaction, whether it commits, rolls back or its
connection dies, so no number stays "in flight" after a crash. A `version_lock`
merge takes the resource's merge lock exclusively: it waits for the concurrent ones
(which hold it shared) and they wait for it.
"""

from __future__ import annotations

from django.db import connection, transaction

from datalake.models import Resource
from lineage.models import Version

# The first key of PostgreSQL's two-key advisory locks: a namespace plus the resource's
# id; the second key is 0, or the version number for VERSION_HELD.
MERGE_LOCK = 0x4C4D0000  # merges of a resource: exclusive alone, shared side by side
NUMBER_LOCK = 0x4C4E0000  # taking a number (a moment, session-level)
VERSION_HELD = 0x4C560000  # a concurrent merge holding a number, until its transaction ends


def _resource_id(resource_name: str) -> int:
    """The resource's id; merges run inside `transaction.atomic()` (their locks end with it)."""
    assert transaction.get_connection().in_atomic_block, "call inside transaction.atomic()"
    return Resource.objects.values_list("pk", flat=True).get(name=resource_name)


def version_lock(resource_name: str) -> tuple[Resource, int]:
    """Lock the resource (merges of one resource run one at a time) and return the
    version a merge would create. Must be called inside `transaction.atomic()`."""
    resource_id = _resource_id(resource_name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [MERGE_LOCK + resource_id])
    resource = Resource.objects.select_for_update().get(pk=resource_id)
    return resource, resource.current_version + 1


# Versions held by running concurrent merges of a resource, in this database.
_HELD = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND objsubid = 2 AND classid = %(key)s "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def version_begin(resource_name: str) -> tuple[int, int]:
    """Start a concurrent merge: (resource id, the version number it holds).

    Inside `transaction.atomic()`; end with `version_publish` before writing anything
    that other merges of the resource also write (aggregates, the version row).
    """
    resource_id = _resource_id(resource_name)
    key = VERSION_HELD + resource_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", [MERGE_LOCK + resource_id])
        cursor.execute("SELECT pg_advisory_lock(%s, 0)", [NUMBER_LOCK + resource_id])
        try:
            # A savepoint: should a statement here fail, the transaction can still run
            # the unlock (a session lock outlives its transaction).
            with transaction.atomic():
                # Held numbers first, then the current version in a new statement: a
                # merge whose lock is gone by the first has its commit visible to the second.
                cursor.execute(
                    f"SELECT coalesce(max(objid), 0) FROM ({_HELD}) h(objid)", {"key": key}
                )
                held = cursor.fetchone()[0]
                cursor.execute(
                    "SELECT current_version FROM datalake_resource WHERE id = %s", [resource_id]
                )
                version = max(held, cursor.fetchone()[0]) + 1
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [key, version])
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s, 0)", [NUMBER_LOCK + resource_id])
    return resource_id, version


def version_publish(resource_id: int, version: int) -> Resource:
    """Wait until every merge holding a lower number of the resource has ended, then
    lock the resource row (merges publish one at a time, in version order)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(pg_advisory_xact_lock_shared(%(key)s, objid::integer)) "
            f"FROM ({_HELD} AND objid::bigint < %(v)s) h(objid)",
            {"key": VERSION_HELD + resource_id, "v": version},
        )
    resource = Resource.objects.select_for_update().get(pk=resource_id)
    assert resource.current_version < version, (resource.current_version, version)
    return resource


def version_commit(
    resource: Resource, version: int, *, source: str, added: int, changed: int, removed: int = 0
) -> int:
    """Make `version` current if the merge changed anything; returns the current version."""
    if not (added or changed or removed):
        return resource.current_version
    Version.objects.create(
        resource=resource,
        version=version,
        source=source,
        rows_added=added,
        rows_changed=changed,
        rows_removed=removed,
    )
    Resource.objects.filter(pk=resource.pk).update(current_version=version)
    resource.current_version = version
    return version
