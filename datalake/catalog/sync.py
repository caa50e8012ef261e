"""Keeping the `Resource` rows in step with the catalog entries."""

from __future__ import annotations

from datalake.catalog import files, tables


def sync_resources() -> None:
    """Create the rows of built-in tables and of every landing folder; never deletes.

    A folder that disappears keeps its row (grants and logs point at it) but its
    entry is gone, so the API answers 404 for it.
    """
    from datalake.models import Resource

    existing = set(Resource.objects.values_list("name", flat=True))
    new = [
        Resource(
            name=spec.name, kind="table", description=spec.description, versioning=spec.versioning
        )
        for spec in tables.TABLES
        if spec.name not in existing
    ]
    new += [
        Resource(name=f"raw_{s}", kind="files", description=files.describe(s), source=s)
        for s in files.landing_sources()
        if f"raw_{s}" not in existing
    ]
    if new:
        Resource.objects.bulk_create(new, ignore_conflicts=True)


def register_after_migrate(sender, **kwargs) -> None:
    """post_migrate hook: `migrate` registers the built-in resources."""
    sync_resources()
