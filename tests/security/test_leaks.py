"""Privilege leaks and injection, tried on every route with real data behind it.

The lake holds records, a raw file, an ingestion run with a reject, a report, a
re-push, a pipeline job and request-log entries, all carrying a marker string. Every
/api/v1/ route (walked from the URL resolver, object ids replaced by the real ones)
is then called by a user without any grant and by one holding `read` on `sales`
only: the marker must never appear in a response, and no list may count a record
of a resource they cannot read. Then SQL and path tricks on every parameter that
reaches SQL or the file system are refused with 400/404, and the data is intact.
"""

from __future__ import annotations

import datetime as dt

import pytest

from datalake.models import Transaction
from tests.support.factories import client_for, give, make_user
from tests.support.routes import api_routes
from tests.support.world import MARK

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

# Lists of objects about resources or other users: empty for these users.
OTHERS_LISTS = {"/api/v1/ingestion/runs/", "/api/v1/reports/", "/api/v1/ml/trainings/"}


def concrete(route: str, resource: str) -> str:
    return route.replace("/x/", f"/{resource}/")


def call(client, path: str):
    response = client.get(path)
    if response.status_code == 405:
        response = client.post(
            path, {"resource": "transactions", "transaction_id": f"{MARK}-TX-1"}, format="json"
        )
    return response


@pytest.mark.parametrize("who", ["nobody", "sales_reader"])
def test_no_route_shows_data_of_a_resource_without_its_grant(world, who):
    user = make_user(who)
    if who == "sales_reader":
        give(user, "sales")
        give(user, "raw_sales")
    client = client_for(user)
    checked = 0
    for route in api_routes():
        if route == "/api/v1/auth/tokens/rotate/":
            continue  # it would replace the token in use (tested in test_tokens.py)
        for resource in ("transactions", "raw_transactions"):
            path = concrete(route, resource)
            response = call(client, path)
            assert response.status_code not in (401, 500), (path, response.status_code)
            assert MARK.encode() not in response.content, (path, response.content[:400])
            if path in OTHERS_LISTS and response.status_code == 200:
                assert response.json()["count"] == 0, (path, response.json())
            checked += 1
    assert checked > 50
    # Search names no unreadable resource, even for text that is there.
    hits = client.get("/api/v1/search/", {"q": f"{MARK}-TX-1", "since": "2000-01-01"})
    assert hits.status_code == 200, hits.content
    hits = hits.json()
    assert hits["total"] == 0 and hits["resources"] == []


INJECTIONS = [
    ("/api/v1/resources/transactions;DROP TABLE transactions/rows/", {}, (404,)),
    ("/api/v1/resources/..%2F..%2Fetc%2Fpasswd/rows/", {}, (404,)),
    ("/api/v1/resources/raw_..%2F..%2Fetc/rows/", {}, (404,)),
    ("/api/v1/resources/raw_transactions%00/rows/", {}, (400,)),  # control character
    (
        "/api/v1/resources/transactions/rows/",
        {"fields": "amount);DROP TABLE transactions;--"},
        (400,),
    ),
    ("/api/v1/resources/transactions/rows/", {"fields": 'amount,"country"'}, (400,)),
    (
        "/api/v1/resources/transactions/rows/",
        {"ordering": "amount;DROP TABLE transactions"},
        (400,),
    ),
    ("/api/v1/resources/transactions/rows/", {"ordering": "(SELECT 1)"}, (400,)),
    ("/api/v1/resources/transactions/rows/", {"amount__gt": "1 OR 1=1"}, (400,)),
    ("/api/v1/resources/transactions/rows/", {"timestamp__lt": "now()"}, (400,)),
    ("/api/v1/resources/transactions/rows/", {"country; DROP TABLE x": "FR"}, (400,)),
    ("/api/v1/resources/transactions/rows/", {"cursor": "W1wiJyBPUiAxPTEgLS1cIl0"}, (400,)),
    ("/api/v1/resources/raw_transactions/rows/", {"fields": "amount) FROM t; --"}, (400,)),
    ("/api/v1/resources/raw_transactions/rows/", {"_file": "../../../etc/passwd"}, (400,)),
    ("/api/v1/resources/raw_transactions/rows/", {"_file__in": "a.jsonl,/etc/passwd"}, (400,)),
    ("/api/v1/resources/raw_transactions/rows/", {"ordering": "read_csv('/etc/passwd')"}, (400,)),
    ("/api/v1/resources/transactions/versions/1;DROP/rows/", {}, (404,)),
    ("/api/v1/resources/transactions/access-log/", {"since": "2026-01-01'; DROP"}, (400,)),
    ("/api/v1/audit/requests/", {"status_code": "200 OR 1=1"}, (400,)),
    ("/api/v1/ingestion/runs/", {"status": "x' OR '1'='1"}, (400,)),
    ("/api/v1/invoices/536365'%20OR%20'1'='1/", {}, (404,)),
    ("/api/v1/invoices/..%2F..%2Fetc%2Fpasswd/", {}, (404,)),
    ("/api/v1/stock-codes/85123A';--/", {}, (404,)),
]


@pytest.mark.parametrize(("path", "params", "expected"), INJECTIONS)
def test_sql_and_path_tricks_are_refused(world, staff, path, params, expected):
    before = Transaction.objects.count()
    response = client_for(staff).get(path, params)
    assert response.status_code in expected, (path, params, response.status_code, response.content)
    assert Transaction.objects.count() == before
    assert b"Traceback" not in response.content and b"syntax error" not in response.content


@pytest.mark.parametrize(
    "body",
    [
        {"source": "transactions", "path": "../../../etc/passwd"},
        {"source": "transactions", "path": "landing/transactions/../../../../etc/passwd"},
        {"source": "transactions", "path": "/etc/passwd"},
        {"source": "transactions; DROP TABLE transactions", "path": "landing/x.jsonl"},
        {"source": "../transactions", "path": "landing/transactions/2026-11-20.jsonl"},
    ],
)
def test_ingestion_paths_outside_the_lake_are_refused(world, staff, body):
    response = client_for(staff).post("/api/v1/ingestion/runs/", body, format="json")
    assert response.status_code == 400, response.content


def test_filter_values_are_data_not_sql(world, staff):
    api = client_for(staff)
    for value in ("FR' OR '1'='1", 'FR"; DROP TABLE transactions; --', "%", "_"):
        response = api.get("/api/v1/resources/transactions/rows/", {"country": value})
        assert response.status_code in (200, 400) and response.json().get("count", 0) == 0
    since = (dt.date.today() - dt.timedelta(days=3650)).isoformat()
    assert api.get("/api/v1/search/", {"q": "' OR 1=1 --", "since": since}).json()["total"] == 0
