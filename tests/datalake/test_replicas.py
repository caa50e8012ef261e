"""Reads from a real PostgreSQL streaming replica (datalake.platform.replicas).

The standby is a second server made by `pg_basebackup` from the test server (the
`streaming_replica` fixture). A replica is proved to serve a read by what it answers
while its replay is paused: the data as it was before a write the primary has already
committed (and by its own statistics), never by a flag of ours alone.
"""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from datalake.models import Resource
from datalake.platform import replicas
from ingestion.models import RepushRequest
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row
from tests.support.pipeline import RunningConsumer
from tests.support.polling import wait_until
from tests.support.replica import ALIAS, DATABASES

pytestmark = pytest.mark.django_db(transaction=True, databases=DATABASES)

ROWS = "/api/v1/resources/transactions/rows/"


@pytest.fixture
def lagging_allowed(settings):
    """A paused replay keeps the replica usable (its lag grows with the clock)."""
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 3600


def version() -> int:
    return Resource.objects.get(name="transactions").current_version


def replica_scans(standby, dbname: str) -> int:
    """Rows the standby's own backends returned from the test database (its statistics)."""
    with standby.connect(dbname) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(
            "SELECT tup_returned + tup_fetched FROM pg_stat_database WHERE datname = %s",
            [dbname],
        ).fetchone()[0]


def test_data_reads_come_from_the_replica_and_show_what_it_replayed(
    replica, lagging_allowed, read_api
):
    merge([row(i) for i in range(1, 6)])
    old = version()
    replica.caught_up()
    first = read_api.get(ROWS)
    assert first.status_code == 200 and first["X-Read-From"] == "replica"
    assert first["X-Data-Version"] == str(old) and first.json()["count"] == 5

    replica.pause_replay()
    merge([row(6, product_id="P-NEW", quantity=40)])  # committed on the primary
    assert version() == old + 1
    dbname = replica_dbname()
    before = replica_scans(replica, dbname)

    rows = read_api.get(ROWS)
    assert rows["X-Read-From"] == "replica"
    assert (rows["X-Data-Version"], rows.json()["count"]) == (str(old), 5)  # not yet replayed
    versions = read_api.get("/api/v1/resources/transactions/versions/").json()
    assert versions["count"] == old
    entry = read_api.get("/api/v1/resources/transactions/").json()
    assert entry["derived_through_version"]["metrics"] == old
    top = read_api.get("/api/v1/metrics/top-products/", {"x": 1})
    assert top["X-Read-From"] == "replica" and top.json()["as_of_version"] == old
    assert top.json()["results"][0]["product_id"] != "P-NEW"
    found = read_api.get("/api/v1/search/", {"q": "P-NEW", "since": "2026-11-01"}).json()
    assert found["total"] == 0 and found["as_of_version"] == old
    # The standby's own statistics counted those reads.
    wait_until(lambda: replica_scans(replica, dbname) > before, timeout=30, what="its stats")
    # A version it has not replayed yet, named by the client: the primary answers it.
    pinned = read_api.get(f"/api/v1/resources/transactions/versions/{old + 1}/rows/")
    assert pinned.status_code == 200 and pinned["X-Read-From"] == "primary"
    assert pinned.json()["count"] == 6
    fresh = read_api.get("/api/v1/metrics/top-products/", {"x": 1, "min_version": old + 1})
    assert fresh.status_code == 200 and fresh["X-Read-From"] == "primary"
    assert fresh.json()["results"][0]["product_id"] == "P-NEW"

    replica.resume_replay()
    replica.caught_up()
    rows = read_api.get(ROWS)
    assert rows["X-Read-From"] == "replica"
    assert (rows["X-Data-Version"], rows.json()["count"]) == (str(old + 1), 6)
    top = read_api.get("/api/v1/metrics/top-products/", {"x": 1}).json()
    assert top["results"][0]["product_id"] == "P-NEW" and top["as_of_version"] == old + 1


def scrape(settings) -> str:
    """The Prometheus exposition, as a scraper with the token gets it."""
    settings.METRICS_TOKEN = "metrics-s3cret"
    response = APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-s3cret")
    assert response.status_code == 200
    return response.content.decode()


def replica_dbname() -> str:
    from django.db import connections

    return connections[ALIAS].settings_dict["NAME"]


