"""Reads of the catalog for the API: entries joined with their `Resource` rows."""

from __future__ import annotations

from accounts.access import Access
from datalake.catalog import Entry, get_entry, list_entries
from datalake.catalog.rawfiles import file_row_count
from datalake.catalog.sync import sync_resources
from datalake.lake import followers
from datalake.models import Resource
from datalake.platform import replicas

ESTIMATE_ABOVE = 100_000  # rows: past this, pg_class's estimate instead of a count


def table_row_counts(entries: list[Entry]) -> dict[str, int]:
    """Each table's current rows: pg_class's estimate for large tables, an exact count
    for small ones. Two queries for a whole page of tables, whatever their number."""
    tables = {e.name: e.model._meta.db_table for e in entries}
    if not tables:
        return {}
    db = replicas.reads()
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE oid = ANY(%s::regclass[])",
            [list(tables.values())],
        )
        estimates = dict(cursor.fetchall())
        counts = {
            name: estimates[table]
            for name, table in tables.items()
            if (estimates.get(table) or 0) > ESTIMATE_ABOVE
        }
        small = [e for e in entries if e.name not in counts]
        if small:
            quote = db.ops.quote_name
            cursor.execute(
                " UNION ALL ".join(
                    f"SELECT %s, count(*) FROM {quote(e.model._meta.db_table)}"
                    + (" WHERE valid_to IS NULL" if e.versioning else "")
                    for e in small
                ),
                [e.name for e in small],
            )
            counts.update(cursor.fetchall())
    return counts


def describe_resources(request, entries: list[Entry]) -> list[dict]:
    """The catalog view of each entry: columns, version, row count and the caller's access."""
    # The resources' versions from the server the counts and the followers' positions
    # come from (a replica's, datalake.platform.replicas): one state in one entry.
    names = [e.name for e in entries]
    rows = {r.name: r for r in Resource.objects.using(replicas.read_alias()).filter(name__in=names)}
    if len(rows) < len(set(names)) and not replicas.on_primary():
        raise replicas.Behind("a resource registered since the replica's position")
    policy = Access.of(request)
    access = policy.privileges_on([e.name for e in entries])
    restrictions = (
        {}
        if policy.is_staff
        # without the request: a listing names no resource's restriction in the request log
        else Access(policy.user).restrictions([e.name for e in entries if "read" in access[e.name]])
    )

    def hides_rows(name: str) -> bool:
        return name in restrictions and restrictions[name].rows is not None

    counts = table_row_counts(
        [e for e in entries if e.kind == "table" and e.name in rows and not hides_rows(e.name)]
    )
    derived = followers.positions([e.name for e in entries if e.versioning])
    return [
        {
            "name": e.name,
            "kind": e.kind,
            "description": e.description,
            "columns": [c.as_dict() for c in e.columns],
            "versioning": e.versioning,
            "current_version": rows[e.name].current_version if e.versioning else None,
            # How far each follower has derived the versions (search, metrics): reads of
            # derived data answer at that version (datalake.lake.followers).
            "derived_through_version": derived.get(e.name),
            "row_count": None
            if hides_rows(e.name)
            else counts[e.name]
            if e.kind == "table"
            else file_row_count(e.folder),
            "access": access[e.name],
            "restrictions": restrictions[e.name].describe()
            if e.name in restrictions and restrictions[e.name].restricted
            else None,
            "url": request.build_absolute_uri(f"/api/v1/resources/{e.name}/"),
        }
        for e in entries
        if e.name in rows
    ]


def all_resources() -> list[Entry]:
    sync_resources()
    return list_entries()


def resource_entry(name: str) -> Entry | None:
    entry = get_entry(name)
    if entry is not None and entry.kind == "files":
        sync_resources()
    return entry
