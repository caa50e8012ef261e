"""Edge input answers 4xx in the error envelope, never a 500, never HTML under /api/.

Numbers and dates at or past their types' limits, control characters in path segments
and JSON values, cursors that decode to odd JSON, JSON nested thousands of levels deep,
bodies over the size limit and unknown paths, with DEBUG off and on. Every request
here goes through the whole stack (middleware, request log, PostgreSQL, DuckDB).
"""

from __future__ import annotations

import base64
import sys
from urllib.parse import unquote

import pytest

from datalake.catalog.sync import sync_resources
from datalake.models import Resource
from lineage.models import RequestLog
from tests.support.factories import client_for, give, make_user
from tests.support.lake import pipeline_batch, tx, write_lines

pytestmark = pytest.mark.django_db

HUGE = "9" * 30


@pytest.fixture
def world(lake):
    """Five transactions (a version 1), a raw file of them, a user with every grant."""
    records = [tx(i) for i in range(5)]
    pipeline_batch(*records)
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    sync_resources()
    return records


@pytest.fixture
def client(world):
    user = make_user("edge", is_staff=True, is_superuser=True)
    for name in Resource.objects.values_list("name", flat=True):
        for privilege in ("read", "write", "grant"):
            give(user, name, privilege)
    c = client_for(user)
    c.raise_request_exception = False  # a 500 is an answer to look at, not a test error
    return c


def envelope(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["detail"] and body["code"], body
    return body


# ---- 17.5: numbers and dates at or past their types' limits --------------------------

HUGE_PAGES = [
    f"/api/v1/resources/transactions/rows/?page={HUGE}",
    f"/api/v1/resources/transactions/rows/?page={2**63 - 1}",
    f"/api/v1/resources/raw_transactions/rows/?page={HUGE}",
    f"/api/v1/resources/transactions/versions/1/rows/?page={HUGE}",
    f"/api/v1/metrics/spent-per-user-type/?page={HUGE}",
]


@pytest.mark.parametrize("url", HUGE_PAGES)
def test_a_page_number_past_the_types_limits_is_a_400_naming_it(client, url):
    body = envelope(client.get(url), 400)
    assert "page" in body["errors"]


CALENDAR_EDGES = [
    ("/api/v1/metrics/spent-per-user-type/?since=0001-01-01&until=9999-12-31", "since"),
    ("/api/v1/metrics/spent-per-user-type/?until=9999-12-31", "until"),
    ("/api/v1/metrics/spent-per-user-type/?until=0001-01-01T00:00:00%2B05:00", "until"),
    ("/api/v1/metrics/spent-per-user-type/?since=9999-12-31T23:59:59-05:00", "since"),
    ("/api/v1/metrics/top-products/?x=3&until=9999-12-31", "until"),
    ("/api/v1/metrics/products/P1/sales/?until=0001-01-01", "until"),
    ("/api/v1/metrics/products/P1/sales/?until=0001-01-02&days=30", "days"),
    ("/api/v1/resources/transactions/access-log/?until=9999-12-31", "until"),
    ("/api/v1/audit/requests/?until=9999-12-31", "until"),
    ("/api/v1/audit/requests/?since=0001-01-01T00:00:00%2B05:00", "since"),
]


@pytest.mark.parametrize(("url", "name"), CALENDAR_EDGES)
def test_dates_at_the_calendars_edges_are_a_400_naming_them(client, url, name):
    body = envelope(client.get(url), 400)
    assert name in body["errors"], body


def test_report_params_at_the_calendars_edge_are_a_400(client):
    body = {"report_name": "top-products", "params": {"until": "9999-12-31"}}
    envelope(client.post("/api/v1/reports/", body, format="json"), 400)


# ---- 17.6: control characters in path segments and values; odd cursors -------------

CONTROL_PATHS = [
    "/api/v1/customers/a%00/",
    "/api/v1/customers/a%00/invoices/",
    "/api/v1/invoices/a%00/",
    "/api/v1/invoices/a%00/items/",
    "/api/v1/invoices/a%00/items/1/",
    "/api/v1/stock-codes/a%00/",
    "/api/v1/metrics/products/P%00/sales/",
    "/api/v1/customers/a%01b/",
    "/api/v1/stock-codes/a%1Fb/",
    "/api/v1/invoices/a%7F/",
]


@pytest.mark.parametrize("url", CONTROL_PATHS)
def test_control_characters_in_a_path_segment_are_a_400(client, url):
    assert envelope(client.get(url), 400)["code"] == "invalid_path"
    # Logged (refused before authentication, as an unknown path is: without its user).
    stored = unquote(url).replace("\x00", "\ufffd")  # PostgreSQL text takes no NUL
    assert RequestLog.objects.filter(status_code=400, path=stored).count() == 1


def test_a_nul_in_a_grants_row_filter_is_a_400(client):
    body = {
        "user": "edge",
        "resource": "transactions",
        "privilege": "read",
        "row_filter": {"country": ["F\x00R"]},
    }
    envelope(client.post("/api/v1/grants/", body, format="json"), 400)


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("resource", "ordering", "raw"),
    [
        ("transactions", "amount", '["NaN", "TX-0001"]'),
        ("transactions", "amount", '["Infinity", "TX-0001"]'),
        ("transactions", "amount", '["-Infinity", "TX-0001"]'),
        ("raw_transactions", "amount", '["NaN", "2026-11-20.jsonl", 1]'),
        ("transactions", "quantity", f'[{"9" * 40}, "TX-0001"]'),
        ("raw_transactions", "quantity", f'[{"9" * 40}, "2026-11-20.jsonl", 1]'),
    ],
)
def test_cursors_that_decode_to_odd_json_are_a_400(client, resource, ordering, raw):
    url = f"/api/v1/resources/{resource}/rows/"
    response = client.get(url, {"ordering": ordering, "cursor": cursor(raw)})
    assert "cursor" in envelope(response, 400)["errors"]


