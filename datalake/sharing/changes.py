"""The change feed: one Parquet file set per version, with `_change_type`.

Built from the portal's versions: in version v, a row whose `valid_from` is v was
written by it and a row whose `valid_to` is v was replaced or removed by it. A key
both written and replaced in v is an update: the old row is its `update_preimage`,
the new one its `update_postimage`; otherwise a written row is an `insert` and a
closed one a `delete`. A version's rows never change, so its files are written once
(`<resource>/c<v>/<restriction>/`, as snapshots are) and restricted like them: the
row filter applies to each image on its own (an update that moves a row out of the
recipient's filter shows as its preimage only).
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
from django.db import connection
from django.db.models import Q

from accounts.access import Restriction
from datalake.catalog import Entry
from datalake.sharing.schema import CHANGE_TYPE, base_schema
from datalake.sharing.snapshots import BASE, PartWriter, Snapshot, derive, ensure, table_batches


def change_files(entry: Entry, version: int, restriction: Restriction) -> Snapshot:
    """The changes version `version` made to `entry`, as `restriction` shows them."""
    base = ensure(f"{entry.name}/c{version}/{BASE}", lambda out: _write(entry, version, out))
    if not restriction.restricted:
        return base
    # Named by the recipient's own restriction: the file view checks a URL's path against
    # it. A column list keeps `_change_type` too, or the derived files would lose it.
    relative = f"{entry.name}/c{version}/{restriction.fingerprint()}"
    if restriction.columns is not None:
        restriction = replace(restriction, columns=restriction.columns | {CHANGE_TYPE})
    return ensure(relative, lambda out: derive(base, restriction, out))


def _write(entry: Entry, version: int, out) -> None:
    v = int(version)
    qn = connection.ops.quote_name
    table = qn(entry.model._meta.db_table)
    same_key = " AND ".join(f"o.{qn(k)} = {table}.{qn(k)}" for k in entry.key)
    change = (
        f"CASE WHEN {table}.valid_from = {v} THEN CASE WHEN EXISTS (SELECT 1 FROM {table} o "
        f"WHERE o.valid_to = {v} AND {same_key}) THEN 'update_postimage' ELSE 'insert' END "
        f"ELSE CASE WHEN EXISTS (SELECT 1 FROM {table} o WHERE o.valid_from = {v} AND "
        f"{same_key}) THEN 'update_preimage' ELSE 'delete' END END AS {qn(CHANGE_TYPE)}"
    )
    schema = base_schema(entry)
    queryset = entry.model._default_manager.filter(Q(valid_from=v) | Q(valid_to=v))
    extra = (pa.field(CHANGE_TYPE, pa.string()),)
    writer = PartWriter(out, pa.schema([*schema, *extra]))
    for batch in table_batches(entry, queryset, schema, (change,), extra):
        writer.write(batch)
    writer.finish()
