"""The retail API over the real retail file's first 20,000 rows and a few crafted ones.

Both files go through the real ingestion path (spark-submit, versioned merges) once
for the module; every test then reads them through the API and checks the answers
against figures computed here from the CSV itself. Writes happen inside each test's
transaction, so they do not leak into the next test.
"""

from __future__ import annotations

import collections
import csv
import gzip
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.core.management import call_command

from datalake.models import Resource
from ingestion.models import IngestionRun, RunStatus
from lineage.models import RequestLog, Version
from tests.support.factories import client_for, give, make_user
from tests.support.lake import ingest_all

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
HEAD_ROWS = 20_000
RETAIL_TABLES = (
    "retail_customers",
    "retail_invoices",
    "retail_invoice_items",
    "retail_stock_codes",
)
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
# Crafted: a duplicate line, a 3-decimal price, a description with a comma, quotes and £,
# summer time (BST), a cancellation, a customer-less stock adjustment, an `A` invoice.
CRAFTED = [
    "900001,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-06-01 10:00:00,2.55,90001.0,France",
    "900001,22423,REGENCY CAKESTAND 3 TIER,2,2011-06-01 10:00:00,12.75,90001.0,France",
    "900001,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-06-01 10:00:00,2.55,90001.0,France",
    "900001,PADS,PADS TO MATCH ALL CUSHIONS,3,2011-06-01 10:00:00,0.001,90001.0,France",
    '900001,GIFT_X,"Gift voucher £10.00, ""crafted""",1,2011-06-01 10:00:00,10.0,90001.0,France',
    "C900001,22423,REGENCY CAKESTAND 3 TIER,-2,2011-06-02 09:00:00,12.75,90001.0,France",
    "900002,85123A,,-3,2011-06-03 11:00:00,0.0,,United Kingdom",
    "A900003,B,Adjust bad debt,1,2011-06-04 12:00:00,-11062.06,,United Kingdom",
]


