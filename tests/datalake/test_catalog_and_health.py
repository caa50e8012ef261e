"""The catalog endpoints and /healthz, against the real services."""

from __future__ import annotations

import pytest
from django.test import Client

from datalake.models import Resource
from tests.support.factories import client_for, give

TABLES = {
    "transactions",
    "sales",
    "product_daily_sales",
    "exchange_rates",
    "retail_customers",
    "retail_invoices",
    "retail_invoice_items",
    "retail_stock_codes",
    "products",
}


def all_pages(api, url):
    out = []
    while url:
        body = api.get(url).json()
        assert len(body["results"]) <= 10
        out += body["results"]
        url = body["next"]
    return out


def test_migrate_registers_every_table(db):
    assert set(Resource.objects.values_list("name", flat=True)) >= TABLES


def test_catalog_lists_tables_with_columns_versioning_and_access(api, lake):
    resources = {r["name"]: r for r in all_pages(api, "/api/v1/resources/")}
    assert set(resources) == TABLES
    tx = resources["transactions"]
    assert tx["kind"] == "table" and tx["versioning"] is True
    assert tx["access"] == []
    assert tx["url"].endswith("/api/v1/resources/transactions/")
    assert "amount_eur" in [c["name"] for c in tx["columns"]]
    assert "valid_to" not in [c["name"] for c in tx["columns"]]
    assert resources["exchange_rates"]["versioning"] is False
    assert resources["exchange_rates"]["current_version"] is None


def test_access_shows_the_callers_own_privileges(alice, lake):
    give(alice, "sales", "read")
    give(alice, "sales", "grant")
    body = client_for(alice).get("/api/v1/resources/sales/").json()
    assert body["access"] == ["read", "grant"]


def test_staff_hold_every_privilege(staff, lake):
    body = client_for(staff).get("/api/v1/resources/sales/").json()
    assert body["access"] == ["read", "write", "grant"]


def test_empty_table_page_one_is_an_empty_page(read_api, lake):
    body = read_api.get("/api/v1/resources/sales/rows/").json()
    assert body == {
        "count": 0,
        "count_is_estimate": False,
        "next": None,
        "previous": None,
        "next_cursor": None,
        "data_version": "0",
        "results": [],
    }


@pytest.mark.django_db
def test_healthz_ok_with_every_dependency(broker):
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "broker": "ok"},
    }


@pytest.mark.django_db
def test_healthz_names_the_dependency_that_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis", "broker"]
    assert body["checks"]["database"] == "ok"
