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
        derive(base, restriction, out, entry.key, _updates_as_seen(base, restriction, entry.key))

    return ensure(relative, write)


UPDATES = ("update_preimage", "update_postimage")


def _updates_as_seen(base: Snapshot, restriction: Restriction, key: tuple[str, ...]):
    """An update as the recipient sees it (a `derive` step). Under a row filter, an image
    whose other image the filter drops is relabelled: the preimage as a `delete`, the
    postimage as an `insert`. Under a column list, an update whose two images show the
    same values is dropped: it changed hidden columns only, and the pair would tell
    that one changed, and when."""
    if restriction.rows is None and restriction.columns is None:
        return None
    rows_only = Restriction(rows=restriction.rows, resource=restriction.resource)
    images: dict[str, dict[tuple, tuple]] = {kind: {} for kind in UPDATES}
    visible: list[str] = []
    for shared in base.files:
        table = pq.read_table(base.path / shared.name)
        visible = [n for n in restriction.visible(table.column_names) if n != CHANGE_TYPE]
        updates = table.filter(pc.is_in(table[CHANGE_TYPE], value_set=pa.array(UPDATES)))
        if restriction.rows is not None:
            updates = rows_only.apply_to_arrow(updates)
        for row in updates.to_pylist():
            shown = tuple(row[n] for n in visible)
            images[row[CHANGE_TYPE]][tuple(row[k] for k in key)] = shown
    before, after = images[UPDATES[0]], images[UPDATES[1]]
    unseen = set()
    if restriction.columns is not None:
        unseen = {k for k, shown in before.items() if k in after and after[k] == shown}

    def relabel(table: pa.Table) -> pa.Table:
        change = table[CHANGE_TYPE]
        where = pc.indices_nonzero(pc.is_in(change, value_set=pa.array(UPDATES))).to_pylist()
        if not where:
            return table
        labels = change.to_pylist()
        keys = table.select(list(key)).take(where).to_pylist()
        dropped = []
        for i, values in zip(where, keys, strict=True):
            found = tuple(values[k] for k in key)
            if found in unseen:
                dropped.append(i)
            elif found not in (after if labels[i] == UPDATES[0] else before):
                labels[i] = "delete" if labels[i] == UPDATES[0] else "insert"
        index = table.schema.get_field_index(CHANGE_TYPE)
        table = table.set_column(index, CHANGE_TYPE, pa.array(labels, pa.string()))
        if dropped:
            keep = [True] * table.num_rows
            for i in dropped:
                keep[i] = False
            table = table.filter(pa.array(keep))
        return table

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
