"""The change feed: one Parquet file set per version, with `_change_type`.

Built from the portal's versions: in version v, a row whose `valid_from` is v was
written by it and a row whose `valid_to` is v was replaced or removed by it. A key
both written and replaced in v is an update: the old row is its `update_preimage`,
the new one its `update_postimage`; otherwise a written row is an `insert` and a
closed one a `delete`. A version's rows never change, so its files are written once
(`<resource>/c<v>/<restriction>/`, as snapshots are) and restricted like them. The
row filter applies to each image on its own, and an update that moves a row across
the recipient's filter is what the recipient sees of it: a `delete` (only the old
image passes) or an `insert` (only the new one does).
"""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
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
    # Named by the recipient's restriction, as the file URL check compares it; a
    # column list keeps `_change_type` too.
    relative = f"{entry.name}/c{version}/{restriction.fingerprint()}"
    if restriction.columns is not None:
        restriction = replace(restriction, columns=restriction.columns | {CHANGE_TYPE})

    def write(out) -> None:  # read the base's updates only when the files are written
        derive(base, restriction, out, entry.key, _across_the_filter(base, restriction, entry.key))

    return ensure(relative, write)


UPDATES = ("update_preimage", "update_postimage")


def _across_the_filter(base: Snapshot, restriction: Restriction, key: tuple[str, ...]):
    """Under a row filter, relabels (a `derive` step) each image of an update whose other
    image the filter drops: the preimage as a `delete`, the postimage as an `insert`."""
    if restriction.rows is None:
        return None
    rows_only = Restriction(rows=restriction.rows, resource=restriction.resource)
    named = list(dict.fromkeys([*key, CHANGE_TYPE, *(n for f in restriction.rows for n in f)]))
    kept: dict[str, set] = {kind: set() for kind in UPDATES}
    for shared in base.files:
        table = pq.read_table(base.path / shared.name, columns=named)
        updates = table.filter(pc.is_in(table[CHANGE_TYPE], value_set=pa.array(UPDATES)))
        for row in rows_only.apply_to_arrow(updates).to_pylist():
            kept[row[CHANGE_TYPE]].add(tuple(row[k] for k in key))

    def relabel(table: pa.Table) -> pa.Table:
        change = table[CHANGE_TYPE]
        where = pc.indices_nonzero(pc.is_in(change, value_set=pa.array(UPDATES))).to_pylist()
        if not where:
            return table
        labels = change.to_pylist()
        keys = table.select(list(key)).take(where).to_pylist()
        for i, values in zip(where, keys, strict=True):
            kind = labels[i]
            other = UPDATES[1] if kind == UPDATES[0] else UPDATES[0]
            if tuple(values[k] for k in key) not in kept[other]:
                labels[i] = "delete" if kind == UPDATES[0] else "insert"
        index = table.schema.get_field_index(CHANGE_TYPE)
        return table.set_column(index, CHANGE_TYPE, pa.array(labels, pa.string()))

    return relabel


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
