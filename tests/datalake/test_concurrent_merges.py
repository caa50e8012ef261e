"""Merges side by side (the pipeline's consumers): written in parallel, published in order.

Each merge runs on its own thread and database connection, as two consumers would;
events hold a merge's transaction open at a chosen point.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from datalake.lake.merge import MergeConflict, merge_transaction_rows
from datalake.lake.versions import version_begin, version_lock, version_publish
from datalake.models import Resource, Transaction
from lineage.models import Version
from metrics.aggregates import rebuild
from tests.support.lake import row
from tests.support.polling import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
WAIT = 30  # seconds: only reached when a merge that should proceed is stuck


class Merge(threading.Thread):
    """`merge_transaction_rows(rows, concurrent=True)` in a transaction on its own
    connection; the transaction stays open until `release` is set."""

    def __init__(self, rows, source: str):
        super().__init__(daemon=True)
        self.rows, self.source = rows, source
        self.written = threading.Event()  # merged, transaction still open
        self.release = threading.Event()
        self.roll_back = False  # end by an error instead of a commit
        self.result = self.error = None

    def run(self):
        try:
            with transaction.atomic():
                self.result = merge_transaction_rows(self.rows, self.source, concurrent=True)
                self.written.set()
                assert self.release.wait(WAIT)
                if self.roll_back:
                    raise RuntimeError("rolled back on purpose")
        except BaseException as exc:
            self.error = exc
        finally:
            self.written.set()
            connection.close()

    def finish(self):
        self.release.set()
        self.join(WAIT)
        assert not self.is_alive()


def wait_blocked(on: str) -> None:
    """Until another backend of this database waits for a lock of kind `on` (`advisory`:
    a version number or the merge lock; `transactionid`: a row or key another open
    transaction wrote)."""

    def waiting() -> int:
        with connection.cursor() as cursor:
            # Inside a transaction the activity view is read once, unless cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND wait_event = %s",
                [on],
            )
            return cursor.fetchone()[0]

    wait_until(waiting, timeout=WAIT, what=f"a merge waiting for a lock ({on})", interval=0.05)


def current_ids():
    return set(
        Transaction.objects.filter(valid_to__isnull=True).values_list("transaction_id", flat=True)
    )


def test_two_merges_write_side_by_side_and_publish_in_their_order():
    first = Merge([row(i) for i in range(10)], "first")
    first.start()
    assert first.written.wait(WAIT) and first.error is None
    # The second does not wait for the first to write its rows...
    second = Merge([row(i) for i in range(10, 20)], "second")
    second.start()
    # ...only to publish: its version is the next one, current after the first's.
    wait_blocked("advisory")
    assert not second.written.is_set(), "published while a lower version was still open"
    assert current_ids() == set()
    first.finish()
    assert first.result.version == 1
    assert second.written.wait(WAIT) and second.error is None
    second.finish()
    assert second.result.version == 2
    assert list(Version.objects.order_by("version").values_list("version", "source")) == [
        (1, "first"),
        (2, "second"),
    ]
    assert Resource.objects.get(name="transactions").current_version == 2
    assert len(current_ids()) == 20


def test_a_later_merge_never_publishes_before_an_earlier_one_ends():
    """The lower version rolls back: the higher one is published, the number left unused
    (no version can appear below a published one)."""
    first = Merge([row(i) for i in range(5)], "first")
    first.start()
    assert first.written.wait(WAIT)
    second = Merge([row(i) for i in range(5, 10)], "second")
    second.start()
    wait_blocked("advisory")
    assert not second.written.is_set()
    first.roll_back = True
    first.finish()
    assert isinstance(first.error, RuntimeError)
    second.finish()
    assert second.error is None and second.result.version == 2
    assert list(Version.objects.values_list("version", flat=True)) == [2]
    assert current_ids() == {f"TX-{i:04d}" for i in range(5, 10)}
    # The next merge, with nothing else running, takes the number after the current one.
    third = Merge([row(i) for i in range(10, 12)], "third")
    third.start()
    third.finish()
    assert third.result.version == 3


def test_a_merge_that_changed_nothing_leaves_its_number_to_the_next():
    merge = Merge([row(1)], "a")
    merge.start()
    merge.finish()
    again = Merge([row(1)], "same row")  # nothing to change: no version
    again.start()
    again.finish()
    assert again.result.version == 1 and again.result.added == 0
    changed = Merge([row(1, amount_eur=row(1)["amount_eur"] + 1)], "changed")
    changed.start()
    changed.finish()
    assert changed.result.version == 2
    assert list(Version.objects.order_by("version").values_list("version", flat=True)) == [1, 2]


def test_the_same_transaction_in_two_concurrent_batches_is_not_lost():
    """A producer that did not key by id: one record in two consumers' batches. The one
    that waited for the other finds its insert hidden and is merged again after it."""
    first = Merge([row(1), row(2)], "first")
    first.start()
    assert first.written.wait(WAIT)
    updated = row(2, amount_eur=row(2)["amount_eur"] + 5)
    second = Merge([updated, row(3)], "second")
    second.start()  # blocks on TX-0002's key, written by the open first merge
    wait_blocked("transactionid")
    assert not second.written.is_set()
    first.finish()
    second.join(WAIT)
    assert isinstance(second.error, MergeConflict)
    assert Transaction.objects.filter(transaction_id="TX-0003").count() == 0  # rolled back
    retry = Merge([updated, row(3)], "second, again")
    retry.start()
    retry.finish()
    assert retry.error is None and retry.result.version == 2 and retry.result.changed == 1
    history = Transaction.objects.filter(transaction_id="TX-0002").order_by("valid_from")
    assert [(t.valid_from, t.valid_to, t.amount_eur) for t in history] == [
        (1, 2, row(2)["amount_eur"]),
        (2, None, updated["amount_eur"]),
    ]


def test_an_exclusive_merge_waits_for_the_concurrent_ones_and_they_wait_for_it():
    concurrent = Merge([row(i) for i in range(3)], "pipeline")
    concurrent.start()
    assert concurrent.written.wait(WAIT)
    done = threading.Event()
    taken = {}

    def exclusive():
        try:
            with transaction.atomic():
                taken["version"] = version_lock("transactions")[1]
                done.set()
        finally:
            connection.close()

    thread = threading.Thread(target=exclusive, daemon=True)
    thread.start()
    wait_blocked("advisory")
    assert not done.is_set(), "an exclusive merge ran beside a concurrent one"
    concurrent.finish()
    assert done.wait(WAIT) and taken["version"] == 2
    thread.join(WAIT)

    with transaction.atomic():
        version_lock("transactions")  # held: a concurrent merge cannot start
        blocked = Merge([row(9)], "pipeline")
        blocked.start()
        wait_blocked("advisory")
        assert not blocked.written.is_set()
    blocked.finish()
    assert blocked.error is None and blocked.result.version == 2


def test_versions_published_out_of_thread_order_keep_the_aggregates_equal_to_a_rebuild():
    merges = [Merge([row(i) for i in range(k * 8, k * 8 + 8)], f"m{k}") for k in range(4)]
    for merge in merges:
        merge.release.set()
        merge.start()
    for merge in merges:
        merge.join(WAIT)
        assert merge.error is None
    assert sorted(m.result.version for m in merges) == [1, 2, 3, 4]
    with connection.cursor() as cursor:
        totals = (
            "SELECT user_id, transaction_type, transactions, total_eur "
            "FROM metrics_user_type_total ORDER BY 1, 2"
        )
        cursor.execute(totals)
        kept = cursor.fetchall()
        assert len(kept) == 6
        with transaction.atomic():
            rebuild(["metrics_user_type_total"])
            cursor.execute(totals)
            assert cursor.fetchall() == kept


def test_version_begin_and_publish_outside_a_transaction_are_refused():
    with pytest.raises(AssertionError):
        version_begin("transactions")
    with transaction.atomic():
        resource_id, version = version_begin("transactions")
        assert version == 1
        assert version_publish(resource_id, version).current_version == 0
