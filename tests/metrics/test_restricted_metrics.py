"""Metrics over the rows and columns a restricted grant shows (metrics.scopes): each figure
equals plain SQL over exactly those rows, for row filters, unions of grants, hidden and
masked columns; the scope's aggregates follow new versions and go when no grant needs them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from accounts.access.masking import pseudonym
from metrics import scopes
from metrics.models import Scope
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row

pytestmark = pytest.mark.django_db
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
COUNTRIES = ["FR", "DE", "BE"]


def data(n: int = 60, **changes) -> list[dict]:
    """Rows over three countries, two days back to a few minutes ago."""
    return [
        row(
            i,
            country=COUNTRIES[i % 3],
            user_id=f"U{i % 5}",
            product_id=f"P{i % 7}",
            timestamp=NOW - dt.timedelta(minutes=3 + 47 * i),
            **changes,
        )
        for i in range(1, n + 1)
    ]


def money(value) -> str:
    return str(Decimal(value or 0).quantize(Decimal("0.01")))


def expected_user_types(countries, since=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT user_id, transaction_type, sum(amount_eur), count(*) FROM transactions "
            "WHERE valid_to IS NULL AND status = 'completed' AND country = ANY(%s)"
            + ("" if since is None else " AND timestamp >= %s")
            + ' GROUP BY 1, 2 ORDER BY 3 DESC, user_id COLLATE "C", transaction_type COLLATE "C"',
            [countries] + ([] if since is None else [since]),
        )
        return [
            {"user_id": u, "transaction_type": t, "total_eur": money(s), "transactions": n}
            for u, t, s, n in cursor.fetchall()
        ]


def expected_top(countries, since=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT product_id, sum(quantity), count(*) FROM transactions "
            "WHERE valid_to IS NULL AND status = 'completed' AND country = ANY(%s)"
            + ("" if since is None else " AND timestamp >= %s")
            + " GROUP BY 1 ORDER BY 2 DESC, 1",
            [countries] + ([] if since is None else [since]),
        )
        return [
            {"rank": i, "product_id": p, "quantity": q, "transactions": n}
            for i, (p, q, n) in enumerate(cursor.fetchall(), start=1)
        ]


def figures(api, since=None) -> dict:
    """The three metrics as the API answers them (every page of the per-user ranking)."""
    params = {} if since is None else {"since": since.isoformat()}
    top = api.get("/api/v1/metrics/top-products/", {"x": 1000, **params})
    assert top.status_code == 200, top.json()
    per_user, page = [], 1
    while True:
        body = api.get("/api/v1/metrics/spent-per-user-type/", {**params, "page": page})
        assert body.status_code == 200, body.json()
        per_user += body.json()["results"]
        if not body.json()["next"]:
            break
        page += 1
    last = api.get("/api/v1/metrics/spent-last-minutes/", {"minutes": 600})
    assert last.status_code == 200, last.json()
    return {"top": top.json()["results"], "per_user": per_user, "last": last.json()}


def expected_last(countries, minutes=600) -> tuple[str, int]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(amount_eur), count(*) FROM transactions WHERE valid_to IS NULL "
            "AND status = 'completed' AND country = ANY(%s) AND timestamp >= %s",
            [countries, since],
        )
        total, count = cursor.fetchone()
    return money(total), count


def assert_equal_to_plain_sql(api, countries):
    since = NOW - dt.timedelta(hours=20, minutes=13)  # a partial first day: edges and days
    for start in (None, since):
        got = figures(api, start)
        assert got["top"] == expected_top(countries, start), start
        assert got["per_user"] == expected_user_types(countries, start), start
    total, count = expected_last(countries)
    assert (got["last"]["total_eur"], got["last"]["transactions"]) == (total, count)


def test_a_row_filter_gets_every_metric_over_its_rows_only(lake):
    merge(data())
    partner = make_user("partner")
    give(partner, "transactions", "read", row_filter={"country": ["FR"]})
    api = client_for(partner)
    assert_equal_to_plain_sql(api, ["FR"])
    assert Scope.objects.count() == 1  # built on first use, then reused
    # Everyone else's figures are the plain aggregates, unchanged by the scope.
    reader = make_user("reader")
    give(reader, "transactions", "read")
    assert_equal_to_plain_sql(client_for(reader), COUNTRIES)


def test_the_union_of_grants_direct_and_through_a_group(lake):
    merge(data())
    partner = make_user("partner")
    group = Group.objects.create(name="benelux")
    partner.groups.add(group)
    give(partner, "transactions", "read", row_filter={"country": ["FR"]})
    give(group, "transactions", "read", row_filter={"country": ["BE"]})
    assert_equal_to_plain_sql(client_for(partner), ["FR", "BE"])


def test_the_scope_follows_new_versions_and_goes_when_no_grant_needs_it(lake):
    merge(data())
    partner = make_user("partner")
    grant = give(partner, "transactions", "read", row_filter={"country": ["FR"]})
    api = client_for(partner)
    assert_equal_to_plain_sql(api, ["FR"])
    # Corrections: a row moves into France, one out of it, one is refunded, one is new.
    moved = data()
    merge(
        [
            {**moved[1], "country": "FR", "amount_eur": Decimal("999.25")},
            {**moved[2], "country": "DE"},
            {**moved[5], "status": "refunded"},
            row(500, country="FR", timestamp=NOW - dt.timedelta(minutes=5), product_id="P-NEW"),
        ]
    )  # the metrics follower (eager here) applies the version to the scope too
    assert_equal_to_plain_sql(api, ["FR"])
    assert scopes.prune() == 0  # still needed
    grant.delete()
    assert scopes.prune() > 0
    assert not Scope.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_scoped_product_day")
        assert cursor.fetchone()[0] == 0


def test_hidden_columns_are_refused_by_name_and_masked_keys_are_pseudonyms(lake):
    merge(data())
    hidden = make_user("hidden")
    give(hidden, "transactions", "read", columns=["country", "product_id", "quantity",
                                                  "timestamp", "status", "amount_eur",
                                                  "transaction_type"])  # fmt: skip
    api = client_for(hidden)
    refused = api.get("/api/v1/metrics/spent-per-user-type/")
    assert refused.status_code == 403 and refused.json()["code"] == "column_hidden"
    assert "user_id" in refused.json()["detail"]
    assert api.get("/api/v1/metrics/top-products/", {"x": 3}).status_code == 200

    masked = make_user("masked")
    give(masked, "transactions", "read", masked=["user_id"], row_filter={"country": ["DE"]})
    api = client_for(masked)
    got = figures(api)["per_user"]
    want = expected_user_types(["DE"])
    for each in want:
        each["user_id"] = pseudonym("transactions", "user_id", each["user_id"])
    assert got == want and got[0]["user_id"] != "U0"
    # A masked key cannot be filtered on (its values would be guessed one by one).
    refused = api.get("/api/v1/metrics/spent-per-user-type/", {"user_id": "U1"})
    assert refused.status_code == 403 and "user_id" in refused.json()["detail"]
    amounts = make_user("amounts")
    give(amounts, "transactions", "read", masked=["amount_eur"])
    refused = client_for(amounts).get("/api/v1/metrics/spent-last-minutes/")
    assert refused.status_code == 403 and "amount_eur" in refused.json()["detail"]


def test_two_masks_never_share_an_etag(lake):
    merge(data())
    one, two = make_user("one"), make_user("two")
    give(one, "transactions", "read", row_filter={"country": ["FR"]})
    give(two, "transactions", "read", row_filter={"country": ["DE"]})
    url, params = "/api/v1/metrics/top-products/", {"x": 5}
    first = client_for(one).get(url, params)
    second = client_for(two).get(url, params, HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200 and second["ETag"] != first["ETag"]
    assert second.json()["results"] == expected_top(["DE"])[:5]


def test_a_filter_value_with_percent_signs_and_quotes_is_data_not_sql(lake):
    """Row-filter values are quoted literals in the scope's SQL: `%`, `%s` and quotes in
    them filter as text (no 500, no placeholder confusion, no injection)."""
    odd = ["50% off", "%s", "o'clock"]
    merge([{**r, "product_category": odd[i % 3]} for i, r in enumerate(data())])
    partner = make_user("partner")
    give(partner, "transactions", "read", row_filter={"product_category": odd[:2]})
    got = client_for(partner).get("/api/v1/metrics/top-products/", {"x": 100})
    assert got.status_code == 200, got.json()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT product_id, sum(quantity), count(*) FROM transactions WHERE valid_to IS NULL "
            "AND status = 'completed' AND product_category = ANY(%s) GROUP BY 1 ORDER BY 2 DESC, 1",
            [odd[:2]],
        )
        want = [
            {"rank": i, "product_id": p, "quantity": q, "transactions": n}
            for i, (p, q, n) in enumerate(cursor.fetchall(), start=1)
        ]
    assert got.json()["results"] == want and want
    merge([row(901, product_category="50% off", product_id="P-LATE", quantity=99)])
    later = client_for(partner).get("/api/v1/metrics/top-products/", {"x": 1})
    assert later.json()["results"][0]["product_id"] == "P-LATE"  # the follower's upserts too
