"""CSV and Arrow exports of `rows/`: every row of the query, equal to the cursor walk.

Each export is compared with the JSON pages of the same query walked by `next_cursor`
(`every_row`), value by value after typing both sides, for a reader with a full grant
and one with a restricted grant (columns, row filter, masked column).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pyarrow as pa
import pytest
from django.db import connection
from django.http import QueryDict

from datalake.catalog import get_entry
from datalake.catalog.sync import sync_resources
from datalake.query.export import Export
from datalake.query.grammar import parse_row_query
from tests.support.factories import client_for, give, make_user
from tests.support.lake import pipeline_batch, tx
from tests.support.polling import wait_until
from tests.support.restrictions import ROWS, every_row, restricted

# The export reads on a connection of its own: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)
ARROW = "application/vnd.apache.arrow.stream"
RAW = "/api/v1/resources/raw_transactions/rows/"


@pytest.fixture(autouse=True)
def _resources(transactional_db):
    sync_resources()  # a transactional test starts from empty tables


def _typed(value, kind: str):
    """A JSON or CSV cell as a Python value of its column's type (None for NULL)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or kind == "string":
        return value
    convert = {
        "integer": int,
        "decimal": Decimal,
        "timestamp": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "boolean": lambda v: v == "true",
        "array": json.loads,
    }
    return convert[kind](value)


def _types(resource: str, names) -> dict[str, str]:
    entry = get_entry(resource)
    return {n: entry.column(n).type for n in names}


def _json_rows(resource: str, rows: list[dict]) -> list[dict]:
    types = _types(resource, rows[0]) if rows else {}
    return [{n: _typed(v, types[n]) for n, v in row.items()} for row in rows]


def _body(response) -> bytes:
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content)  # the test client closes it at the end


def csv_rows(resource: str, response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(_body(response).decode()))
    types = _types(resource, reader.fieldnames)
    return [{n: _typed(v, types[n]) for n, v in row.items()} for row in reader]


def arrow_table(response) -> pa.Table:
    assert response["Content-Type"] == ARROW
    return pa.ipc.open_stream(_body(response)).read_all()


def _arrow_rows(table: pa.Table) -> list[dict]:
    return [
        {n: v if not isinstance(v, dt.datetime) else v.astimezone(dt.UTC) for n, v in r.items()}
        for r in table.to_pylist()
    ]


def assert_exports_equal_walk(client, url, resource="transactions", **params):
    walked = _json_rows(resource, every_row(client, url, **params))
    assert walked, "the query under test selects rows"
    assert csv_rows(resource, client.get(url, {**params, "format": "csv"})) == walked
    table = arrow_table(client.get(url, params, HTTP_ACCEPT=ARROW))
    assert _arrow_rows(table) == walked
    return walked, table


QUERIES = [
    {},
    {"country": "FR", "fields": "transaction_id,amount,timestamp,customer_rating"},
    {"ordering": "-amount,timestamp", "amount__gte": "15"},
    {"ordering": "country,-timestamp", "fields": "country,timestamp,user_id"},
]


@pytest.mark.parametrize("params", QUERIES)
def test_exports_equal_the_cursor_walk(stored, read_api, params):
    _walked, table = assert_exports_equal_walk(read_api, ROWS, **params)
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    if "fields" in params:
        assert table.column_names == params["fields"].split(",")
    if "amount" in table.column_names:
        assert table.schema.field("amount").type == pa.decimal128(16, 2)


@pytest.mark.parametrize("params", [{}, {"ordering": "-amount"}, {"country": "DE"}])
def test_a_restricted_reader_exports_what_its_pages_show(stored, params):
    user = make_user("rita")
    restricted(
        user,
        columns=["transaction_id", "user_id", "country", "amount", "timestamp"],
        row_filter={"country": ["FR", "DE"]},
        masked=["user_id", "transaction_id"],
    )
    client = client_for(user)
    walked, table = assert_exports_equal_walk(client, ROWS, **params)
    assert {r["country"] for r in walked} <= {"FR", "DE"}
    assert table.column_names == ["transaction_id", "user_id", "timestamp", "country", "amount"]
    assert all(r["user_id"].startswith("anon_") for r in walked)
    real = {r["transaction_id"] for r in stored}
    assert not real & {r["transaction_id"] for r in walked}


@pytest.mark.parametrize("url", [ROWS, RAW])
def test_an_empty_result_is_a_header_or_a_schema(stored, reader, url):
    give(reader, "raw_transactions", "read")
    client, params = client_for(reader), {"country": "XX", "fields": "transaction_id,amount"}
    assert _body(client.get(url, {**params, "format": "csv"})) == b"transaction_id,amount\n"
    table = arrow_table(client.get(url, params, HTTP_ACCEPT=ARROW))
    assert table.num_rows == 0 and table.column_names == ["transaction_id", "amount"]


def test_a_raw_folder_exports_like_its_pages(stored, reader):
    give(reader, "raw_transactions", "read")
    client = client_for(reader)
    assert_exports_equal_walk(client, RAW, "raw_transactions")
    assert_exports_equal_walk(client, RAW, "raw_transactions", country="BE", ordering="-amount")


