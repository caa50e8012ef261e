"""Search across the lake: the index kept by the merges, the grants, literal text.

A real ingestion (Spark) fills a table and names the file's lines; a pipeline batch
(the consumer's own merge, in-process) then corrects a record.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from datalake.catalog.sync import sync_resources
from datalake.search import query
from ingestion.merge import merge_transaction_rows
from ingestion.rates import RateTable
from ingestion.validation import validate_transaction
from tests.conftest import client_for, give, make_user
from tests.test_ingestion import ingest, tx, write_lines

pytestmark = pytest.mark.django_db(transaction=True)

PLANTED = "HX-9f3a-000123"


def search(client, q, since="2026-11-01", **extra):
    return client.get("/api/v1/search/", {"q": q, "since": since, **extra})


def found(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content
    return {r["resource"]: [h["key"] for h in r["results"]] for r in response.json()["resources"]}


def pipeline_batch(*records: dict) -> None:
    """Records merged as the consumer merges a batch of messages."""
    rates = RateTable.from_database()
    rows = []
    for line, record in enumerate(records, 1):
        row, reason = validate_transaction(json.dumps(record), rates)
        assert reason is None, reason
        rows.append({**row, "line": line})
    with transaction.atomic():
        merge_transaction_rows(rows, "pipeline:test")


def fresh_statistics() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_entries")
    query._stats["at"] = 0.0


@pytest.mark.slow
def test_search_finds_records_in_tables_and_files_and_follows_corrections(lake):
    lines = [tx(i, country="FR" if i % 2 else "DE") for i in range(40)]
    lines[17] = tx(17, transaction_id=PLANTED, product_id="SKU-OLD-77", country="FR")
    lines[17]["timestamp"] = "2026-11-20T10:00:00Z"
    path = write_lines(lake / "landing/transactions/2026-11-20.jsonl", lines)
    sync_resources()
    run = ingest("transactions", path)
    assert run.status == "succeeded", run.error

    reader, partial, nobody = make_user("reader"), make_user("partial"), make_user("nobody")
    give(reader, "transactions")
    give(reader, "raw_transactions")
    give(partial, "transactions")
    api = client_for(reader)

    # The planted id: in the table and in the file's line 18, not after its date.
    hits = search(api, PLANTED)
    assert found(hits) == {"raw_transactions": [PLANTED], "transactions": [PLANTED]}
    body = {r["resource"]: r for r in hits.json()["resources"]}
    raw_hit = body["raw_transactions"]["results"][0]
    assert (raw_hit["_file"], raw_hit["_line"]) == ("2026-11-20.jsonl", 18)
    assert api.get(raw_hit["url"]).json()["results"][0]["transaction_id"] == PLANTED
    table_hit = body["transactions"]["results"][0]
    assert table_hit["record"]["product_id"] == "SKU-OLD-77"
    assert api.get(table_hit["url"]).json()["results"][0]["transaction_id"] == PLANTED
    assert hits.json()["total"] == 2
    assert found(search(api, PLANTED, since="2026-11-20")) != {}
    assert found(search(api, PLANTED, since="2026-11-21")) == {}
    # A partial code, any case; a word of the record.
    assert found(search(api, "hx-9F3A-0001"))["transactions"] == [PLANTED]
    assert found(search(api, "sku-old-77"))["transactions"] == [PLANTED]

    # Grants: one resource readable, one named; none readable, none named.
    assert set(found(search(client_for(partial), PLANTED))) == {"transactions"}
    assert search(client_for(nobody), PLANTED).json() == {
        "q": PLANTED,
        "since": "2026-11-01",
        "total": 0,
        "resources": [],
    }

    # A country by code and by name, on both plans (rare before statistics, frequent after).
    for plan in ("bitmap", "walk"):
        if plan == "walk":
            fresh_statistics()
            assert query.is_frequent(["fr"])
        by_code, by_name = search(api, "FR").json(), search(api, "france").json()
        assert by_code["total"] == by_name["total"] == 40  # 20 rows and their 20 lines
        assert all(len(r["results"]) == 10 for r in by_code["resources"])
        assert all(r["record"]["country"] == "FR" for r in by_name["resources"][1]["results"]), (
            by_name
        )

    # Text with quotes, wildcards, SQL and tsquery syntax is searched literally.
    for text in ("O'Brien", '"quoted"', "100%", "a_b", "'; DROP TABLE search_entries; --",
                 "!(fr | de) & x:*", "<-> <2>", "\\", "%_%", "fr & !de"):  # fmt: skip
        response = search(api, text)
        assert response.status_code == 200, (text, response.content)
    assert found(search(api, "fr & !de")) == {}  # both words, literally: none has "de" too

    # A correction through the pipeline: found by its new content, no longer by its old
    # in the table; the file still says the old content, so the raw line still matches.
    pipeline_batch(tx(17, transaction_id=PLANTED, product_id="SKU-NEW-88", country="FR"))
    assert found(search(api, "SKU-NEW-88")) == {"transactions": [PLANTED]}
    assert found(search(api, "SKU-OLD-77")) == {"raw_transactions": [PLANTED]}
    assert search(api, PLANTED).json()["resources"][1]["results"][0]["record"]["product_id"] == (
        "SKU-NEW-88"
    )
    # A record re-pushed (new timestamp) is found at its new date only in the table.
    pipeline_batch(tx(17, transaction_id=PLANTED, product_id="SKU-NEW-88", country="FR")
                   | {"timestamp": "2026-11-23T08:00:00Z"})  # fmt: skip
    assert found(search(api, PLANTED, since="2026-11-22")) == {"transactions": [PLANTED]}


def test_search_parameters_are_checked(alice):
    api = client_for(alice)
    assert api.get("/api/v1/search/", {"q": "x"}).json()["errors"]["since"]
    assert api.get("/api/v1/search/", {"since": "2026-01-01"}).json()["errors"]["q"]
    assert search(api, "x", since="yesterday").status_code == 400
    assert search(api, "x", limit="5").json()["errors"] == {"limit": ["Unknown query parameter."]}
    assert search(api, "x" * 201).status_code == 400
    assert search(api, "   ").status_code == 400
    empty = search(api, "-- !! ::")  # no word at all: nothing to find, not an error
    assert empty.status_code == 200 and empty.json()["total"] == 0
