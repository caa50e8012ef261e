"""Search across the lake: the index kept by the merges, the grants, literal text.

A real ingestion (Spark) fills a table and names the file's lines; a pipeline batch
(the consumer's own merge, in-process) then corrects a record.
"""

from __future__ import annotations

import random
import string

import pytest
from django.db import connection, transaction

from datalake.catalog.sync import sync_resources
from datalake.search import query
from tests.support.factories import client_for, give, make_user
from tests.support.lake import ingest, pipeline_batch, tx, write_lines

pytestmark = pytest.mark.django_db(transaction=True)

PLANTED = "HX-9f3a-000123"


def search(client, q, since="2026-11-01", **extra):
    return client.get("/api/v1/search/", {"q": q, "since": since, **extra})


def found(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content
    return {r["resource"]: [h["key"] for h in r["results"]] for r in response.json()["resources"]}


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
    # The record found, as the file says it (a table hit carries its row the same way).
    assert raw_hit["record"] == {"_file": "2026-11-20.jsonl", "_line": 18, **lines[17]}
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
        "as_of_version": None,  # not even the version of a table it may not read
        "as_of_versions": {},
        "lag_seconds": 0.0,
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
    old_line = search(api, "SKU-OLD-77").json()["resources"][0]["results"][0]
    assert old_line["record"]["product_id"] == "SKU-OLD-77"  # the file's, not the table's
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


# -- bounds (issue 24, item 2) ----------------------------------------------------------


class Statements:
    """The SQL a request ran (Django's execute wrapper: the real statements)."""

    def __init__(self):
        self.sql: list[str] = []
        self.params: list = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(" ".join(sql.split()))
        self.params.append(params)
        return execute(sql, params, many, context)


def test_a_prefix_of_too_many_ids_is_refused_with_a_hint(lake, settings):
    settings.SEARCH_PREFIX_MAX_MATCHES = 10
    pipeline_batch(*(tx(i, transaction_id=f"TX-{i:05d}") for i in range(30)))
    reader = make_user("reader")
    give(reader, "transactions")
    api = client_for(reader)
    broad = search(api, "TX-000")  # `-000`, four characters with a digit: a prefix of 30 ids
    assert broad.status_code == 400, broad.content
    body = broad.json()
    assert body["code"] == "query_too_broad" and set(body) >= {"detail", "code", "errors"}
    (hint,) = body["errors"]["q"]
    assert "-000" in hint and hint in body["detail"]
    # A prefix of at most that many records, and a whole id, still answer.
    assert len(found(search(api, "TX-0002"))["transactions"]) == 10
    assert found(search(api, "TX-00017")) == {"transactions": ["TX-00017"]}
    # The same prefix under a restricted grant is judged on what that reader sees.
    restricted_reader = make_user("partial")
    give(restricted_reader, "transactions", row_filter={"user_id": ["U1"]})
    partial = client_for(restricted_reader)
    assert search(partial, "TX-000").json()["total"] == 5  # the ids of U1 (i % 7 == 1)
    give(restricted_reader, "transactions", row_filter={"user_id": ["U2", "U3"]})
    assert search(partial, "TX-000").json()["code"] == "query_too_broad"


def test_every_search_statement_is_bounded_and_counts_stop_at_the_cap(lake):
    # A word new to this run: the statistics of earlier runs cannot know it as frequent.
    word = "cat" + "".join(random.choice(string.ascii_lowercase) for _ in range(10))
    pipeline_batch(*(tx(i, product_category=word) for i in range(query.COUNT_CAP + 5)))
    reader = make_user("reader")
    give(reader, "transactions")
    api = client_for(reader)
    for plan in ("bitmap", "walk"):
        if plan == "walk":
            fresh_statistics()
        query._stats["at"] = 0.0
        assert query.is_frequent([word]) is (plan == "walk")
        statements = Statements()
        with connection.execute_wrapper(statements):
            body = search(api, word).json()
        (resource,) = body["resources"]
        assert resource["matches"] == query.COUNT_CAP and resource["matches_capped"] is True
        assert len(resource["results"]) == query.PER_RESOURCE
        reads = [s for s in statements.sql if "FROM search_entries" in s]
        assert reads and all(" LIMIT " in s for s in reads), (plan, reads)


def lock_table(table: str):
    """Another session holding an exclusive lock on `table` until the returned callable
    is called (then it commits and closes); released anyway after 10 s."""
    import threading

    import psycopg

    params = connection.get_connection_params()
    holder = psycopg.connect(
        dbname=params["dbname"], user=params.get("user"), host=params.get("host"),
        port=params.get("port"), password=params.get("password"),
    )  # fmt: skip
    holder.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
    lock = threading.Lock()

    def release():
        with lock:
            if not holder.closed:
                holder.commit()
                holder.close()

    threading.Timer(10.0, release).start()  # before the fix a request waits until then
    return release


@pytest.mark.parametrize(
    ("table", "url"),
    [
        ("search_entries", "/api/v1/search/?q=TX-0001&since=2026-11-01"),
        ("transactions", "/api/v1/resources/transactions/rows/"),
    ],
)
def test_an_api_query_past_the_statement_timeout_is_a_503_in_the_envelope(
    lake, settings, table, url
):
    settings.API_STATEMENT_TIMEOUT_MS = 2000  # far above a statement of this data, far below 10 s
    pipeline_batch(tx(1))
    reader = make_user("reader")
    give(reader, "transactions")
    api = client_for(reader)
    assert api.get(url).status_code == 200
    release = lock_table(table)
    try:
        answer = api.get(url)
    finally:
        release()
    assert answer.status_code == 503, answer.content
    assert answer.json()["code"] == "query_timeout" and answer["Retry-After"]
    assert api.get(url).status_code == 200

    def session_limit():
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            return cursor.fetchone()[0]

    # Set once for the connection's API requests (no SET and RESET around each one)...
    assert session_limit() == "2s"
    # ...and never carried into a non-API request: the login page runs without it.
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        assert api.get("/api-auth/login/").status_code == 200
    assert seen[0] == "RESET statement_timeout", seen
    assert session_limit() == "0"


def test_the_bitmap_plan_and_the_prefix_probe_use_the_text_index_without_statistics(lake):
    pipeline_batch(*(tx(i, transaction_id=f"TX-{i:05d}") for i in range(300)))
    reader = make_user("reader")
    give(reader, "transactions")
    with connection.cursor() as cursor:  # a fresh index, or statistics of another day
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = 'search_entries'::regclass")
    query._stats["at"] = 0.0
    statements = Statements()
    with connection.execute_wrapper(statements):
        assert found(search(client_for(reader), "TX-00123")) == {"transactions": ["TX-00123"]}
    reads = [
        i
        for i, s in enumerate(statements.sql)
        if "search_entries e" in s or "search_entries WHERE" in s
    ]
    probe, bitmap = reads
    for at in (probe, bitmap):
        # Each statement as it ran, after its SET LOCALs: its plan.
        sets = [s for s in statements.sql[at - 2 : at] if s.startswith("SET LOCAL")]
        with transaction.atomic(), connection.cursor() as cursor:
            for statement in sets:
                cursor.execute(statement)
            cursor.execute("EXPLAIN " + statements.sql[at], statements.params[at])
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "search_doc" in plan and "search_current_at" not in plan, plan