def test_a_revoke_is_effective_at_once_while_the_replica_lags(replica, lagging_allowed, staff):
    merge([row(i) for i in range(1, 4)])
    bob = make_user("bob")
    grant = give(bob, "transactions", "read")
    replica.caught_up()
    api, admin = client_for(bob), client_for(staff)
    assert api.get(ROWS)["X-Read-From"] == "replica"

    replica.pause_replay()
    assert admin.delete(f"/api/v1/grants/{grant.pk}/").status_code == 204
    refused = api.get(ROWS)
    assert refused.status_code == 403  # the grants are the primary's, whatever the lag
    assert api.get("/api/v1/metrics/top-products/", {"x": 1}).status_code == 403
    # The admin wrote: its own reads go to the primary until the replica replays it.
    assert admin.get(ROWS)["X-Read-From"] == "primary"
    replica.resume_replay()
    replica.caught_up()
    assert admin.get(ROWS)["X-Read-From"] == "replica"


@pytest.mark.slow
def test_read_your_writes_after_a_repush_processed_while_replay_is_paused(
    replica, lagging_allowed, broker, topic, reader
):
    old = dt.datetime(2026, 11, 20, 13, 45, 12, tzinfo=dt.UTC)
    merge([row(1, transaction_id="TX-R1", timestamp=old)])
    alice = make_user("alice")
    give(alice, "transactions", "read")
    give(alice, "transactions", "write")
    api, bob = client_for(alice), client_for(reader)
    pushed = api.post(
        "/api/v1/pipeline/repush/", {"resource": "transactions", "transaction_id": "TX-R1"},
        format="json",
    )  # fmt: skip
    assert pushed.status_code == 202, pushed.json()
    replica.caught_up()  # the request's own write is replayed: alice reads the replica again
    assert api.get(ROWS)["X-Read-From"] == "replica"

    replica.pause_replay()
    with RunningConsumer():  # processes the re-push: its commit is alice's write too
        wait_until(
            lambda: RepushRequest.objects.get(pk=pushed.json()["id"]).version,
            timeout=60,
            what="the re-push processed",
        )
    mine = api.get(ROWS, {"transaction_id": "TX-R1"})
    assert mine["X-Read-From"] == "primary"
    assert mine.json()["results"][0]["timestamp"] == pushed.json()["new_timestamp"]
    theirs = bob.get(ROWS, {"transaction_id": "TX-R1"})  # nobody's write: the lagging replica
    assert theirs["X-Read-From"] == "replica"
    assert theirs.json()["results"][0]["timestamp"] == "2026-11-20T13:45:12Z"

    replica.resume_replay()
    replica.caught_up()
    mine = api.get(ROWS, {"transaction_id": "TX-R1"})
    assert mine["X-Read-From"] == "replica"
    assert mine.json()["results"][0]["timestamp"] == pushed.json()["new_timestamp"]


def test_a_replica_behind_or_stopped_is_skipped_and_the_health_check_says_so(
    replica, read_api, anon, settings, broker
):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 0.5
    settings.DATABASE_REPLICA_CHECK_SECONDS = 0
    settings.DATABASE_REPLICA_RETRY_SECONDS = 0
    merge([row(i) for i in range(1, 4)])
    replica.caught_up()
    assert read_api.get(ROWS)["X-Read-From"] == "replica"
    health = anon.get("/healthz").json()
    assert health["replicas"][ALIAS]["up"] and health["replicas"][ALIAS]["usable"]
    assert f'datalake_replica_up{{replica="{ALIAS}"}} 1.0' in scrape(settings)

    replica.pause_replay()
    merge([row(4)])
    behind = wait_until(
        lambda: (h := anon.get("/healthz").json()["replicas"][ALIAS])["lag_seconds"] > 0.5 and h,
        timeout=30,
        what="the replica's lag past the limit",
    )
    assert behind["replay_paused"] and not behind["usable"]
    rows = read_api.get(ROWS)
    assert rows.status_code == 200 and rows["X-Read-From"] == "primary"
    assert rows.json()["count"] == 4
    replica.resume_replay()
    wait_until(lambda: read_api.get(ROWS)["X-Read-From"] == "replica", timeout=30, what="used")

    # Stopped after it was found usable: this process still trusts what it last saw, so
    # the next read starts on the replica, fails there, and the primary answers it.
    settings.DATABASE_REPLICA_CHECK_SECONDS = 3600
    assert read_api.get(ROWS)["X-Read-From"] == "replica"
    replica.stop_server()
    for _ in range(3):  # never a failed request
        rows = read_api.get(ROWS)
        assert rows.status_code == 200 and rows["X-Read-From"] == "primary"
        assert rows.json()["count"] == 4
    assert replicas.read_alias() == "default"  # no route outlives its request
    settings.DATABASE_REPLICA_CHECK_SECONDS = 0
    health = anon.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["replicas"][ALIAS]["up"] is False
    assert f'datalake_replica_up{{replica="{ALIAS}"}} 0.0' in scrape(settings)
    replica.start_server()
    wait_until(lambda: read_api.get(ROWS)["X-Read-From"] == "replica", timeout=60, what="back")
