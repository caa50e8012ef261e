"""ETags, 304 and Cache-Control on every rows, versions, resource and metrics answer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row
from tests.support.restrictions import restricted

ENDPOINTS = [
    "/api/v1/resources/transactions/rows/?ordering=-amount&country=FR",
    "/api/v1/resources/transactions/versions/1/rows/",
    "/api/v1/resources/transactions/versions/",
    "/api/v1/resources/",
    "/api/v1/resources/transactions/",
    "/api/v1/metrics/spent-per-user-type/",
    "/api/v1/metrics/top-products/?x=3",
    "/api/v1/metrics/products/P1/sales/?days=3&until=2026-11-20",
]


@pytest.fixture
def data(db):
    merge([row(i) for i in range(30)])
    merge([row(i, amount=Decimal(70)) for i in range(5)])


@pytest.fixture
def staff_api(staff):
    return client_for(staff)


@pytest.mark.parametrize("url", ENDPOINTS)
def test_each_answer_has_an_etag_and_a_match_is_a_304(staff_api, data, url):
    first = staff_api.get(url)
    assert first.status_code == 200, first.content
    tag = first["ETag"]
    assert tag.startswith('W/"') and "private" in first["Cache-Control"]
    assert "Authorization" in first["Vary"]
    again = staff_api.get(url, HTTP_IF_NONE_MATCH=tag)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == tag and again["Cache-Control"] == first["Cache-Control"]
    # Lists of tags, `*`, and a tag of another answer.
    assert staff_api.get(url, HTTP_IF_NONE_MATCH=f'"x", {tag}').status_code == 304
    assert staff_api.get(url, HTTP_IF_NONE_MATCH="*").status_code == 200  # not honoured
    assert staff_api.get(url, HTTP_IF_NONE_MATCH='W/"other"').status_code == 200


def test_a_304_runs_no_page_query(staff_api, data):
    url = ENDPOINTS[0]

    def page_queries(**headers):
        with CaptureQueriesContext(connection) as queries:
            response = staff_api.get(url, **headers)
        sql = " ".join(str(q["sql"]) for q in queries)
        return response, sql.count('FROM "transactions"')

    full, counted = page_queries()
    assert full.status_code == 200 and counted >= 1  # what a page costs
    cached, counted = page_queries(HTTP_IF_NONE_MATCH=full["ETag"])
    assert cached.status_code == 304 and counted == 0


def test_a_merge_makes_a_new_etag_and_data_version(staff_api, data):
    url = ENDPOINTS[0]
    before = staff_api.get(url)
    assert before["X-Data-Version"] == "2"
    metric = staff_api.get(ENDPOINTS[5])["ETag"]
    merge([row(40, country="FR", amount=Decimal(900))])
    after = staff_api.get(url, HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200 and after["ETag"] != before["ETag"]
    assert after["X-Data-Version"] == "3" and after.json()["results"][0]["amount"] == "900.00"
    assert staff_api.get(ENDPOINTS[5], HTTP_IF_NONE_MATCH=metric).status_code == 200


def test_different_masks_never_share_an_etag(data):
    open_user, masked_user, narrow_user = make_user("o"), make_user("m"), make_user("n")
    give(open_user, "transactions", "read")
    restricted(masked_user, masked=["user_id"])
    restricted(narrow_user, columns=["transaction_id", "amount", "country"])
    url = ENDPOINTS[0]
    answers = [client_for(u).get(url) for u in (open_user, masked_user, narrow_user)]
    assert len({a["ETag"] for a in answers}) == 3
    assert answers[0].json()["results"] != answers[1].json()["results"]
    # One user's tag is never a 304 for another's terms.
    assert (
        client_for(masked_user).get(url, HTTP_IF_NONE_MATCH=answers[0]["ETag"]).status_code == 200
    )
    # The same terms give the same bytes, and so the same tag.
    twin = make_user("twin")
    restricted(twin, masked=["user_id"])
    assert client_for(twin).get(url)["ETag"] == answers[1]["ETag"]


def test_a_versions_page_is_immutable_and_the_current_one_revalidates(staff_api, data):
    old = staff_api.get("/api/v1/resources/transactions/versions/1/rows/")
    assert "immutable" in old["Cache-Control"] and "max-age=" in old["Cache-Control"]
    assert old["X-Data-Version"] == "1"
    walk = staff_api.get(
        "/api/v1/resources/transactions/rows/", {"cursor": old.json()["next_cursor"]}
    )
    assert walk["X-Data-Version"] == "1"  # a cursor's walk reads its own version anywhere
    current = staff_api.get("/api/v1/resources/transactions/rows/")
    assert current["Cache-Control"] == "private, no-cache"
    pinned = staff_api.get(
        "/api/v1/resources/transactions/rows/", {"cursor": current.json()["next_cursor"]}
    )
    assert "immutable" in pinned["Cache-Control"]  # a walk's later pages never change


def test_a_table_without_versions_gets_a_new_etag_when_it_changes(reader):
    from datalake.models import ExchangeRate

    api = client_for(reader)
    url = "/api/v1/resources/exchange_rates/rows/"
    ExchangeRate.objects.create(currency="USD", date=dt.date(2026, 11, 1), rate=Decimal("1.1"))
    first = api.get(url)
    assert api.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    ExchangeRate.objects.filter(currency="USD").update(rate=Decimal("1.3"))
    assert api.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_a_refused_reader_gets_no_304_and_no_etag(data, staff_api):
    tag = staff_api.get(ENDPOINTS[0])["ETag"]
    stranger = client_for(make_user("stranger"))
    refused = stranger.get(ENDPOINTS[0], HTTP_IF_NONE_MATCH=tag)
    assert refused.status_code == 403 and "ETag" not in refused
    assert client_for(None).get(ENDPOINTS[0], HTTP_IF_NONE_MATCH=tag).status_code == 401


def test_a_count_follows_a_new_version_at_once(staff_api, data, settings):
    settings.LAKE_COUNT_CACHE_SECONDS = 60  # a count is kept per process, per state
    url = "/api/v1/resources/transactions/rows/"
    before = staff_api.get(url).json()["count"]
    merge([row(100 + i) for i in range(3)])
    assert staff_api.get(url).json()["count"] == before + 3


def test_a_bad_export_is_a_400_whatever_the_client_holds(staff_api, data):
    for held in ("*", 'W/"x"'):
        refused = staff_api.get(
            "/api/v1/resources/transactions/rows/",
            {"format": "csv", "cursor": "x"},
            HTTP_IF_NONE_MATCH=held,
        )
        assert refused.status_code == 400 and "cursor" in refused.json()["errors"]


def test_the_current_version_rides_on_the_token_lookup_and_is_read_again_after_the_page(data):
    reader = make_user("rider")
    give(reader, "transactions")
    api = client_for(reader)

    def statements(**headers):
        sql = []

        def seen(execute, statement, params, many, context):
            sql.append(statement)
            return execute(statement, params, many, context)

        with connection.execute_wrapper(seen):
            response = api.get("/api/v1/resources/transactions/rows/", **headers)
        token = [s for s in sql if "key_hash" in s]
        versions = [s for s in sql if "coalesce(%s, r.current_version)" in s and s not in token]
        return response, token, versions

    page, token, versions = statements()
    assert page.status_code == 200 and page["X-Data-Version"] == "2"
    assert len(token) == 1 and "json_build_array(r.current_version, v.id)" in token[0]
    assert len(versions) == 1  # the check after the page: never the ridden answer again
    unchanged, token, versions = statements(HTTP_IF_NONE_MATCH=page["ETag"])
    assert unchanged.status_code == 304 and len(token) == 1 and versions == []
    merge([row(40)])  # a new version: the very next request sees it
    changed, _token, _versions = statements(HTTP_IF_NONE_MATCH=page["ETag"])
    assert changed.status_code == 200 and changed["X-Data-Version"] == "3"
    assert changed["ETag"] != page["ETag"]
