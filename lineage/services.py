"""Versions of the versioned resources: taken in the merging transaction, recorded after."""

from __future__ import annotations

from django.db import transaction

from datalake.models import Resource

from .models import Version


def version_lock(resource_name: str) -> tuple[Resource, int]:
    """Lock the resource row (merges of one resource run one at a time) and return the
    version a merge would create. Must be called inside `transaction.atomic()`."""
    assert transaction.get_connection().in_atomic_block, "call inside transaction.atomic()"
    resource = Resource.objects.select_for_update().get(name=resource_name)
    return resource, resource.current_version + 1


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
