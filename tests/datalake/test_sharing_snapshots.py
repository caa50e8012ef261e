"""A version's snapshot written from an earlier version's files (datalake/sharing/
snapshots.py, `_write_from_earlier`): the files without ended rows kept as hard links,
those holding an ended row rewritten, the rows written since added; the rows equal to a
full write from PostgreSQL at every version."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from accounts.access import UNRESTRICTED
from datalake.catalog.selectors import resource_entry
from datalake.query.backends import table_queryset
from datalake.sharing import snapshots
from tests.support.lake import pipeline_batch, tx

pytestmark = pytest.mark.django_db


def rows_of(snapshot) -> list[tuple[str, str]]:
    out = []
    for shared in snapshot.files:
        table = pq.read_table(snapshot.path / shared.name, columns=["transaction_id", "amount"])
        out += [(r["transaction_id"], str(r["amount"])) for r in table.to_pylist()]
    return sorted(out)


def rows_at(entry, version: int) -> list[tuple[str, str]]:
    found = table_queryset(entry, version).values_list("transaction_id", "amount")
    return sorted((t, str(a)) for t, a in found)


def inodes(snapshot) -> set[int]:
    return {(snapshot.path / f.name).stat().st_ino for f in snapshot.files}


def test_a_version_is_written_from_the_earlier_one_as_a_full_write_would(lake, settings):
    settings.SHARING_FILE_ROWS = 4  # version 1: two files, TX-0002 in the first
    pipeline_batch(*[tx(i) for i in range(6)])  # version 1
    pipeline_batch(tx(6))  # version 2: one insert
    pipeline_batch(tx(2, amount=99))  # version 3: a correction, TX-0002's row ends
    entry = resource_entry("transactions")
    v1, v2, v3 = (snapshots.snapshot(entry, f"v{n}", UNRESTRICTED, n) for n in (1, 2, 3))
    for version, snapshot in ((1, v1), (2, v2), (3, v3)):
        assert rows_of(snapshot) == rows_at(entry, version)
        assert snapshot.rows == len(rows_at(entry, version))
    assert inodes(v1) < inodes(v2)  # version 1's files kept, one new file
    assert len(inodes(v2) & inodes(v3)) == len(v2.files) - 1  # only TX-0002's file rewritten
    assert ("TX-0002", "99.00") in rows_of(v3) and ("TX-0002", "12.00") not in rows_of(v3)

    incremental = rows_of(v3)
    shutil.rmtree(snapshots.root() / "transactions")
    full = snapshots.snapshot(entry, "v3", UNRESTRICTED, 3)  # no earlier one: from PostgreSQL
    assert rows_of(full) == incremental and len(full.files) == 2


def test_a_version_that_ends_most_rows_is_written_in_full(lake, settings):
    pipeline_batch(*[tx(i) for i in range(4)])
    pipeline_batch(*[tx(i, amount=50 + i) for i in range(4)])  # every row corrected
    entry = resource_entry("transactions")
    v1 = snapshots.snapshot(entry, "v1", UNRESTRICTED, 1)
    v2 = snapshots.snapshot(entry, "v2", UNRESTRICTED, 2)
    assert not inodes(v1) & inodes(v2)
    assert rows_of(v2) == rows_at(entry, 2)


def test_until_the_current_version_is_written_the_latest_written_one_is_kept(lake, settings):
    pipeline_batch(tx(0), tx(1))  # version 1
    entry = resource_entry("transactions")
    v1 = snapshots.snapshot(entry, "v1", UNRESTRICTED, 1)
    pipeline_batch(tx(2))  # version 2, nobody read it yet
    settings.SHARING_URL_LIFETIME_SECONDS = -120  # every URL expired
    assert snapshots.drop_unreachable({"transactions": 2}) == []  # v1: what v2 is made from
    v2 = snapshots.snapshot(entry, "v2", UNRESTRICTED, 2)
    assert inodes(v1) < inodes(v2)
    assert snapshots.drop_unreachable({"transactions": 2}) == ["transactions/v1/all"]
    assert rows_of(v2) == rows_at(entry, 2)


def test_an_earlier_version_dropped_meanwhile_means_a_full_write(lake, tmp_path):
    pipeline_batch(tx(0), tx(1))
    entry = resource_entry("transactions")
    v1 = snapshots.snapshot(entry, "v1", UNRESTRICTED, 1)
    pipeline_batch(tx(2))
    shutil.rmtree(v1.path)  # drop_unreachable between finding it and linking its files
    out = tmp_path / "out"
    out.mkdir()
    schema = snapshots.base_schema(entry)
    assert snapshots._write_from_earlier(entry, (1, v1), 2, schema, out) is False
    assert not list(out.iterdir())
    assert rows_of(snapshots.snapshot(entry, "v2", UNRESTRICTED, 2)) == rows_at(entry, 2)
