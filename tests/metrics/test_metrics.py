"""Metrics over known data, merged through the real merge code; aggregates vs a rebuild."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from datalake.models import ProductDailySales
from metrics.aggregates import rebuild
from tests.support.factories import client_for, give
from tests.support.lake import D0, completed, merge, row


@pytest.fixture
def data(db):
    rows = [row(i) for i in range(40)]
    merge(rows)
    return {r["transaction_id"]: r for r in rows}


@pytest.fixture
def api(alice):
    give(alice, "transactions", "read")
    give(alice, "sales", "read")
    return client_for(alice)


def test_spent_per_user_type_against_independent_sums(api, data):
    since, until = D0 + dt.timedelta(hours=7, minutes=30), D0 + dt.timedelta(days=5, hours=3)
    expected = defaultdict(lambda: [Decimal(0), 0])
    for r in completed(data, since, until):
        expected[(r["user_id"], r["transaction_type"])][0] += r["amount_eur"]
        expected[(r["user_id"], r["transaction_type"])][1] += 1
    got, url = [], "/api/v1/metrics/spent-per-user-type/"
    params = {"since": since.isoformat(), "until": until.isoformat()}
    body = api.get(url, params).json()
    assert body["count"] == len(expected)
    while True:
        got += body["results"]
        if not body["next"]:
            break
        body = api.get(body["next"]).json()
    assert {
        (g["user_id"], g["transaction_type"]): [Decimal(g["total_eur"]), g["transactions"]]
        for g in got
    } == dict(expected)
    totals = [Decimal(g["total_eur"]) for g in got]
    assert totals == sorted(totals, reverse=True)
    one = api.get(url, {**params, "user_id": "U1"}).json()["results"]
    assert {g["user_id"] for g in one} == {"U1"}
    by_date = api.get(url, {"since": "2026-11-19", "until": "2026-11-19"}).json()
    day = completed(data, D0 + dt.timedelta(days=1), D0 + dt.timedelta(days=2, microseconds=-1))
    assert sum(g["transactions"] for g in by_date["results"]) == len(day)


def test_spent_per_user_type_all_time_from_the_totals(api, data):
    expected = defaultdict(lambda: [Decimal(0), 0])
    for r in completed(data):
        expected[(r["user_id"], r["transaction_type"])][0] += r["amount_eur"]
        expected[(r["user_id"], r["transaction_type"])][1] += 1
    got, url = [], "/api/v1/metrics/spent-per-user-type/"
    body = api.get(url).json()
    assert body["count"] == len(expected)
    while True:
        got += body["results"]
        if not body["next"]:
            break
        body = api.get(body["next"]).json()
    assert [
        ((g["user_id"], g["transaction_type"]), Decimal(g["total_eur"])) for g in got
    ] == sorted(((k, v[0]) for k, v in expected.items()), key=lambda kv: (-kv[1], kv[0]))
    assert {(g["user_id"], g["transaction_type"]): g["transactions"] for g in got} == {
        k: v[1] for k, v in expected.items()
    }


def test_top_products_with_ties_and_ranges(api, data):
    quantity = defaultdict(int)
    count = defaultdict(int)
    for r in completed(data):
        quantity[r["product_id"]] += r["quantity"]
        count[r["product_id"]] += 1
    expected = sorted(quantity, key=lambda p: (-quantity[p], p))
    body = api.get("/api/v1/metrics/top-products/", {"x": 10}).json()
    assert body["x"] == 10
    assert [
        (r["rank"], r["product_id"], r["quantity"], r["transactions"]) for r in body["results"]
    ] == [(i + 1, p, quantity[p], count[p]) for i, p in enumerate(expected)]
    since, until = D0 + dt.timedelta(days=1, hours=3), D0 + dt.timedelta(days=4)
    window = defaultdict(int)
    for r in completed(data, since, until):
        window[r["product_id"]] += r["quantity"]
    params = {"x": 2, "since": since.isoformat(), "until": until.isoformat()}
    ranged = api.get("/api/v1/metrics/top-products/", params).json()["results"]
    best = sorted(window, key=lambda p: (-window[p], p))[:2]
    assert [(r["product_id"], r["quantity"]) for r in ranged] == [(p, window[p]) for p in best]


def test_ties_are_broken_by_product_id(api, db):
    merge(
        [
            row(1, product_id="PZ", quantity=3),
            row(2, product_id="PA", quantity=3),
            row(3, product_id="PM", quantity=3),
        ]
    )
    body = api.get("/api/v1/metrics/top-products/", {"x": 2}).json()
    assert [r["product_id"] for r in body["results"]] == ["PA", "PM"]


def test_a_correction_moves_a_transaction_between_products(api, data):
    def quantities():
        body = api.get("/api/v1/metrics/top-products/", {"x": 1000}).json()
        return {r["product_id"]: r["quantity"] for r in body["results"]}

    before = quantities()
    moved = data["TX-0001"]
    assert moved["status"] == "completed" and moved["product_id"] == "P1"
    merge([{**moved, "product_id": "P9"}])
    after = quantities()
    assert after["P1"] == before["P1"] - moved["quantity"]
    assert after["P9"] == moved["quantity"]


def test_spent_last_minutes_sees_only_the_window(api, db):
    now = timezone.now()
    merge(
        [
            row(1, timestamp=now - dt.timedelta(minutes=2), amount_eur=Decimal("12.50")),
            row(2, timestamp=now - dt.timedelta(seconds=10), amount_eur=Decimal("7.25")),
            row(3, timestamp=now - dt.timedelta(minutes=4, seconds=30), amount_eur=Decimal("1.00")),
            row(4, timestamp=now - dt.timedelta(minutes=9), amount_eur=Decimal("100")),
            row(5, timestamp=now - dt.timedelta(minutes=1), status="failed"),
        ]
    )
    body = api.get("/api/v1/metrics/spent-last-minutes/").json()
    assert body["minutes"] == 5 and body["transactions"] == 3
    assert body["total_eur"] == "20.75"
    assert body["from"] < body["to"]
    ten = api.get("/api/v1/metrics/spent-last-minutes/", {"minutes": 10}).json()
    assert (ten["transactions"], ten["total_eur"]) == (4, "120.75")


def test_product_sales_has_every_day(api, db):
    ProductDailySales.objects.create(product_id="P7", date=dt.date(2026, 11, 18), times_sold=2)
    ProductDailySales.objects.create(product_id="P7", date=dt.date(2026, 11, 20), times_sold=3)
    ProductDailySales.objects.create(product_id="P8", date=dt.date(2026, 11, 19), times_sold=9)
    body = api.get("/api/v1/metrics/products/P7/sales/", {"days": 4, "until": "2026-11-20"}).json()
    assert body == {
        "product_id": "P7",
        "days": 4,
        "from": "2026-11-17",
        "until": "2026-11-20",
        "times_sold": 5,
        "per_day": [
            {"date": "2026-11-17", "times_sold": 0},
            {"date": "2026-11-18", "times_sold": 2},
            {"date": "2026-11-19", "times_sold": 0},
            {"date": "2026-11-20", "times_sold": 3},
        ],
    }
    default = api.get("/api/v1/metrics/products/P7/sales/").json()
    assert default["days"] == 7 and len(default["per_day"]) == 7


@pytest.mark.parametrize(
    ("url", "params", "named"),
    [
        ("/api/v1/metrics/top-products/", {}, "x"),
        ("/api/v1/metrics/top-products/", {"x": "0"}, "x"),
        ("/api/v1/metrics/top-products/", {"x": "1001"}, "x"),
        ("/api/v1/metrics/top-products/", {"x": "ten"}, "x"),
        ("/api/v1/metrics/top-products/", {"x": "3", "since": "last week"}, "since"),
        ("/api/v1/metrics/top-products/", {"x": "3", "colour": "red"}, "colour"),
        ("/api/v1/metrics/spent-last-minutes/", {"minutes": "0"}, "minutes"),
        ("/api/v1/metrics/spent-last-minutes/", {"minutes": "x"}, "minutes"),
        ("/api/v1/metrics/spent-per-user-type/", {"until": "2026-13-01"}, "until"),
        ("/api/v1/metrics/products/P1/sales/", {"days": "0"}, "days"),
        ("/api/v1/metrics/products/P1/sales/", {"until": "tomorrow"}, "until"),
    ],
)
def test_bad_parameters_are_400(api, db, url, params, named):
    response = api.get(url, params)
    assert response.status_code == 400
    assert named in response.json()["errors"]


def test_a_user_without_read_gets_403_from_every_metric(alice, db):
    client = client_for(alice)
    for url in (
        "/api/v1/metrics/spent-last-minutes/",
        "/api/v1/metrics/spent-per-user-type/",
        "/api/v1/metrics/top-products/?x=3",
        "/api/v1/metrics/products/P1/sales/",
    ):
        assert client.get(url).status_code == 403, url
    give(alice, "transactions", "read")
    assert client_for(alice).get("/api/v1/metrics/products/P1/sales/").status_code == 403


def aggregates() -> dict:
    out = {}
    with connection.cursor() as cursor:
        for table in ("metrics_product_day", "metrics_user_type_day", "metrics_minute"):
            cursor.execute(f"SELECT * FROM {table}")
            names = [c.name for c in cursor.description if c.name != "id"]
            rows = [dict(zip([c.name for c in cursor.description], r, strict=True)) for r in cursor]
            out[table] = sorted(tuple(r[n] for n in names) for r in rows if r["transactions"] != 0)
    return out


def test_incremental_aggregates_equal_a_rebuild_after_a_mixed_history(db):
    now = timezone.now()
    merge([row(i) for i in range(60)])  # a load
    merge([row(i, amount_eur=Decimal("99.99")) for i in range(0, 60, 7)])  # corrections
    merge([row(i, status="refunded") for i in range(1, 60, 9)])  # completed -> refunded
    merge([row(i, status="completed") for i in range(0, 60, 10)])  # refunded -> completed
    merge([row(i, product_id="PX", user_id="UX") for i in range(2, 60, 11)])  # moved
    merge([{**row(i), "timestamp": now} for i in range(3, 60, 13)])  # re-pushed: new minute/day
    merge([row(i) for i in range(60, 80)])  # more loads
    merge([row(i) for i in range(60, 80)])  # the same again: no change
    incremental = aggregates()
    assert incremental["metrics_minute"]
    with transaction.atomic():
        rebuild()
    assert aggregates() == incremental


RANGES = [
    (D0 + dt.timedelta(hours=7, minutes=30), D0 + dt.timedelta(days=5, hours=3)),
    (D0 + dt.timedelta(days=1), D0 + dt.timedelta(days=3, microseconds=-1)),
    (D0 + dt.timedelta(hours=2), D0 + dt.timedelta(hours=20)),
    (None, D0 + dt.timedelta(days=2, hours=12)),
    (D0 + dt.timedelta(days=4, hours=1), None),
]


@pytest.mark.parametrize("keep", [1, 4, 5_000])
def test_kept_range_rankings_equal_summing_every_group(api, data, monkeypatch, keep):
    """A range's ranking is stored once and its pages read from it: every page, for any
    number of kept ranks (deeper pages sum again), equals the full sum, ties included."""
    from datalake.models import Resource
    from metrics import ranges, selectors

    monkeypatch.setitem(ranges.KEEP, ranges.SPENT_PER_USER_TYPE, keep)
    at = Resource.objects.get(name="transactions").current_version
    for since, until in RANGES:
        split = selectors.split_days(since, until)
        everything, count = selectors._summed_per_user_type(split, None, 10_000, 0, at)
        assert everything
        for size in (1, 3, 10):
            for page in range(len(everything) // size + 1):
                rows, n, estimated = selectors.spent_per_user_type(
                    split, None, size, page * size, at
                )
                assert rows == everything[page * size : (page + 1) * size], (keep, size, page)
                assert (n, estimated) == (count, False)


def test_a_kept_ranking_is_reused_until_a_day_of_its_range_changes(api, data):
    """The stored ranking serves the same range again; a merge on another day keeps it; a
    correction on one of its days (here a partial edge day) gives a new one at once."""
    since, until = RANGES[0]
    params = {"x": 10, "since": since.isoformat(), "until": until.isoformat()}
    url = "/api/v1/metrics/top-products/"

    def results():
        body = api.get(url, params)
        assert body.status_code == 200, body.content
        return body.json()["results"]

    def kept():
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM metrics_range_result WHERE kind = 'top-products'")
            return [r[0] for r in cursor.fetchall()]

    def expected():
        sums = defaultdict(lambda: [0, 0])
        for r in completed(data, since, until):
            sums[r["product_id"]][0] += r["quantity"]
            sums[r["product_id"]][1] += 1
        ranked = sorted(sums.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [
            {"rank": i, "product_id": p, "quantity": q, "transactions": n}
            for i, (p, (q, n)) in enumerate(ranked, start=1)
        ]

    assert results() == expected()
    (first,) = kept()
    assert results() == expected() and kept() == [first]
    far = row(39, transaction_id="TX-LATER", timestamp=D0 + dt.timedelta(days=30))
    merge([far])  # another day: the ranking stands
    assert results() == expected() and kept() == [first]
    edge = next(r for r in completed(data, since, until) if r["timestamp"].date() == until.date())
    data[edge["transaction_id"]] = moved = {**edge, "product_id": "P-NEW", "quantity": 50}
    merge([moved])
    assert results() == expected() and results()[0]["product_id"] == "P-NEW"
    assert len(kept()) == 1 and kept() != [first]  # the stale one dropped
