"""Reads of the catalog for the API: entries joined with their `Resource` rows."""

from __future__ import annotations

from django.db import connection

from accounts.access import Access
from datalake.catalog import Entry, get_entry, list_entries
from datalake.catalog.rawfiles import file_row_count
from datalake.catalog.sync import sync_resources
from datalake.models import Resource


def table_row_count(entry: Entry) -> int:
    """pg_class's estimate for large tables, an exact count for small ones."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [entry.model._meta.db_table],
        )
        estimate = cursor.fetchone()[0]
    if estimate is not None and estimate > 100_000:
        return estimate
    qs = entry.model._default_manager.all()
    return (qs.filter(valid_to__isnull=True) if entry.versioning else qs).count()


def describe_resources(request, entries: list[Entry]) -> list[dict]:
    """The catalog view of each entry: columns, version, row count and the caller's access."""
    rows = {r.name: r for r in Resource.objects.filter(name__in=[e.name for e in entries])}
    policy = Access.of(request)
    access = policy.privileges_on([e.name for e in entries])
    restrictions = (
        {}
        if policy.is_staff
        # without the request: a listing names no resource's restriction in the request log
        else Access(policy.user).restrictions([e.name for e in entries if "read" in access[e.name]])
    )
    return [
        {
            "name": e.name,
            "kind": e.kind,
            "description": e.description,
            "columns": [c.as_dict() for c in e.columns],
            "versioning": e.versioning,
            "current_version": rows[e.name].current_version if e.versioning else None,
            "row_count": None
            if e.name in restrictions and restrictions[e.name].rows is not None
            else table_row_count(e)
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
