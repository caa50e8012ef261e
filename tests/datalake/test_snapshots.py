"""Snapshot walks: a walk by `next_cursor` reads its first page's data to the end."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from accounts.models import Grant
from datalake.catalog.sync import sync_resources
from datalake.models import ExchangeRate
from lineage.models import Version
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row
from tests.support.restrictions import restricted

ROWS = "/api/v1/resources/transactions/rows/"
CURSOR_ERROR = ["Not a cursor of this query; use `next_cursor` as given."]


def _walk(client, url, params, during=None):
    """Every page of a walk: (rows, the data versions its pages said); `during(n)` runs
    after page n."""
    rows, versions, params, page = [], set(), dict(params), 0
    while True:
        response = client.get(url, params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["data_version"] == response["X-Data-Version"]
        versions.add(body["data_version"])
        rows += body["results"]
        page += 1
        if during:
            during(page)
        if not body["next_cursor"]:
            return rows, versions
        params["cursor"] = body["next_cursor"]


@pytest.mark.django_db(transaction=True)
def test_a_walk_of_10000_rows_reads_its_version_while_merges_land(alice):
    """Ordered by amount: the merges move rows the walk has passed and rows ahead of it,
    add rows before and after its position; the walk sees version 1 only, once each."""
    give(alice, "transactions", "read")
    merge([row(i, amount=Decimal(i % 5000)) for i in range(10_000)])
    expected = {f"TX-{i:04d}": f"{i % 5000}.00" for i in range(10_000)}

    def land(page):
        if page % 100 == 0:  # ten merges during the walk, each a new version
            n = page // 100
            moved = [row(i, amount=Decimal(9000 + n)) for i in range(n * 37, 10_000, 500)]
            added = [row(20_000 + n * 10 + k, amount=Decimal(k * 700)) for k in range(10)]
            merge(moved + added)

    api = client_for(alice)
    rows, versions = _walk(
        api, ROWS, {"ordering": "amount", "fields": "transaction_id,amount"}, land
    )
    assert versions == {"1"}
    walked = {r["transaction_id"]: r["amount"] for r in rows}
    assert len(rows) == len(walked) == 10_000  # each once
    assert walked == expected
    assert Version.objects.filter(resource__name="transactions").count() == 11
    fresh = api.get(ROWS, {"ordering": "amount"})
    assert fresh["X-Data-Version"] == "11"  # a new walk reads the newest


@pytest.mark.django_db
def test_a_named_versions_walk_stays_there_and_a_cursor_cannot_change_version(alice):
    give(alice, "transactions", "read")
    merge([row(i) for i in range(25)])
    merge([row(i, amount=Decimal(500)) for i in range(30)])
    api = client_for(alice)
    url = "/api/v1/resources/transactions/versions/1/rows/"
    rows, versions = _walk(api, url, {})
    assert versions == {"1"} and len(rows) == 25
    assert all(r["amount"] != "500.00" for r in rows)
    cursor = api.get(url).json()["next_cursor"]
    other = api.get("/api/v1/resources/transactions/versions/2/rows/", {"cursor": cursor})
    assert other.status_code == 400 and other.json()["errors"] == {"cursor": CURSOR_ERROR}
    # The /rows/ walk begun at version 2 reads version 2 to its end.
    current = api.get(ROWS).json()
    assert current["data_version"] == "2"
    assert api.get(url, {"cursor": current["next_cursor"]}).status_code == 400


@pytest.mark.django_db
def test_a_tampered_or_foreign_cursor_is_a_400_naming_cursor(alice):
    merge([row(i, country=["FR", "DE"][i % 2]) for i in range(40)])
    give(alice, "transactions", "read")
    bob = make_user("bob")
    restricted(bob, row_filter={"country": ["FR"]})
    alice_api, bob_api = client_for(alice), client_for(bob)
    cursor = alice_api.get(ROWS).json()["next_cursor"]
    flipped = cursor[:20] + ("A" if cursor[20] != "A" else "B") + cursor[21:]
    for bad in (flipped, cursor[:-3], cursor + "x", "", "\x00" * 5, "A" * 3000):
        response = alice_api.get(ROWS, {"cursor": bad})
        assert response.status_code == 400, (bad, response.content)
        assert response.json()["errors"] == {"cursor": CURSOR_ERROR}
    # Another user's cursor, with a narrower grant: refused, not walked under bob's terms.
    foreign = bob_api.get(ROWS, {"cursor": cursor})
    assert foreign.status_code == 400 and foreign.json()["errors"] == {"cursor": CURSOR_ERROR}
    # bob's own cursor, once his grant changed: refused too; his walk starts again.
    own = bob_api.get(ROWS).json()
    assert {r["country"] for r in own["results"]} == {"FR"}
    Grant.objects.filter(user=bob).update(row_filter={"country": ["FR", "DE"]})
    changed = bob_api.get(ROWS, {"cursor": own["next_cursor"]})
    assert changed.status_code == 400 and changed.json()["errors"] == {"cursor": CURSOR_ERROR}


@pytest.mark.django_db
def test_a_walk_over_a_table_without_versions_expires_when_it_changes(reader):
    day = dt.date(2026, 11, 1)
    ExchangeRate.objects.bulk_create(
        ExchangeRate(currency=c, date=day + dt.timedelta(days=d), rate=Decimal("1.1"))
        for c in ("USD", "GBP")
        for d in range(10)
    )
    api = client_for(reader)
    url = "/api/v1/resources/exchange_rates/rows/"
    first = api.get(url)
    assert first["X-Data-Version"].startswith("stamp:")
    second = api.get(url, {"cursor": first.json()["next_cursor"]})
    assert second.status_code == 200 and second["X-Data-Version"] == first["X-Data-Version"]
    ExchangeRate.objects.filter(currency="USD").update(rate=Decimal("1.2"))
    gone = api.get(url, {"cursor": first.json()["next_cursor"]})
    assert gone.status_code == 410 and gone.json()["code"] == "snapshot_expired"
    assert "start the walk again" in gone.json()["detail"]
    assert api.get(url)["X-Data-Version"] != first["X-Data-Version"]


@pytest.mark.django_db
def test_a_walk_over_a_version_no_longer_kept_is_410(alice):
    give(alice, "transactions", "read")
    merge([row(i) for i in range(25)])
    api = client_for(alice)
    cursor = api.get(ROWS).json()["next_cursor"]
    Version.objects.filter(resource__name="transactions", version=1).delete()
    gone = api.get(ROWS, {"cursor": cursor})
    assert gone.status_code == 410 and gone.json()["code"] == "snapshot_expired"


@pytest.mark.django_db
def test_a_folder_walk_reads_its_files_while_new_ones_land(alice, lake):
    folder = lake / "landing" / "transactions"
    folder.mkdir()

    def write(name, first, count, amount=10):
        lines = [
            {"transaction_id": f"TX-{i:04d}", "amount": amount} for i in range(first, first + count)
        ]
        (folder / name).write_text("\n".join(json.dumps(x) for x in lines) + "\n")

    write("2026-11-01.jsonl", 0, 15)
    write("2026-11-02.jsonl", 15, 15)
    sync_resources()
    give(alice, "raw_transactions", "read")
    api = client_for(alice)
    url = "/api/v1/resources/raw_transactions/rows/"
    params = {"ordering": "transaction_id", "fields": "transaction_id,_file"}
    first = api.get(url, params).json()
    assert first["data_version"].startswith("files:")
    write("2026-11-03.jsonl", 100, 15)  # lands during the walk: not in it
    rows = list(first["results"])
    body = first
    while body["next_cursor"]:
        response = api.get(url, {**params, "cursor": body["next_cursor"]})
        assert response.status_code == 200, response.content
        body = response.json()
        rows += body["results"]
    assert [r["transaction_id"] for r in rows] == [f"TX-{i:04d}" for i in range(30)]
    assert body["data_version"] == first["data_version"]
    # A file of the walk rewritten: the walk is over.
    cursor = api.get(url, params).json()["next_cursor"]
    write("2026-11-01.jsonl", 0, 15, amount=999)
    gone = api.get(url, {**params, "cursor": cursor})
    assert gone.status_code == 410 and gone.json()["code"] == "snapshot_expired"


@pytest.mark.django_db(transaction=True)
def test_a_version_landing_just_before_a_walks_page_is_read_gives_that_page_at_its_version(
    alice,
):
    """The version lands after the request began (its token lookup) and before its
    page's query: the check after the page reads the version again, finds the new one,
    and the page is read at the walk's version, never the new rows under the old name."""
    import threading

    from django.db import connection

    merge([row(i) for i in range(30)])  # version 1
    give(alice, "transactions")
    api = client_for(alice)
    first = api.get(ROWS, {"ordering": "transaction_id"})
    cursor = first.json()["next_cursor"]

    def land_version_2():
        merge([row(i, amount=Decimal(999)) for i in range(30)])

    landed = []

    def before_the_page(execute, sql, params, many, context):
        if not landed and 'FROM "transactions"' in sql and "LIMIT" in sql:
            landed.append(sql)
            other = threading.Thread(target=land_version_2)  # its own connection, committed
            other.start()
            other.join()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(before_the_page):
        second = api.get(ROWS, {"ordering": "transaction_id", "cursor": cursor})
    assert landed and second.status_code == 200, second.content
    assert second["X-Data-Version"] == "1"
    amounts = {r["amount"] for r in second.json()["results"]}
    assert not any(a.startswith("999") for a in amounts) and len(amounts) == 10, amounts
    third = api.get(ROWS, {"ordering": "transaction_id"})
    assert third["X-Data-Version"] == "2"  # the new version is there for a new walk
