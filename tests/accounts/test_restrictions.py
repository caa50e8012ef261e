"""Column lists, row filters and masks on `read` grants, on every path that returns data."""

from __future__ import annotations

import base64
import json

import pytest

from accounts.models import Grant
from datalake.catalog.sync import sync_resources
from lineage import writer
from lineage.models import RequestLog
from tests.support.factories import client_for, make_user
from tests.support.lake import ingest, tx, write_lines
from tests.support.restrictions import COUNTRIES, ROWS, every_row, restricted

pytestmark = pytest.mark.django_db(transaction=True)


def test_rows_and_versions_show_only_visible_columns_rows_and_pseudonyms(stored):
    analyst = make_user("analyst")
    restricted(
        analyst,
        columns=["transaction_id", "country", "amount", "user_id"],
        row_filter={"country": ["FR"]},
        masked=["user_id"],
    )
    api = client_for(analyst)
    body = api.get(ROWS).json()
    assert body["count"] == 10 and body["count_is_estimate"] is False
    rows = every_row(api, ROWS)
    assert len(rows) == 10
    assert all(set(r) == {"transaction_id", "country", "amount", "user_id"} for r in rows)
    assert {r["country"] for r in rows} == {"FR"}
    real = {t["transaction_id"]: t["user_id"] for t in stored}
    assert all(r["user_id"].startswith("anon_") for r in rows)
    assert all(r["user_id"] != real[r["transaction_id"]] for r in rows)
    again = {r["transaction_id"]: r["user_id"] for r in every_row(api, ROWS)}
    assert again == {r["transaction_id"]: r["user_id"] for r in rows}  # stable
    # Same real value, same pseudonym (joins still work); different value, different one.
    by_real: dict[str, set] = {}
    for r in rows:
        by_real.setdefault(real[r["transaction_id"]], set()).add(r["user_id"])
    assert all(len(p) == 1 for p in by_real.values())
    assert len({p for ps in by_real.values() for p in ps}) == len(by_real)

    # A hidden column named anywhere is a 403 naming it; masked ones cannot be filtered.
    for params, column in (
        ({"fields": "transaction_id,product_id"}, "product_id"),
        ({"status": "completed"}, "status"),
        ({"ordering": "-timestamp"}, "timestamp"),
        ({"user_id": "user-1"}, "user_id"),
        ({"ordering": "user_id"}, "user_id"),
    ):
        refused = api.get(ROWS, params)
        assert refused.status_code == 403, (params, refused.content)
        assert column in refused.json()["detail"]
    # Filters on visible columns work, inside the allowed rows only.
    assert api.get(ROWS, {"country": "DE"}).json()["count"] == 0
    assert api.get(ROWS, {"amount__gt": 30}).json()["count"] == len(
        [t for t in stored if t["country"] == "FR" and t["amount"] > 30]
    )

    # Versions: the same restrictions on any version.
    version = api.get("/api/v1/resources/transactions/versions/1/rows/").json()
    assert version["count"] == 10
    assert all(
        set(r) == {"transaction_id", "country", "amount", "user_id"} for r in version["results"]
    )
    assert all(r["user_id"].startswith("anon_") for r in version["results"])

    # The request log says which restriction applied (stored by the writer thread: the
    # test runs outside a transaction, as the web does).
    assert writer.flush()
    logged = RequestLog.objects.filter(path=ROWS, username="analyst").latest("id")
    assert logged.restrictions == {
        "transactions": {
            "columns": ["amount", "country", "transaction_id", "user_id"],
            "row_filter": [{"country": ["FR"]}],
            "masked": ["user_id"],
        }
    }
    # The catalog shows it, and no row count that would count hidden rows.
    entry = api.get("/api/v1/resources/transactions/").json()
    assert entry["access"] == ["read"] and entry["row_count"] is None
    assert entry["restrictions"]["row_filter"] == [{"country": ["FR"]}]

    # Removing the restriction counts from the next request.
    Grant.objects.filter(user=analyst).delete()
    restricted(analyst)
    assert api.get(ROWS).json()["count"] == 30
    assert "product_id" in api.get(ROWS).json()["results"][0]