# ---- 17.7: JSON nested thousands of levels deep -------------------------------------

POSTS = [
    "/api/v1/auth/token/",
    "/api/v1/grants/",
    "/api/v1/reports/",
    "/api/v1/customers/",
    "/api/v1/pipeline/repush/",
    "/api/v1/ingestion/runs/",
    "/api/v1/ml/trainings/",
]


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [300, 5000])
@pytest.mark.parametrize("url", POSTS)
def test_deeply_nested_json_is_a_400_and_is_stored_in_the_request_log(client, url, depth):
    assert envelope(client.post(url, nested(depth), content_type="application/json"), 400)
    logged = RequestLog.objects.get(path=url, method="POST", status_code=400)
    # Its head, masked: marked too deep (or, past 16 KB, truncated like any large body).
    assert logged.body.get("_too_deep") or logged.body.get("_truncated"), logged.body


def test_deeply_nested_json_to_the_anonymous_token_endpoint_is_a_400_and_stored():
    anonymous = client_for(None)
    anonymous.raise_request_exception = False
    body = "[" * 3000 + "]" * 3000
    response = anonymous.post("/api/v1/auth/token/", body, content_type="application/json")
    envelope(response, 400)
    logged = RequestLog.objects.get(path="/api/v1/auth/token/", status_code=400)
    assert logged.body["_too_deep"] is True and logged.username == ""


def test_the_depth_limit_is_a_setting(client, settings):
    settings.API_JSON_MAX_DEPTH = 3
    deep = {"user": "edge", "resource": "transactions", "privilege": "read",
            "row_filter": {"country": [["FR"]]}}  # fmt: skip
    body = envelope(client.post("/api/v1/grants/", deep, format="json"), 400)
    assert body["code"] == "parse_error"
    shallow = {**deep, "row_filter": {"country": ["FR"]}}
    assert client.post("/api/v1/grants/", shallow, format="json").status_code == 201


def test_a_deep_body_of_another_media_type_is_stored_too(client):
    response = client.post("/api/v1/grants/", "[" * 400 + "]" * 400, content_type="text/plain")
    envelope(response, 415)
    assert RequestLog.objects.filter(path="/api/v1/grants/", status_code=415).count() == 1


def test_the_debug_page_of_a_deep_recursion_shows_a_bounded_number_of_frames():
    from django.views.debug import ExceptionReporter

    from datalake.platform.debug import BoundedExceptionReporter

    def recurse(n):
        return recurse(n + 1)

    try:
        recurse(0)
    except RecursionError:
        exc_type, exc, tb = sys.exc_info()
    frames = BoundedExceptionReporter(None, exc_type, exc, tb).get_traceback_frames()
    assert len(frames) <= BoundedExceptionReporter.max_frames < 100
    assert frames[-1]["function"] == "recurse"  # the innermost frames are kept
    assert len(ExceptionReporter(None, exc_type, exc, tb).get_traceback_frames()) > 500


# ---- 17.8: every /api/ answer is JSON, whatever DEBUG says ---------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_a_body_over_the_size_limit_is_a_413_in_the_envelope(client, settings, debug):
    settings.DEBUG = debug
    big = '{"username": "' + "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10) + '"}'
    for c in (client, client_for(None)):
        c.raise_request_exception = False
        response = c.post("/api/v1/auth/token/", big, content_type="application/json")
        assert envelope(response, 413)["code"] == "too_large"
    assert RequestLog.objects.filter(path="/api/v1/auth/token/", status_code=413).count() == 2


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_path_is_a_json_404(client, settings, debug):
    settings.DEBUG = debug
    assert envelope(client.get("/api/v1/no-such-thing/"), 404)["code"] == "not_found"
    assert envelope(client.get("/api/nothing"), 404)["code"] == "not_found"


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_without_its_trailing_slash_is_json(client, settings, debug):
    settings.DEBUG = debug
    response = client.post("/api/v1/grants", {}, format="json")
    assert envelope(response, 404)["code"] == "not_found"


@pytest.mark.parametrize("debug", [False, True])
def test_too_many_query_fields_is_a_json_400(client, settings, debug):
    settings.DEBUG = debug
    query = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    assert envelope(client.get(f"/api/v1/grants/?{query}"), 400)["code"] == "bad_request"


@pytest.mark.urls("tests.support.urls_edge")
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        ("/api/v1/edge/recursion/", 500, "server_error"),
        ("/api/v1/edge/plain-boom/", 500, "server_error"),
        ("/api/v1/edge/plain-404/", 404, "not_found"),
        ("/api/v1/edge/plain-403/", 403, "permission_denied"),
        ("/api/v1/edge/plain-suspicious/", 400, "bad_request"),
    ],
)
def test_errors_outside_drf_are_json_under_api(client, settings, debug, url, status, code):
    settings.DEBUG = debug
    assert envelope(client.get(url), status)["code"] == code
    assert RequestLog.objects.filter(path=url, status_code=status).exists()


@pytest.mark.urls("tests.support.urls_edge")
def test_pages_outside_api_keep_djangos_pages(client, settings):
    settings.DEBUG = False
    response = client.get("/edge-page/plain-404/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("debug", [False, True])
def test_a_lookup_by_an_id_that_is_no_number_is_a_404_in_the_envelope(client, settings, debug):
    settings.DEBUG = debug
    for url in ("/api/v1/grants/1e3/", "/api/v1/reports/1e3/", "/api/v1/ingestion/runs/1e3/"):
        assert envelope(client.get(url), 404)["code"] == "not_found"
