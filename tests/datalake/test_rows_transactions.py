"""The rows endpoint over `transactions`, against the real PostgreSQL.

Expected results are computed in Python from the rows the test inserted, then
compared with what the API returns after walking every page.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from functools import cmp_to_key

import pytest
from django.db import connection, transaction

from datalake.catalog import get_entry
from datalake.lake.merge import merge_transaction_rows
from datalake.models import Transaction
from tests.support.factories import client_for, give

URL = "/api/v1/resources/transactions/rows/"
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
COUNTRIES = ["FR", "DE", "ES", "BE"]


def _row(i: int, rng: random.Random) -> dict:
    return {
        "transaction_id": f"TX-{i:05d}",
        "user_id": f"U{rng.randint(1, 6)}",
        "timestamp": T0 + dt.timedelta(minutes=37 * i),
        "transaction_type": rng.choice(["online", "in_store", "mobile"]),
        "payment_method": rng.choice(["card", "paypal", "cash"]),
        "country": rng.choice(COUNTRIES),
        "product_id": f"P{rng.randint(1, 5)}",
        "product_category": rng.choice(["books", "toys", None]),
        "quantity": rng.randint(1, 4),
        "amount": Decimal(rng.randint(0, 30000)) / 100,
        "currency": rng.choice(["EUR", "USD"]),
        "amount_eur": Decimal(rng.randint(0, 30000)) / 100,
        "status": rng.choice(["completed", "pending", "failed"]),
        "customer_rating": rng.choice([1, 2, 3, 4, 5, None]),
    }


@pytest.fixture
def api(alice):
    """alice with `read` on transactions."""
    give(alice, "transactions", "read")
    return client_for(alice)


@pytest.fixture
def rows(db):
    rng = random.Random(7)
    data = [_row(i, rng) for i in range(57)]
    Transaction.objects.bulk_create([Transaction(**r) for r in data])
    # A superseded version must never show among the current rows.
    Transaction.objects.create(**{**data[0], "amount": Decimal("999.99"), "valid_to": 2})
    return data


def walk(api, params: dict) -> list[dict]:
    """Every row of a query, following next_cursor; asserts pages of at most 10."""
    response = api.get(URL, params)
    assert response.status_code == 200, response.json()
    body = response.json()
    out = list(body["results"])
    while body["next_cursor"]:
        assert len(body["results"]) == 10
        response = api.get(URL, {**params, "cursor": body["next_cursor"]})
        assert response.status_code == 200, response.json()
        body = response.json()
        out += body["results"]
    return out


def ids(rows) -> list[str]:
    return [r["transaction_id"] for r in rows]


def _fmt(value) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


OPS = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def filter_cases():
    entry_columns = {
        "transaction_id": ["eq", "in"],
        "user_id": ["eq", "in"],
        "timestamp": ["eq", "gt", "gte", "lt", "lte", "in"],
        "transaction_type": ["eq", "in"],
        "payment_method": ["eq", "in"],
        "country": ["eq", "in"],
        "product_id": ["eq", "in"],
        "product_category": ["eq", "in"],
        "quantity": ["eq", "gt", "gte", "lt", "lte", "in"],
        "amount": ["eq", "gt", "gte", "lt", "lte", "in"],
        "currency": ["eq", "in"],
        "amount_eur": ["eq", "gt", "gte", "lt", "lte", "in"],
        "status": ["eq", "in"],
        "customer_rating": ["eq", "gt", "gte", "lt", "lte", "in"],
    }
    return [(c, op) for c, ops in entry_columns.items() for op in ops]


@pytest.mark.django_db
def test_catalog_lists_exactly_these_operators():
    entry = get_entry("transactions")
    listed = [(c.name, op) for c in entry.columns for op in c.filters]
    assert sorted(listed) == sorted(filter_cases())


@pytest.mark.parametrize(("column", "op"), filter_cases())
def test_every_filter_operator(api, rows, column, op):
    present = [r[column] for r in rows if r[column] is not None]
    pivot = sorted(present)[len(present) // 2]
    if op == "in":
        distinct = sorted(set(present))
        chosen = distinct[: min(2, len(distinct) - 1)]
        expected = [r for r in rows if r[column] in chosen]
        params = {f"{column}__in": ",".join(_fmt(v) for v in chosen)}
    else:
        expected = [r for r in rows if r[column] is not None and OPS[op](r[column], pivot)]
        params = {column if op == "eq" else f"{column}__{op}": _fmt(pivot)}
    got = walk(api, params)
    assert ids(got) == sorted(ids(expected))
    assert expected, "the case must select something"
    assert len(expected) < len(rows) or op in ("gte", "lte")


def test_combined_filters_and_projection(api, rows):
    got = walk(api, {"country": "FR", "amount__gt": "100", "fields": "transaction_id,amount"})
    expected = [r for r in rows if r["country"] == "FR" and r["amount"] > 100]
    assert ids(got) == sorted(ids(expected))
    assert all(set(r) == {"transaction_id", "amount"} for r in got)
    by_id = {r["transaction_id"]: r for r in rows}
    assert all(Decimal(r["amount"]) == by_id[r["transaction_id"]]["amount"] for r in got)


def test_values_are_rendered_per_the_contract(api, rows):
    body = api.get(URL, {"transaction_id": "TX-00003"}).json()
    (row,) = body["results"]
    source = rows[3]
    assert row["timestamp"] == source["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert row["amount"] == f"{source['amount']:.2f}"
    assert set(row) == {f.name for f in get_entry("transactions").columns}


@pytest.mark.parametrize(
    "ordering",
    ["-amount", "customer_rating", "-customer_rating,timestamp", "product_category,-quantity"],
)
def test_ordering_with_cursor_walk_returns_each_row_once(api, rows, ordering):
    got = walk(api, {"ordering": ordering})
    assert sorted(ids(got)) == sorted(ids(rows))
    assert len(set(ids(got))) == len(rows)
    expected = sorted(rows, key=cmp_to_key(lambda a, b: pg_compare(a, b, ordering)))
    assert ids(got) == ids(expected)


def pg_compare(a: dict, b: dict, ordering: str) -> int:
    """PostgreSQL's order: nulls sort as larger than any value (last asc, first desc)."""
    for part in [*ordering.split(","), "transaction_id"]:
        name, desc = part.lstrip("-"), part.startswith("-")
        x, y = a[name], b[name]
        if x == y:
            continue
        result = 1 if x is None else -1 if y is None else (x > y) - (x < y)
        return -result if desc else result
    return 0


