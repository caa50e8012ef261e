"""Raw-file resources: every landing folder is a `raw_<source>` with the same grammar."""

from __future__ import annotations

import gzip
import json

import pytest

from datalake.catalog.sync import sync_resources
from tests.support.factories import client_for, give

TX = [
    {
        "transaction_id": f"TX-{i:03d}",
        "user_id": f"U{i % 3}",
        "timestamp": f"2026-11-0{1 + i % 3}T10:00:{i:02d}Z",
        "transaction_type": "online",
        "payment_method": ["card", "paypal"][i % 2],
        "country": ["FR", "DE", "ES"][i % 3],
        "product_id": "P1",
        "quantity": 1 + i % 4,
        "amount": round(10.5 * i, 2),
        "status": "completed",
        "customer_rating": None if i % 4 == 0 else 1 + i % 5,
    }
    for i in range(23)
]


@pytest.fixture
def landing(lake):
    folder = lake / "landing" / "transactions"
    folder.mkdir()
    lines = [json.dumps(t) for t in TX]
    (folder / "2026-11-01.jsonl").write_text("\n".join(lines[:12]) + "\n{not json\n")
    (folder / "2026-11-02.jsonl").write_text("\n".join(lines[12:]) + "\n")
    retail = lake / "landing" / "retail"
    retail.mkdir()
    csv_text = (
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        '536365,85123A,"WHITE HANGING HEART, T-LIGHT",6,2010-12-01 08:26:00,2.55,17850.0,'
        "United Kingdom\n"
        "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom\n"
        '536414,22139,"say ""hi"" £",56,2010-12-01 11:52:00,0.0,,United Kingdom\n'
    )
    with gzip.open(retail / "sample.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write(csv_text)
    (lake / "landing" / "partner_feed").mkdir()
    (lake / "landing" / "partner_feed" / "a.csv").write_text("sku,label\nA1,one\nB2,two\n")
    return lake / "landing"


@pytest.fixture
def api(alice, landing):
    """alice with `read` on every raw folder."""
    sync_resources()
    for name in ("raw_transactions", "raw_retail", "raw_partner_feed"):
        give(alice, name, "read")
    return client_for(alice)


def walk(api, url, params) -> list[dict]:
    body = api.get(url, params).json()
    out = list(body["results"])
    while body["next_cursor"]:
        body = api.get(url, {**params, "cursor": body["next_cursor"]}).json()
        out += body["results"]
    return out


def test_every_landing_folder_is_a_resource(api, landing):
    names = []
    url = "/api/v1/resources/"
    while url:
        body = api.get(url).json()
        names += [r["name"] for r in body["results"] if r["kind"] == "files"]
        url = body["next"]
    assert names == ["raw_partner_feed", "raw_retail", "raw_transactions"]
    detail = api.get("/api/v1/resources/raw_transactions/").json()
    columns = {c["name"]: c for c in detail["columns"]}
    assert columns["amount"]["filters"] == ["eq", "gt", "gte", "lt", "lte", "in"]
    assert columns["_line"]["type"] == "integer"
    assert detail["versioning"] is False


def test_raw_transactions_filters_projection_and_cursor(api, landing):
    url = "/api/v1/resources/raw_transactions/rows/"
    got = walk(api, url, {"country": "FR", "amount__gt": "20", "fields": "transaction_id,amount"})
    expected = [t for t in TX if t["country"] == "FR" and t["amount"] > 20]
    assert [r["transaction_id"] for r in got] == [t["transaction_id"] for t in expected]
    assert all(set(r) == {"transaction_id", "amount"} for r in got)
    everything = walk(api, url, {"ordering": "-customer_rating"})
    assert len(everything) == len(TX)  # the invalid JSON line is not a record
    ratings = [r["customer_rating"] for r in everything]
    nulls = ratings.count(None)
    assert ratings[:nulls] == [None] * nulls  # descending: nulls first, as in PostgreSQL
    assert ratings[nulls:] == sorted(ratings[nulls:], reverse=True)


def test_raw_records_carry_their_file_and_line(api, landing):
    url = "/api/v1/resources/raw_transactions/rows/"
    body = api.get(url, {"_file": "2026-11-02.jsonl", "page_size": 2}).json()
    assert body["count"] == 11
    first = body["results"][0]
    assert (first["_file"], first["_line"], first["transaction_id"]) == (
        "2026-11-02.jsonl",
        1,
        "TX-012",
    )
    stamp = api.get(url, {"timestamp__gte": "2026-11-03T00:00:00Z"}).json()
    assert stamp["count"] == len([t for t in TX if t["timestamp"] >= "2026-11-03"])


def test_raw_csv_gz_keeps_quotes_commas_and_pound(api, landing):
    body = api.get("/api/v1/resources/raw_retail/rows/").json()
    rows = body["results"]
    assert [r["InvoiceNo"] for r in rows] == ["536365", "C536379", "536414"]
    assert rows[0]["Description"] == "WHITE HANGING HEART, T-LIGHT"
    assert rows[2]["Description"] == 'say "hi" £'
    assert rows[2]["CustomerID"] == ""
    negative = api.get("/api/v1/resources/raw_retail/rows/", {"Quantity__lt": "0"}).json()
    assert [r["StockCode"] for r in negative["results"]] == ["D"]


def test_undeclared_folder_is_served_with_inferred_columns(api, landing):
    body = api.get("/api/v1/resources/raw_partner_feed/rows/", {"sku": "B2"}).json()
    assert body["results"] == [{"_file": "a.csv", "_line": 3, "sku": "B2", "label": "two"}]


@pytest.mark.parametrize(
    "params",
    [{"nope": "1"}, {"amount__gt": "x"}, {"fields": "amount,../etc"}, {"ordering": "1;drop"}],
)
def test_raw_bad_input_is_400(api, landing, params):
    response = api.get("/api/v1/resources/raw_transactions/rows/", params)
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["raw_..", "raw_missing", "raw_%2e%2e", "raw_transactions%2F.."])
def test_raw_paths_outside_the_landing_zone_are_404(api, landing, name):
    assert api.get(f"/api/v1/resources/{name}/rows/").status_code == 404


def test_new_file_is_seen_on_the_next_request(api, landing):
    url = "/api/v1/resources/raw_transactions/rows/"
    before = api.get(url).json()["count"]
    extra = {**TX[0], "transaction_id": "TX-NEW"}
    (landing / "transactions" / "2026-11-03.jsonl").write_text(json.dumps(extra) + "\n")
    assert api.get(url).json()["count"] == before + 1
