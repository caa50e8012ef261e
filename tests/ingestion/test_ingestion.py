"""Ingestion through the real path: Celery task code, spark-submit (local mode), PostgreSQL.

Each Spark run costs ~10-20 s (JVM start-up), so each test makes few of them and
checks several things.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from datalake.models import ExchangeRate, Resource, Transaction
from tests.support.factories import client_for, give
from tests.support.lake import ingest, ingest_all, tx, write_lines

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def rates(db):
    """USD on Friday 2026-11-20 only: the weekend's transactions use Friday's rate."""
    ExchangeRate.objects.create(date=dt.date(2026, 11, 20), currency="USD", rate=Decimal("1.25"))
    ExchangeRate.objects.create(date=dt.date(2026, 11, 18), currency="USD", rate=Decimal("2.0"))
    ExchangeRate.objects.create(date=dt.date(2026, 11, 20), currency="GBP", rate=Decimal("0.8"))


BAD_LINES = {
    "invalid_json": ["{not json", "[1, 2]"],
    "missing_field": [tx(900, user_id=None), {k: v for k, v in tx(901).items() if k != "amount"}],
    "bad_type": [tx(902, quantity="three"), tx(903, amount="lots")],
    "bad_quantity": [tx(904, quantity=0)],
    "negative_amount": [tx(905, amount=-5)],
    "bad_status": [tx(906, status="done")],
    "bad_country": [tx(907, country="France")],
    "bad_timestamp": [tx(908, timestamp="2026-11-20T10:00:00"), tx(909, timestamp="yesterday")],
    "unknown_currency": [
        tx(910, currency="XXX"),
        tx(911, currency="USD", timestamp="2026-11-01T01:00:00Z"),
    ],
    "bad_rating": [tx(912, customer_rating=7)],
    "bad_currency": [tx(913, currency="dollars")],
    "empty_line": [" "],
}


def test_a_day_with_every_rejection_reason_then_a_correction(lake, rates, alice):
    good = [tx(i) for i in range(30)]
    weekend = tx(30, currency="USD", amount=100, timestamp="2026-11-22T09:00:00+02:00")
    dup_first, dup_last = tx(31, amount=1), tx(31, amount=2)
    lines = [*good, weekend, dup_first, *[b for bad in BAD_LINES.values() for b in bad], dup_last]
    first = ingest(
        "transactions", write_lines(lake / "landing/transactions/2026-11-22.jsonl", lines)
    )

    assert first.status == "succeeded", first.error
    reasons = [r.split(":")[0] for r in first.rejects.values_list("reason", flat=True)]
    expected = {code: len(bad) for code, bad in BAD_LINES.items()} | {"duplicate_id": 1}
    assert {code: reasons.count(code) for code in set(reasons)} == expected
    assert first.rows_read == len(lines)
    assert first.rows_read == first.rows_loaded + first.rows_rejected
    assert first.rows_loaded == 32 and first.version == 1
    dup_reject = first.rejects.get(reason__startswith="duplicate_id")
    assert dup_reject.line == len(good) + 2 and json.loads(dup_reject.raw)["amount"] == 1
    assert first.rejects.get(line=len(good) + 3).raw == "{not json"

    rows = {t.transaction_id: t for t in Transaction.objects.filter(valid_to__isnull=True)}
    assert len(rows) == 32
    assert rows["TX-0031"].amount == Decimal("2.00")  # the last duplicate won
    assert rows["TX-0030"].amount_eur == Decimal("80.00")  # Sunday: Friday's 1.25
    assert rows["TX-0005"].amount_eur == rows["TX-0005"].amount  # EUR unchanged

    # The same file again: skipped, nothing changes.
    again = ingest("transactions", lake / "landing/transactions/2026-11-22.jsonl")
    assert again.status == "skipped" and again.version is None
    assert Resource.objects.get(name="transactions").current_version == 1

    # A corrected file: only the rows that differ become version 2.
    corrected = [*good[:10], tx(3, amount=999), tx(4, status="refunded"), tx(40)]
    second = ingest("transactions", write_lines(lake / "landing/transactions/fix.jsonl", corrected))
    assert second.status == "succeeded", second.error
    assert (second.version, second.rows_changed, second.rows_added) == (2, 2, 1)
    assert Transaction.objects.filter(valid_to__isnull=True).count() == 33

    api = client_for(alice)
    give(alice, "transactions", "read")
    base = "/api/v1/resources/transactions"
    now = api.get(f"{base}/rows/", {"transaction_id": "TX-0003"}).json()["results"][0]
    then = api.get(f"{base}/versions/1/rows/", {"transaction_id": "TX-0003"}).json()["results"]
    assert now["amount"] == "999.00" and then[0]["amount"] == "13.00"
    assert api.get(f"{base}/versions/1/rows/", {"transaction_id": "TX-0040"}).json()["count"] == 0
    versions = api.get(f"{base}/versions/").json()["results"]
    assert [(v["version"], v["source"], v["rows_added"], v["rows_changed"]) for v in versions] == [
        (2, f"ingestion:{second.pk}", 1, 2),
        (1, f"ingestion:{first.pk}", 32, 0),
    ]
    assert api.get(f"{base}/versions/3/rows/").status_code == 404
    conflict = api.get("/api/v1/resources/exchange_rates/versions/")
    give(alice, "exchange_rates", "read")
    conflict = client_for(alice).get("/api/v1/resources/exchange_rates/versions/")
    assert conflict.status_code == 409 and conflict.json()["code"] == "versioning_disabled"
    assert (
        client_for(alice).get("/api/v1/resources/exchange_rates/versions/1/rows/").status_code
        == 409
    )


def test_both_ecb_formats_load(lake):
    wide = ingest("exchange_rates", SHARED / "ecb" / "eurofxref-hist_2010-11_2011-12.csv")
    assert wide.status == "succeeded", wide.error
    assert (wide.rows_read, wide.rows_loaded, wide.rows_rejected) == (302, 302, 0)
    assert ExchangeRate.objects.get(date=dt.date(2011, 12, 30), currency="USD").rate == Decimal(
        "1.2939"
    )
    assert not ExchangeRate.objects.filter(currency__in=["CYP", "ISK"]).exists()  # N/A
    assert ExchangeRate.objects.filter(currency="EEK").latest("date").date == dt.date(2010, 12, 31)
    sdmx_path = SHARED / "ecb" / "EXR_D.USD.EUR.SP00.A_csvdata_2023-01-04_2025-10-28.csv"
    sdmx = ingest("exchange_rates", sdmx_path)
    assert sdmx.status == "succeeded", sdmx.error
    assert (sdmx.rows_read, sdmx.rows_loaded, sdmx.rows_rejected) == (720, 720, 0)
    usd = ExchangeRate.objects.filter(currency="USD", date__year__gte=2023)
    assert usd.count() == 720


def test_sales_and_product_daily_sales(lake, alice):
    lines = [
        {"Id": 1, "products": ["P1", "P2", "P1"]},
        {"Id": "C2", "products": [3]},
        {"Id": 3},
        {"products": ["P1"]},
        {"Id": 4, "products": "P1"},
    ]
    run = ingest("sales", write_lines(lake / "landing/sales/2026-11-20.json", lines))
    assert run.status == "succeeded", run.error
    assert (run.rows_read, run.rows_loaded, run.rows_rejected) == (5, 2, 3)
    give(alice, "product_daily_sales", "read")
    body = client_for(alice).get("/api/v1/resources/product_daily_sales/rows/").json()
    assert [(r["product_id"], r["date"], r["times_sold"]) for r in body["results"]] == [
        ("3", "2026-11-20", 1),
        ("P1", "2026-11-20", 2),
        ("P2", "2026-11-20", 1),
    ]


def test_each_real_retail_file_loads_whole(lake, alice):
    from datalake.models import RetailCustomer, RetailInvoice, RetailInvoiceItem, RetailStockCode

    folder = SHARED / "online_retail"
    # Both renderings of the same rows in one Spark job, merged in turn (the second
    # changes nothing, so the state checked below is the first file's).
    first, second = ingest_all(
        "retail", folder / "online_retail.csv.gz", folder / "online_retail_uci_dates.csv.gz"
    )
    assert first.status == "succeeded", first.error
    assert (first.rows_read, first.rows_loaded, first.rows_rejected) == (541_909, 541_909, 0)
    current = {"valid_to__isnull": True}
    assert RetailInvoiceItem.objects.filter(**current).count() == 541_909
    assert RetailInvoice.objects.filter(**current).count() == 25_900
    assert RetailInvoice.objects.filter(**current, cancelled=True).count() == 3_836
    assert RetailCustomer.objects.filter(**current).count() == 4_372
    assert RetailStockCode.objects.filter(**current).count() == 4_070
    adjustment = RetailInvoiceItem.objects.get(**current, invoice_no="A563186")
    assert adjustment.unit_price == Decimal("-11062.060")
    assert RetailInvoice.objects.get(**current, invoice_no="536365").invoice_date == dt.datetime(
        2010, 12, 1, 8, 26, tzinfo=dt.UTC
    )
    # The other rendering of the same rows: loads whole, and changes nothing.
    assert second.status == "succeeded", second.error
    assert (second.rows_read, second.rows_loaded, second.rows_added, second.rows_changed) == (
        541_909,
        541_909,
        0,
        0,
    )
    assert Resource.objects.get(name="retail_invoice_items").current_version == 1