def test_filtered_cursor_walk_returns_every_row_exactly_once(api, rows):
    params = {"country__in": "FR,DE", "amount__gte": "20"}
    got = walk(api, params)
    expected = [r for r in rows if r["country"] in ("FR", "DE") and r["amount"] >= 20]
    assert ids(got) == sorted(ids(expected))
    assert len(expected) > 20


def test_page_numbers_size_cap_and_past_the_end(api, rows):
    first = api.get(URL, {"page_size": 500}).json()
    assert len(first["results"]) == 10
    assert first["count"] == 57 and first["count_is_estimate"] is False
    assert first["previous"] is None and "page=2" in first["next"]
    six = api.get(URL, {"page": 6, "page_size": 10}).json()
    assert ids(six["results"]) == sorted(ids(rows))[50:57]
    assert six["next"] is None and six["next_cursor"] is None and "page=5" in six["previous"]
    small = api.get(URL, {"page_size": 3, "page": 2}).json()
    assert ids(small["results"]) == sorted(ids(rows))[3:6]
    past = api.get(URL, {"page": 7})
    assert past.status_code == 404
    assert "detail" in past.json()


def _pages(api, params: dict, numbers) -> list[str]:
    out = []
    for n in numbers:
        response = api.get(URL, {**params, "page": n})
        assert response.status_code == 200, (n, response.json())
        out += ids(response.json()["results"])
    return out


def test_page_numbers_from_known_starts_stay_exact_across_versions(api, rows):
    """page=N starts after the row found to end page N-1, for this version of the table only."""
    params = {"country__in": "FR,DE", "ordering": "-amount", "page_size": 4}
    expected = ids(walk(api, {k: v for k, v in params.items() if k != "page_size"}))
    pages = range(1, (len(expected) + 3) // 4 + 1)
    assert _pages(api, params, pages) == expected  # OFFSETs, learning where pages start
    assert _pages(api, params, pages) == expected  # from the starts found
    assert (
        _pages(api, params, reversed(pages))
        == [  # jumps in any order
            i for n in reversed(pages) for i in expected[(n - 1) * 4 : n * 4]
        ]
    )
    assert api.get(URL, {**params, "page": len(pages) + 1}).status_code == 404

    # A merge makes the next version: a new top row shifts every page by one.
    top = {**rows[1], "transaction_id": "TX-99999", "country": "FR", "amount": Decimal("9999")}
    with transaction.atomic():
        merge_transaction_rows([{**top, "line": 1}], "test:shift")
    shifted = ["TX-99999", *expected]
    assert _pages(api, params, pages) == shifted[: len(pages) * 4]


def test_count_is_an_estimate_above_the_limit(api, rows, settings):
    settings.LAKE_EXACT_COUNT_LIMIT = 5
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE transactions")
    body = api.get(URL).json()
    assert body["count_is_estimate"] is True
    assert body["count"] > 0


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"colour": "red"}, "colour"),
        ({"fields": "transaction_id,nope"}, "fields"),
        ({"ordering": "nope"}, "ordering"),
        ({"amount__gt": "abc"}, "amount__gt"),
        ({"customer_rating": "2.5"}, "customer_rating"),
        ({"quantity__in": "1,x"}, "quantity__in"),
        ({"timestamp__gte": "yesterday"}, "timestamp__gte"),
        ({"country__gt": "FR"}, "country__gt"),
        ({"page": "0"}, "page"),
        ({"page": "two"}, "page"),
        ({"page_size": "-1"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4Il0", "ordering": "-amount"}, "cursor"),
        ({"country": ""}, "country"),
        ({"page": "2", "cursor": "WyJ4Il0"}, "cursor"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(api, rows, params, named):
    response = api.get(URL, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert named in body["errors"]
    assert named in body["detail"]
    assert body["code"] == "invalid"


def test_a_tampered_cursor_value_is_a_400_not_a_500(alice, api, rows):
    from django.http import QueryDict

    from datalake.catalog.selectors import resource_entry
    from datalake.query.grammar import parse_row_query
    from datalake.query.snapshots import current

    # Sealed as the server seals for alice (a hand-made one is refused before its values
    # are read).
    entry = resource_entry("transactions")
    query = parse_row_query(entry, QueryDict("ordering=amount"), owner=alice.pk)
    bad = query.encode_cursor(["not-a-number", "TX-00001"], current(entry).sealed())
    response = api.get(URL, {"ordering": "amount", "cursor": bad})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "cursor": ["Not a cursor of this query; use `next_cursor` as given."]
    }


def test_unknown_resource_is_404(api, db):
    assert api.get("/api/v1/resources/nope/rows/").status_code == 404
    assert api.get("/api/v1/resources/nope/").status_code == 404