def test_a_hidden_key_gives_an_opaque_cursor_that_still_walks(stored):
    partner = make_user("partner")
    restricted(partner, columns=["country", "amount"], row_filter={"country": ["DE", "BE"]})
    api = client_for(partner)
    first = api.get(ROWS).json()
    cursor = first["next_cursor"]
    decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"TX-" not in decoded
    rows = every_row(api, ROWS)
    assert len(rows) == 20 and all(set(r) == {"country", "amount"} for r in rows)
    forged = api.get(ROWS, {"cursor": cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")})
    assert forged.status_code == 400


def test_raw_files_follow_the_grant_of_their_folder(stored):
    reader = make_user("reader")
    restricted(reader, "raw_transactions", columns=["transaction_id", "country"],
               row_filter={"country": ["BE"]}, masked=["transaction_id"])  # fmt: skip
    api = client_for(reader)
    url = "/api/v1/resources/raw_transactions/rows/"
    rows = every_row(api, url)
    assert len(rows) == 10
    assert all(set(r) == {"_file", "_line", "transaction_id", "country"} for r in rows)
    assert all(r["country"] == "BE" and r["transaction_id"].startswith("anon_") for r in rows)
    assert api.get(url, {"fields": "amount"}).status_code == 403
    assert api.get(url).json()["count"] == 10


def test_union_of_two_grants_direct_and_through_a_group(stored):
    from django.contrib.auth.models import Group

    user, team = make_user("u"), Group.objects.create(name="team")
    user.groups.add(team)
    restricted(user, columns=["transaction_id", "country"], row_filter={"country": ["FR"]})
    restricted(team, columns=["amount"], row_filter={"country": ["DE"]}, masked=["amount"])
    rows = every_row(client_for(user), ROWS)
    assert len(rows) == 20 and {r["country"] for r in rows} == {"FR", "DE"}
    assert all(set(r) == {"transaction_id", "country", "amount"} for r in rows)
    assert all(r["amount"].startswith("anon_") for r in rows)  # no grant shows it clear


def test_search_metrics_and_reports_respect_restrictions(stored):
    analyst = make_user("analyst")
    restricted(analyst, columns=["transaction_id", "country"], row_filter={"country": ["FR"]})
    api = client_for(analyst)
    fr = next(t for t in stored if t["country"] == "FR")
    de = next(t for t in stored if t["country"] == "DE")
    hit = api.get("/api/v1/search/", {"q": fr["transaction_id"], "since": "2026-01-01"}).json()
    (resource,) = hit["resources"]
    assert set(resource["results"][0]["record"]) == {"transaction_id", "country"}
    # Rows outside the filter: not found, not counted.
    none = api.get("/api/v1/search/", {"q": de["transaction_id"], "since": "2026-01-01"})
    assert none.json()["total"] == 0
    assert api.get("/api/v1/search/", {"q": "FR", "since": "2026-01-01"}).json()["total"] == 10
    # A hidden column's value finds nothing (a match would reveal it).
    by_user = api.get("/api/v1/search/", {"q": fr["user_id"], "since": "2026-01-01"})
    assert by_user.json()["total"] == 0

    # Metrics over the rows the grant shows (tests/metrics/test_restricted_metrics.py):
    # here the columns they sum are hidden, and each refusal names one.
    for url, column in (
        ("/api/v1/metrics/spent-last-minutes/", "amount_eur"),
        ("/api/v1/metrics/top-products/?x=3", "product_id"),
    ):
        refused = api.get(url)
        assert refused.status_code == 403 and refused.json()["code"] == "column_hidden"
        assert column in refused.json()["detail"]
    report = api.post(
        "/api/v1/reports/", {"report_name": "top-products", "params": {}}, format="json"
    )
    assert report.status_code == 403, report.content


def test_grants_api_takes_and_checks_restrictions(stored):
    admin = make_user("admin", is_staff=True)
    alice = make_user("alice")
    api = client_for(admin)
    body = {"user": "alice", "resource": "transactions", "privilege": "read"}
    made = api.post(
        "/api/v1/grants/",
        {**body, "columns": ["country"], "row_filter": {"country": ["FR"]}, "masked": []},
        format="json",
    )
    assert made.status_code == 201, made.content
    assert (made.json()["columns"], made.json()["row_filter"]) == (["country"], {"country": ["FR"]})
    again = api.post(
        "/api/v1/grants/",
        {**body, "columns": ["country"], "row_filter": {"country": ["FR"]}},
        format="json",
    )
    assert again.status_code == 200 and again.json()["id"] == made.json()["id"]
    for bad, field in (
        ({"columns": ["nope"]}, "columns"),
        ({"columns": "country"}, "columns"),
        ({"row_filter": {"amount": [1]}}, "row_filter"),  # decimal: not a row-filter column
        ({"row_filter": {"country": "FR"}}, "row_filter"),
        ({"row_filter": {"quantity": ["1"]}}, "row_filter"),
        ({"masked": ["nope"]}, "masked"),
        ({"privilege": "write", "columns": ["country"]}, "privilege"),
    ):
        response = api.post("/api/v1/grants/", {**body, **bad}, format="json")
        assert response.status_code == 400, (bad, response.content)
        assert field in response.json()["errors"], (bad, response.json())
    assert json.loads(json.dumps(client_for(alice).get(ROWS).json()["results"][0])) == {
        "country": "FR"
    }


@pytest.mark.slow
def test_a_raw_file_search_hit_carries_its_record_through_the_grant(lake):
    records = [tx(i, country=COUNTRIES[i % 3], user_id=f"user-{i % 4}") for i in range(30)]
    path = write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    sync_resources()
    assert ingest("transactions", path).status == "succeeded"
    reader = make_user("reader")
    restricted(reader, "raw_transactions", columns=["transaction_id", "country", "amount"],
               row_filter={"country": ["BE"]}, masked=["amount"])  # fmt: skip
    body = client_for(reader).get("/api/v1/search/", {"q": "Belgium", "since": "2026-01-01"})
    assert body.status_code == 200, body.content
    (resource,) = body.json()["resources"]
    assert resource["resource"] == "raw_transactions" and resource["matches"] == 10
    by_line = {r["_line"]: r for r in resource["results"]}
    assert len(by_line) == 10
    for line, hit in by_line.items():
        record, source = hit["record"], records[line - 1]
        assert set(record) == {"_file", "_line", "transaction_id", "country", "amount"}
        assert record["country"] == "BE" and record["transaction_id"] == source["transaction_id"]
        assert record["amount"].startswith("anon_")
        # The same record as the raw rows endpoint gives this reader.
        rows = client_for(reader).get(hit["url"]).json()["results"]
        assert rows == [record]


def test_a_search_hit_hides_where_and_when_it_is_where_the_grant_masks_it(lake):
    """`_file` and `_line` masked: a raw hit names neither (nor links to them), as the raw
    rows endpoint shows only their pseudonyms; `timestamp` masked: no hit has a date."""
    records = [tx(i, country="BE") for i in range(3)]
    path = write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    sync_resources()
    assert ingest("transactions", path).status == "succeeded"
    reader = make_user("reader")
    restricted(reader, "raw_transactions", masked=["_file", "_line"])
    rows = client_for(reader).get("/api/v1/resources/raw_transactions/rows/").json()["results"]
    assert rows and all(r["_file"].startswith("anon_") for r in rows), rows
    body = client_for(reader).get("/api/v1/search/", {"q": "Belgium", "since": "2026-01-01"})
    assert body.status_code == 200, body.content
    (resource,) = body.json()["resources"]
    assert len(resource["results"]) == 3
    for hit in resource["results"]:
        assert "url" not in hit and "_file" not in hit and "_line" not in hit, hit
        assert hit["record"]["_file"].startswith("anon_"), hit["record"]
        assert ".jsonl" not in str(hit), hit
    dated = make_user("dated")
    restricted(dated, "transactions", masked=["timestamp"])
    restricted(dated, "raw_transactions", masked=["timestamp"])
    body = client_for(dated).get("/api/v1/search/", {"q": "Belgium", "since": "2026-01-01"})
    hits = [hit for found in body.json()["resources"] for hit in found["results"]]
    assert len(hits) == 6 and all(hit["at"] is None for hit in hits), hits
