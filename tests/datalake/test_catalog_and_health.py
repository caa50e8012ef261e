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
    body = response.json()
    followers = body.pop("followers")
    assert body.pop("spark") == {"mode": "local"}  # a cluster: test_spark_cluster.py
    assert body == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "broker": "ok"}}
    assert followers["metrics"] == {"transactions": {"lag_versions": 0, "lag_seconds": 0}}
    assert followers["search"]["sales"] == {"lag_versions": 0, "lag_seconds": 0}


@pytest.mark.django_db
def test_healthz_names_the_dependency_that_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis", "broker"]
    assert body["checks"]["database"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_persistent_connection_the_server_dropped_is_replaced_without_a_failed_request(alice):
    """The token lookup is the request's health check (datalake.platform.db.first_row,
    in place of Django's `SELECT 1` before every request): a backend terminated between
    two requests (a restart) costs the next request one retry on a new connection, not
    an error. (Django's test client never resets the health check between requests, so
    without the retry this request fails.)"""
    import psycopg
    from django.db import connection

    give(alice, "transactions")
    api = client_for(alice)
    url = "/api/v1/resources/transactions/rows/"
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    assert api.get(url).status_code == 200
    with connection.execute_wrapper(spy):
        assert api.get(url).status_code == 200
    assert "key_hash" in seen[0], seen[:2]  # the request's first statement
    dropped = connection.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    params = connection.get_connection_params()
    with psycopg.connect(
        dbname=params["dbname"], user=params.get("user"), host=params.get("host"),
        port=params.get("port"), password=params.get("password"), autocommit=True,
    ) as other:  # fmt: skip
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    answer = api.get(url)
    assert answer.status_code == 200, answer.content
    assert connection.connection is not dropped  # replaced, and limited as the first was
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] != "0"