def read_rows() -> list[dict]:
    names = HEADER.split(",")
    with gzip.open(SHARED / "online_retail" / "online_retail.csv.gz", "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        real = [dict(zip(names, next(reader), strict=True)) for _ in range(HEAD_ROWS)]
    crafted = [dict(zip(names, r, strict=True)) for r in csv.reader(CRAFTED)]
    return real + crafted


ROWS = read_rows()


def customer_of(row: dict) -> str | None:
    return row["CustomerID"].removesuffix(".0") or None


def expected_invoices() -> dict[str, list[dict]]:
    invoices = collections.OrderedDict()
    for row in ROWS:
        invoices.setdefault(row["InvoiceNo"], []).append(row)
    return invoices


def expected_total(lines: list[dict]) -> str:
    total = sum(Decimal(r["Quantity"]) * Decimal(r["UnitPrice"]) for r in lines)
    return str(total.quantize(Decimal("0.01"), ROUND_HALF_UP))


@pytest.fixture(scope="module")
def retail(django_db_setup, django_db_blocker, tmp_path_factory):
    """The lake with both files ingested (committed); flushed when the module is done."""
    root = tmp_path_factory.mktemp("retail-lake")
    folder = root / "landing" / "retail"
    folder.mkdir(parents=True)
    with gzip.open(SHARED / "online_retail" / "online_retail.csv.gz", "rt", newline="") as f:
        head = [next(f) for _ in range(HEAD_ROWS + 1)]
    (folder / "online_retail_first_20000.csv").write_text("".join(head))
    (folder / "crafted.csv").write_text("\n".join([HEADER, *CRAFTED]) + "\n")
    previous = settings.LAKE_ROOT
    settings.LAKE_ROOT = root
    try:
        with django_db_blocker.unblock():
            names = ("online_retail_first_20000.csv", "crafted.csv")  # one Spark job
            for run in ingest_all("retail", *(folder / name for name in names)):
                assert run.status == RunStatus.SUCCEEDED, run.error
                assert run.rows_rejected == 0
            yield root
    finally:
        settings.LAKE_ROOT = previous
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def lake_root(retail, settings):
    settings.LAKE_ROOT = retail
    return retail


def json_client(user):
    client = client_for(user)
    client.default_format = "json"
    return client


@pytest.fixture
def reader(db, lake_root):
    user = make_user("retail-reader")
    for name in RETAIL_TABLES:
        give(user, name, "read")
    return json_client(user)


@pytest.fixture
def writer(db, lake_root):
    user = make_user("retail-writer")
    for name in RETAIL_TABLES:
        give(user, name, "read")
        give(user, name, "write")
    return json_client(user)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == "testserver", url
    return parts.path


def follow(client, url: str) -> dict:
    parts = urlsplit(url)
    path_of(url)
    response = client.get(parts.path + (f"?{parts.query}" if parts.query else ""))
    assert response.status_code == 200, (url, response.content[:300])
    return response.json()


def walk(client, url: str) -> list[dict]:
    out, pages = [], 0
    while url:
        body = follow(client, url) if url.startswith("http") else client.get(url).json()
        assert len(body["results"]) <= 10
        out += body["results"]
        url, pages = body["next"], pages + 1
        assert pages < 100, "the next links do not end"
    return out


# -- reading ---------------------------------------------------------------------------


def test_every_invoice_total_and_items_match_the_file(reader):
    for invoice_no, lines in expected_invoices().items():
        body = reader.get(f"/api/v1/invoices/{invoice_no}/").json()
        assert body["invoice_no"] == invoice_no
        assert body["total"] == expected_total(lines), invoice_no
        assert [i["stock_code"] for i in body["items"]] == [r["StockCode"] for r in lines]
        assert [i["quantity"] for i in body["items"]] == [int(r["Quantity"]) for r in lines]
        assert [i["line"] for i in body["items"]] == list(range(1, len(lines) + 1))
        assert body["cancelled"] is invoice_no.startswith("C")
        customer = customer_of(lines[0])
        if customer is None:
            assert body["customer"] is None
        else:
            assert body["customer"]["customer_id"] == customer


def test_a_crafted_invoice_in_detail(reader):
    body = reader.get("/api/v1/invoices/900001/").json()
    assert body["invoice_date"] == "2011-06-01T09:00:00Z"  # 10:00 in London (BST)
    assert (body["country"], body["cancelled"]) == ("France", False)
    assert body["total"] == "66.10"  # 15.30 + 25.50 + 15.30 + 0.003 + 10.00
    items = body["items"]
    assert len(items) == 5 and items[0] == {**items[2], "line": 1, "url": items[0]["url"]}
    assert [i["unit_price"] for i in items] == ["2.55", "12.75", "2.55", "0.001", "10.00"]
    assert items[4]["description"] == 'Gift voucher £10.00, "crafted"'
    assert path_of(items[1]["url"]) == "/api/v1/invoices/900001/items/2/"
    assert follow(reader, items[1]["url"]) == items[1]
    assert follow(reader, items[1]["invoice_url"])["invoice_no"] == "900001"
    assert follow(reader, items[1]["stock_code_url"])["stock_code"] == "22423"
    customer = follow(reader, body["customer"]["url"])
    assert customer["customer_id"] == "90001" and customer["country"] == "France"
    assert path_of(body["items_url"]) == "/api/v1/invoices/900001/items/"
    assert walk(reader, body["items_url"]) == items


def test_cancelled_customer_less_and_adjustment_invoices(reader):
    cancelled = reader.get("/api/v1/invoices/C536379/").json()
    lines = expected_invoices()["C536379"]
    assert cancelled["cancelled"] is True and cancelled["total"] == expected_total(lines)
    assert Decimal(cancelled["total"]) < 0
    assert all(i["quantity"] < 0 for i in cancelled["items"])
    crafted = reader.get("/api/v1/invoices/C900001/").json()
    assert (crafted["cancelled"], crafted["total"]) == (True, "-25.50")

    no_customer = reader.get("/api/v1/invoices/536414/").json()
    assert no_customer["customer"] is None and no_customer["cancelled"] is False
    assert no_customer["items"][0]["description"] is None  # the file has none
    adjustment = reader.get("/api/v1/invoices/900002/").json()
    assert adjustment["customer"] is None and adjustment["total"] == "0.00"
    bad_debt = reader.get("/api/v1/invoices/A900003/").json()
    assert (bad_debt["cancelled"], bad_debt["total"]) == (False, "-11062.06")
    assert bad_debt["items"][0]["unit_price"] == "-11062.06"


def test_a_customer_and_all_its_invoices(reader):
    body = reader.get("/api/v1/customers/17850/").json()
    assert body["customer_id"] == "17850" and body["country"] == "United Kingdom"
    assert path_of(body["url"]) == "/api/v1/customers/17850/"
    invoices = walk(reader, body["invoices_url"])
    expected = {no for no, lines in expected_invoices().items() if customer_of(lines[0]) == "17850"}
    assert len(expected) == 34 and {i["invoice_no"] for i in invoices} == expected
    dates = [i["invoice_date"] for i in invoices]
    assert dates == sorted(dates)
    for summary in invoices[:3]:
        detail = follow(reader, summary["url"])
        assert detail["invoice_no"] == summary["invoice_no"]
        assert path_of(detail["customer"]["url"]) == "/api/v1/customers/17850/"
    first = reader.get("/api/v1/customers/17850/invoices/?page_size=50").json()
    assert first["count"] == 34 and len(first["results"]) == 10
    assert "page=2" in first["next"]


def test_customer_list_and_stock_codes(reader):
    body = reader.get("/api/v1/customers/").json()
    customers = {customer_of(r) for r in ROWS} - {None}
    assert body["count"] == len(customers)
    assert [c["customer_id"] for c in body["results"]] == sorted(customers)[:10]
    assert follow(reader, body["results"][0]["url"]) == body["results"][0]

    invoices_with = collections.defaultdict(set)
    for row in ROWS:
        invoices_with[row["StockCode"]].add(row["InvoiceNo"])
    code = reader.get("/api/v1/stock-codes/85123A/").json()
    assert code["invoices"] == len(invoices_with["85123A"])
    assert code["description"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    charges = reader.get("/api/v1/stock-codes/BANK%20CHARGES/").json()
    assert charges["invoices"] == len(invoices_with["BANK CHARGES"])
    assert charges["url"].endswith("/api/v1/stock-codes/BANK%20CHARGES/")
    assert follow(reader, charges["url"]) == charges


def test_unknown_objects_are_404_with_a_detail(reader):
    for path in (
        "/api/v1/customers/99999999/",
        "/api/v1/customers/99999999/invoices/",
        "/api/v1/invoices/999999/",
        "/api/v1/invoices/999999/items/",
        "/api/v1/invoices/536365/items/99/",
        "/api/v1/invoices/536365/items/first/",
        "/api/v1/invoices/536365/items/0/",
        "/api/v1/invoices/536365/items/99999999999999999999/",
        "/api/v1/stock-codes/NOPE/",
    ):
        response = reader.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"].startswith("No "), path


def test_bad_query_parameters_are_400(reader):
    response = reader.get("/api/v1/customers/17850/invoices/?sort=date")
    assert response.status_code == 400 and "sort" in response.json()["detail"]
    assert reader.get("/api/v1/invoices/536365/?expand=1").status_code == 400
    assert reader.get("/api/v1/customers/17850/invoices/?page=9").status_code == 404


# -- writing ---------------------------------------------------------------------------


def versions(name: str) -> int:
    return Resource.objects.get(name=name).current_version


def test_a_customer_an_invoice_and_items_each_a_new_version(writer):
    before = {name: versions(name) for name in RETAIL_TABLES}
    created = writer.post("/api/v1/customers/", {"customer_id": 90100, "country": "Germany"})
    assert created.status_code == 201, created.content
    customer = created.json()
    assert customer["customer_id"] == "90100" and created["Location"] == customer["url"]
    assert follow(writer, customer["url"]) == customer
    assert versions("retail_customers") == before["retail_customers"] + 1
    version = Version.objects.get(
        resource__name="retail_customers", version=versions("retail_customers")
    )
    assert (version.source, version.rows_added) == ("api:retail-writer", 1)
    entry = LogEntry.objects.get(additional_data__resource="retail_customers")
    assert entry.actor.username == "retail-writer" and entry.changes["country"] == [None, "Germany"]

    invoice = writer.post(
        "/api/v1/customers/90100/invoices/",
        {"invoice_no": "910001", "invoice_date": "2011-12-10T09:00:00+01:00"},
    )
    assert invoice.status_code == 201, invoice.content
    body = invoice.json()
    assert body["invoice_date"] == "2011-12-10T08:00:00Z"
    assert path_of(body["customer"]["url"]) == "/api/v1/customers/90100/"
    assert (body["country"], body["items"], body["total"]) == ("Germany", [], "0.00")
    assert walk(writer, customer["invoices_url"])[0]["invoice_no"] == "910001"

    first = writer.post(
        "/api/v1/invoices/910001/items/",
        {"stock_code": "85123A", "quantity": 6, "unit_price": "2.55"},
    )
    second = writer.post(
        body["items_url"].removeprefix("http://testserver"),
        {"stock_code": "BANK CHARGES", "quantity": 1, "unit_price": 15.005},
    )
    assert (first.status_code, second.status_code) == (201, 201), second.content
    assert first.json()["description"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert second.json()["line"] == 2 and second.json()["unit_price"] == "15.005"
    assert follow(writer, second.json()["url"]) == second.json()
    detail = writer.get("/api/v1/invoices/910001/").json()
    assert detail["total"] == "30.31"  # 15.30 + 15.005 -> 30.305, half up
    assert versions("retail_invoice_items") == before["retail_invoice_items"] + 2
    assert versions("retail_stock_codes") == before["retail_stock_codes"]

    # The items table read back at each version: the first item only, then both.
    n = versions("retail_invoice_items")
    rows = "/api/v1/resources/retail_invoice_items/{}rows/?invoice_no=910001"
    assert writer.get(rows.format(f"versions/{n - 1}/")).json()["count"] == 1
    assert writer.get(rows.format("")).json()["count"] == 2
    assert writer.get(rows.format(f"versions/{n - 2}/")).json()["count"] == 0


def test_validation_errors_are_400_naming_the_field(writer):
    before = {name: versions(name) for name in RETAIL_TABLES}

    def refused(path, body, field) -> str:
        response = writer.post(path, body)
        assert response.status_code == 400, (path, body, response.content)
        assert field in response.json()["errors"], response.json()
        assert field in response.json()["detail"]
        return response.json()["detail"]

    customers = "/api/v1/customers/"
    taken = refused(customers, {"customer_id": "17850", "country": "UK"}, "customer_id")
    assert "already exists" in taken
    refused(customers, {"customer_id": "17 850", "country": "UK"}, "customer_id")
    refused(customers, {"customer_id": "90200", "country": "UK", "vip": True}, "vip")
    refused(customers, {"customer_id": "90200"}, "country")

    invoices = "/api/v1/customers/17850/invoices/"
    stamp = "2011-12-10T09:00:00Z"
    for invoice_no, message in (("536365", "already exists"), ("C910002", "cancellations")):
        body = {"invoice_no": invoice_no, "invoice_date": stamp}
        assert message in refused(invoices, body, "invoice_no")
    for date in ("2011-12-10T09:00:00", "2011-12-10", "yesterday", 20111210):
        detail = refused(invoices, {"invoice_no": "910002", "invoice_date": date}, "invoice_date")
        assert "time zone" in detail or "format" in detail, detail

    items = "/api/v1/invoices/536365/items/"
    item = {"stock_code": "85123A", "quantity": 1, "unit_price": "1"}
    unknown = refused(items, {**item, "stock_code": "NOPE"}, "stock_code")
    assert "Unknown stock code" in unknown
    assert "0 or more" in refused(items, {**item, "unit_price": "-0.01"}, "unit_price")
    refused(items, {**item, "unit_price": "1.0001"}, "unit_price")
    refused(items, {**item, "quantity": 0}, "quantity")
    refused(items, {**item, "quantity": "many"}, "quantity")
    assert "cancelled" in refused("/api/v1/invoices/C536379/items/", item, "invoice_no")

    assert writer.post("/api/v1/invoices/999999/items/", item).status_code == 404
    body = {"invoice_no": "910003", "invoice_date": stamp}
    assert writer.post("/api/v1/customers/99999999/invoices/", body).status_code == 404
    not_json = writer.post(customers, "[1, 2]", content_type="application/json")
    assert not_json.status_code == 400 and not_json.json()["detail"]
    assert {name: versions(name) for name in RETAIL_TABLES} == before


# -- grants ----------------------------------------------------------------------------


def test_each_endpoint_needs_its_grants(lake_root, db):
    user = make_user("partial")
    client = json_client(user)
    give(user, "retail_invoices", "read")
    response = client.get("/api/v1/invoices/536365/")
    assert response.status_code == 403 and "retail_invoice_items" in response.json()["detail"]
    assert client.head("/api/v1/invoices/536365/").status_code == 403
    give(user, "retail_invoice_items", "read")
    assert client.get("/api/v1/invoices/536365/").status_code == 200
    assert client.get("/api/v1/customers/17850/").status_code == 403
    assert client.get("/api/v1/stock-codes/85123A/").status_code == 403
    body = {"stock_code": "85123A", "quantity": 1, "unit_price": "1"}
    assert client.post("/api/v1/invoices/536365/items/", body).status_code == 403
    give(user, "retail_invoice_items", "write")
    refused = client.post("/api/v1/invoices/536365/items/", body)  # copies the code's text
    assert refused.status_code == 403 and "retail_stock_codes" in refused.json()["detail"]
    give(user, "retail_stock_codes", "read")
    assert client.post("/api/v1/invoices/536365/items/", body).status_code == 201
    entry = RequestLog.objects.filter(username="partial").order_by("-id").first()
    assert (entry.resource, entry.status_code) == ("retail_invoice_items", 201)


def test_a_restricted_read_grant_is_refused_here(lake_root, db):
    user = make_user("restricted")
    give(user, "retail_customers", "read", row_filter={"country": ["France"]})
    response = client_for(user).get("/api/v1/customers/90001/")
    assert response.status_code == 403 and response.json()["code"] == "restricted_grant"
    rows = client_for(user).get("/api/v1/resources/retail_customers/rows/").json()
    assert {r["country"] for r in rows["results"]} == {"France"}


def test_the_ingestion_made_one_version_per_table_and_file(lake_root, db):
    assert {name: versions(name) for name in RETAIL_TABLES} == {
        "retail_customers": 2,
        "retail_invoices": 2,
        "retail_invoice_items": 2,
        "retail_stock_codes": 2,
    }
    runs = IngestionRun.objects.filter(source="retail").order_by("id")
    assert [run.rows_loaded for run in runs] == [HEAD_ROWS, len(CRAFTED)]
