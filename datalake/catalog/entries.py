"""Catalog entries: the built-in tables and the raw-file folders of the landing zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from datalake.catalog import files, tables
from datalake.catalog.columns import Column, column


@dataclass(frozen=True)
class Entry:
    """One resource of the lake and how to read it.

    `key` is the default ordering and the cursor's tie-breaker; `model` is set for
    tables, `folder` for raw-file resources.
    """

    name: str
    kind: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    versioning: bool = False
    model: type | None = None
    folder: str | None = None
    column_map: dict = field(default_factory=dict, compare=False, repr=False)

    def column(self, name: str) -> Column | None:
        if not self.column_map:
            object.__setattr__(self, "column_map", {c.name: c for c in self.columns})
        return self.column_map.get(name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@cache
def _table_entry(spec: tables.TableSpec) -> Entry:
    model = spec.model()
    columns = [
        column(name, col_type, name in spec.filterable, tables.field_help(model, name), null)
        for name, col_type, null in tables.model_columns(model)
    ]
    return Entry(
        name=spec.name,
        kind="table",
        description=spec.description,
        columns=tuple(columns),
        key=spec.key,
        versioning=spec.versioning,
        model=model,
    )


def _files_entry(source: str) -> Entry:
    columns = [column(n, t) for n, t in files.folder_schema(source)]
    return Entry(
        name=f"raw_{source}",
        kind="files",
        description=files.describe(source),
        columns=(*files.META_COLUMNS, *columns),
        key=("_file", "_line"),
        folder=source,
    )


def list_table_entries() -> list[Entry]:
    return [_table_entry(spec) for spec in tables.TABLES]


def list_entries() -> list[Entry]:
    """Every resource: the built-in tables, then one `raw_<source>` per landing folder."""
    entries = list_table_entries()
    entries += [_files_entry(source) for source in files.landing_sources()]
    return sorted(entries, key=lambda e: e.name)


def get_entry(name: str) -> Entry | None:
    """The entry named `name`, or None (unknown or a folder that no longer exists).

    Read-only: it reads the code's table specs and the landing folders, never the
    database (`datalake.catalog.selectors.resource_entry` also registers a new folder's
    `Resource` row). Grant validation (`Grant.clean()`) relies on it writing nothing."""
    spec = tables.TABLES_BY_NAME.get(name)
    if spec is not None:
        return _table_entry(spec)
    if name.startswith("raw_") and name[4:] in files.landing_sources():
        return _files_entry(name[4:])
    return None