def test_a_restricted_raw_folder_export(stored):
    user = make_user("rita")
    restricted(user, "raw_transactions", columns=["transaction_id", "country", "user_id"],
               row_filter={"country": ["BE"]}, masked=["user_id"])  # fmt: skip
    walked, _table = assert_exports_equal_walk(client_for(user), RAW, "raw_transactions")
    assert {r["country"] for r in walked} == {"BE"} and len(walked) == 10


def test_no_grant_is_a_json_403_and_no_export(stored, api):
    for response in (api.get(ROWS, {"format": "csv"}), api.get(ROWS, HTTP_ACCEPT=ARROW)):
        assert response.status_code == 403
        assert not response.streaming
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("params", "accept", "status", "named"),
    [
        ({"format": "csv", "page": "2"}, None, 400, "page"),
        ({"format": "arrow", "page_size": "5"}, None, 400, "page_size"),
        ({"cursor": "abc"}, "text/csv", 400, "cursor"),
        ({"format": "csv", "amount__gte": "lots"}, None, 400, "amount__gte"),
        ({"format": "csv", "fields": "nope"}, None, 400, "fields"),
        ({"format": "xml"}, None, 404, None),
        ({}, "application/xml", 406, None),
    ],
)
def test_bad_export_requests_are_json_errors(stored, read_api, params, accept, status, named):
    extra = {"HTTP_ACCEPT": accept} if accept else {}
    response = read_api.get(ROWS, params, **extra)
    assert response.status_code == status
    assert not response.streaming
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["detail"] and body["code"]
    if named:
        assert named in body["errors"]


def test_text_that_looks_like_a_formula_is_inert_in_csv_only(lake, read_api):
    pipeline_batch(tx(1, product_category="=HYPERLINK(1)"), tx(2, product_category="-x"))
    params = {"fields": "transaction_id,product_category,amount"}
    text = _body(read_api.get(ROWS, {**params, "format": "csv"})).decode()
    assert text.splitlines() == [
        "transaction_id,product_category,amount",
        '"TX-0001","\'=HYPERLINK(1)",11.00',
        '"TX-0002","\'-x",12.00',
    ]
    table = arrow_table(read_api.get(ROWS, {**params, "format": "arrow"}))
    assert table["product_category"].to_pylist() == ["=HYPERLINK(1)", "-x"]


def test_headers_name_the_file_and_the_version(stored, read_api):
    response = read_api.get(ROWS, {"format": "csv"})
    assert response["Content-Disposition"] == 'attachment; filename="transactions.csv"'
    assert response["X-Data-Version"] == "1"
    _body(response)
    version = "/api/v1/resources/transactions/versions/1/rows/"
    response = read_api.get(version, HTTP_ACCEPT=ARROW)
    assert response["Content-Disposition"] == 'attachment; filename="transactions-v1.arrows"'
    assert response["X-Data-Version"] == "1"
    assert arrow_table(response).num_rows == 30


def test_the_browsable_api_offers_the_formats(stored, read_api):
    page = read_api.get(ROWS, HTTP_ACCEPT="text/html").content.decode()
    assert "format=csv" in page and "format=arrow" in page


def test_thousands_of_rows_stream_in_batches(lake, settings, reader):
    settings.LAKE_EXPORT_BATCH_ROWS = 100  # CSV blocks of 16 KiB: many batches
    pipeline_batch(*[tx(i, country=["FR", "DE"][i % 2]) for i in range(3000)])
    client = client_for(reader)
    response = client.get(ROWS, {"country": "DE", "format": "arrow"})
    assert response["X-Data-Version"] == "1"
    reader_ = pa.ipc.open_stream(_body(response))
    batches = list(reader_)
    assert len(batches) > 3
    ids = [i for b in batches for i in b["transaction_id"].to_pylist()]
    assert ids == [f"TX-{i:04d}" for i in range(1, 3000, 2)]
    walked = csv_rows("transactions", client.get(ROWS, {"country": "DE", "format": "csv"}))
    assert [r["transaction_id"] for r in walked] == ids


def test_an_export_stops_at_its_limit_and_reports_each_batch(stored):
    """The hooks of the row quota: `limit` rows at most, `on_batch(n)` before each batch."""
    query = parse_row_query(get_entry("transactions"), QueryDict("ordering=-amount"))
    seen: list[int] = []
    export = Export(query, limit=7, on_batch=seen.append)
    table = pa.Table.from_batches(list(export.batches()), export.schema)
    top = sorted(stored, key=lambda r: -r["amount"])[:7]
    assert table["transaction_id"].to_pylist() == [r["transaction_id"] for r in top]
    assert sum(seen) == 7


def _exports_running() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY (%%' "
            "AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_a_client_that_stops_reading_ends_the_export(lake, settings, reader):
    settings.LAKE_EXPORT_BATCH_ROWS = 100
    pipeline_batch(*[tx(i) for i in range(3000)])
    response = client_for(reader).get(ROWS, {"format": "csv"})
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"transaction_id,") and next(chunks)
    assert _exports_running() == 1
    response.close()  # what the server does when the client goes away
    wait_until(lambda: _exports_running() == 0, timeout=10, what="the export's COPY ended")
