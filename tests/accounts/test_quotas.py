"""Quotas per token (accounts/quotas/): requests a minute, rows a day, 429 and headers.

Real Redis, real requests. Windows pass by moving the clock the counters read
(`accounts.quotas.counters.clock`), never by sleeping: the clock is fixed one second into
a minute, so `Retry-After` and `RateLimit-Reset` are exact.
"""

from __future__ import annotations

from collections import Counter

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import ApiToken, Quota
from accounts.quotas import counters
from lineage import writer
from lineage.models import RequestLog
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row

pytestmark = pytest.mark.django_db(transaction=True)

CATALOG = "/api/v1/resources/"
ROWS = "/api/v1/resources/transactions/rows/"
T0 = 60 * 29_500_000 + 1  # 2026-02-02T02:40:01Z: one second into a minute
DAY_LEFT = 86_400 - T0 % 86_400


@pytest.fixture
def clock(monkeypatch):
    """The counters' clock, fixed at T0; `clock.move(seconds)` moves it on."""

    class Clock:
        now = float(T0)

        def move(self, seconds: float) -> None:
            self.now += seconds

    fixed = Clock()
    monkeypatch.setattr(counters, "clock", lambda: fixed.now)
    return fixed


@pytest.fixture
def limits(settings, clock):
    settings.QUOTA_REQUESTS_PER_MINUTE = 3
    settings.QUOTA_ROWS_PER_DAY = 25
    return settings


@pytest.fixture
def rows_reader(db):
    """carol, who may read `transactions`, which holds 30 rows."""
    merge([row(i) for i in range(30)])
    carol = make_user("carol")
    give(carol, "transactions", "read")
    return carol


def read_rows(query) -> bool:
    return 'FROM "transactions"' in str(query["sql"])


def quota_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if "ratelimit" in k.lower()}


def test_past_its_requests_a_minute_a_token_gets_429_until_the_minute_has_passed(
    alice, limits, clock
):
    api = client_for(alice)
    for left in (2, 1, 0):
        response = api.get(CATALOG)
        assert response.status_code == 200
        assert response["RateLimit-Limit"] == "3" and response["RateLimit-Policy"] == "3;w=60"
        assert response["RateLimit-Remaining"] == str(left)
        assert response["RateLimit-Reset"] == "59"
    for _ in range(2):  # refused ones go on being refused, with the same envelope
        refused = api.get(CATALOG)
        assert refused.status_code == 429
        assert refused.json()["code"] == "quota_exceeded"
        assert "3 requests a minute" in refused.json()["detail"]
        assert refused["Retry-After"] == "59" and refused["RateLimit-Remaining"] == "0"
    clock.move(58.5)  # still the same minute
    assert api.get(CATALOG).status_code == 429
    assert api.get(CATALOG)["Retry-After"] == "1"
    clock.move(1)  # the next minute: a new count
    recovered = api.get(CATALOG)
    assert recovered.status_code == 200 and recovered["RateLimit-Remaining"] == "2"
    assert recovered["RateLimit-Reset"] == "60"


def test_each_token_counts_apart_and_a_session_counts_per_user(alice, limits):
    first, second = client_for(alice), client_for(alice)
    for _ in range(3):
        assert first.get(CATALOG).status_code == 200
    assert first.get(CATALOG).status_code == 429
    assert second.get(CATALOG)["RateLimit-Remaining"] == "2"
    session = APIClient()
    session.force_login(alice)
    assert session.get(CATALOG)["RateLimit-Remaining"] == "2"
    other = APIClient()
    other.force_login(alice)
    assert other.get(CATALOG)["RateLimit-Remaining"] == "1"  # the same user's count


def test_a_users_own_quota_beats_its_groups_and_the_most_generous_group_wins(alice, limits):
    api = client_for(alice)
    assert api.get(CATALOG)["RateLimit-Limit"] == "3"  # the default, now cached
    tight, loose = Group.objects.create(name="tight"), Group.objects.create(name="loose")
    Quota.objects.create(group=tight, requests_per_minute=2, rows_per_day=5)
    Quota.objects.create(group=loose, requests_per_minute=50)  # rows: the default, 25
    alice.groups.add(tight)
    response = api.get(CATALOG)
    assert response["RateLimit-Limit"] == "2" and response["X-RateLimit-Rows-Limit"] == "5"
    alice.groups.add(loose)
    response = api.get(CATALOG)
    assert response["RateLimit-Limit"] == "50" and response["X-RateLimit-Rows-Limit"] == "25"
    own = Quota.objects.create(user=alice, requests_per_minute=4)  # rows: left to groups
    response = api.get(CATALOG)
    assert response["RateLimit-Limit"] == "4" and response["X-RateLimit-Rows-Limit"] == "25"
    own.requests_per_minute, own.rows_per_day = 0, 0  # 0: no limit, no headers
    own.save()
    assert quota_headers(api.get(CATALOG)) == {}
    own.delete()
    alice.groups.remove(loose)
    assert api.get(CATALOG)["RateLimit-Limit"] == "2"


def test_staff_have_no_quota_unless_a_row_gives_them_one(staff, limits):
    api = client_for(staff)
    for _ in range(5):
        response = api.get(CATALOG)
        assert response.status_code == 200 and quota_headers(response) == {}
    Quota.objects.create(user=staff, requests_per_minute=1)
    assert api.get(CATALOG)["RateLimit-Limit"] == "1"
    assert api.get(CATALOG).status_code == 429


def test_a_quota_set_in_the_admin_counts_from_the_next_request(alice, staff, limits):
    api = client_for(alice)
    assert api.get(CATALOG)["RateLimit-Limit"] == "3"  # the default, now cached
    admin = APIClient()
    admin.force_login(staff)
    form = {"user": alice.pk, "group": "", "requests_per_minute": "1", "rows_per_day": ""}
    saved = admin.post("/admin/accounts/quota/add/", form)
    assert saved.status_code == 302, saved.content[:2000]
    refused = api.get(CATALOG)  # its second request this minute, one allowed
    assert refused.status_code == 429 and refused["RateLimit-Limit"] == "1"
    # One of user or group, exactly.
    both = admin.post("/admin/accounts/quota/add/", {**form, "group": Group.objects.create().pk})
    assert both.status_code == 200 and Quota.objects.count() == 1


def test_rows_a_day_are_counted_by_page_and_refused_before_the_query(rows_reader, limits, clock):
    api = client_for(rows_reader)
    served = []
    for page, left in ((1, 15), (2, 5), (3, 0)):  # a page is served whole while rows are left
        with CaptureQueriesContext(connection) as queries:
            response = api.get(ROWS, {"page": page})
        assert response.status_code == 200
        assert any(read_rows(q) for q in queries)
        served += response.json()["results"]
        assert response["X-RateLimit-Rows-Remaining"] == str(left)
        assert response["X-RateLimit-Rows-Reset"] == str(DAY_LEFT - 60 * (page - 1))
        clock.move(60)  # not the request quota under test here
    assert len(served) == 30
    with CaptureQueriesContext(connection) as queries:
        refused = api.get(ROWS, {"page": 1})
    assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
    assert "25 rows a day" in refused.json()["detail"]
    assert refused["Retry-After"] == str(DAY_LEFT - 180)
    assert not any(read_rows(q) for q in queries)
    assert api.get("/api/v1/resources/transactions/versions/1/rows/").status_code == 429
    assert api.get(CATALOG).status_code == 200  # what serves no rows still answers
    clock.move(DAY_LEFT)  # the next UTC day
    again = api.get(ROWS)
    assert again.status_code == 200 and again["X-RateLimit-Rows-Remaining"] == "15"
    # A page is reserved in advance: what a short page or a refused query did not serve
    # goes back.
    clock.move(60)
    assert api.get(ROWS, {"page_size": 4})["X-RateLimit-Rows-Remaining"] == "11"
    assert api.get(ROWS, {"country__gt": "x"}).status_code == 400
    assert api.get(ROWS, {"nonsense": 1})["X-RateLimit-Rows-Remaining"] == "11"


def test_a_counted_request_reads_no_quota_row_in_the_steady_state(alice, limits):
    api = client_for(alice)
    with CaptureQueriesContext(connection) as first:
        api.get(CATALOG)
    with CaptureQueriesContext(connection) as second:
        assert api.get(CATALOG)["RateLimit-Remaining"] == "1"
    assert any("accounts_quota" in str(q["sql"]) for q in first)
    assert not any("accounts_quota" in str(q["sql"]) for q in second)


def test_anonymous_and_bad_credentials_are_401_uncounted_and_without_headers(alice, limits):
    anonymous, bad = APIClient(), APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    for client in (anonymous, bad):
        for _ in range(4):
            response = client.get(CATALOG)
            assert response.status_code == 401 and quota_headers(response) == {}
    assert client_for(alice).get(CATALOG)["RateLimit-Remaining"] == "2"


def test_quotas_off_count_nothing(alice, limits):
    limits.QUOTAS_ENABLED = False
    api = client_for(alice)
    for _ in range(5):
        response = api.get(CATALOG)
        assert response.status_code == 200 and quota_headers(response) == {}


def test_every_refused_request_is_in_the_request_log(alice, limits):
    assert writer.flush()  # what earlier tests left queued
    before = RequestLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
    api = client_for(alice)
    statuses = [api.get(CATALOG, {"page_size": n}).status_code for n in range(1, 6)]
    assert statuses == [200, 200, 200, 429, 429]
    assert writer.flush()
    logged = RequestLog.objects.filter(id__gt=before, path=CATALOG).order_by("id")
    assert [entry.status_code for entry in logged] == statuses


@pytest.fixture
def redis_commands(monkeypatch):
    """The quota's commands to Redis from this thread (the test client's requests run in
    it): `script` (each counts a request or takes a lease) and `incrby` (rows added or
    given back). A spy: each command still runs."""
    calls = Counter()
    server = counters.client()  # this thread's connection and its script
    script, incrby = counters._local.count, server.incrby

    def count(*args, **kwargs):
        calls["script"] += 1
        return script(*args, **kwargs)

    def add(*args, **kwargs):
        calls["incrby"] += 1
        return incrby(*args, **kwargs)

    monkeypatch.setattr(counters._local, "count", count)
    monkeypatch.setattr(server, "incrby", add)
    return calls


def test_a_conditional_read_reserves_no_rows_and_a_304_costs_one_redis_command(
    rows_reader, limits, clock, redis_commands
):
    api = client_for(rows_reader)
    first = api.get(ROWS, {"page_size": 4})
    assert first["X-RateLimit-Rows-Remaining"] == "21"
    before = Counter(redis_commands)
    unchanged = api.get(ROWS, {"page_size": 4}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert unchanged.status_code == 304
    assert unchanged["X-RateLimit-Rows-Remaining"] == "21"  # nothing reserved, nothing served
    # One script counted the request; no rows were reserved, none given back after it.
    assert redis_commands - before == Counter(script=1)
    # A conditional request whose tag is stale is served, and its page charged after it.
    clock.move(60)
    stale = api.get(ROWS, {"page_size": 4}, HTTP_IF_NONE_MATCH='W/"stale"')
    assert stale.status_code == 200 and len(stale.json()["results"]) == 4
    assert stale["X-RateLimit-Rows-Remaining"] == "17"


def test_a_process_counts_in_leases_of_a_hundredth_of_the_limits(
    rows_reader, settings, clock, redis_commands
):
    settings.QUOTA_REQUESTS_PER_MINUTE = 500  # leases of 5 requests
    settings.QUOTA_ROWS_PER_DAY = 5_000  # ... and 50 rows beyond each page
    api = client_for(rows_reader)
    token = ApiToken.objects.get(user=rows_reader)
    api.get(ROWS, {"page_size": 10})  # the first trip learns the limits: no lease yet
    before = Counter(redis_commands)
    pages = [api.get(ROWS, {"page_size": 10}) for _ in range(3)]
    # A short page (here a 400: none of it served) gives its rows back to the lease.
    refused = api.get(ROWS, {"country__gt": "x"})
    assert refused.status_code == 400
    # One trip took the lease the next three counted from; nothing given back to Redis.
    assert redis_commands - before == Counter(script=1)
    answers = [*pages, refused]
    assert [int(a["RateLimit-Remaining"]) for a in answers] == [498, 497, 496, 495]
    rows_left = [int(a["X-RateLimit-Rows-Remaining"]) for a in answers]
    assert rows_left == [4_980, 4_970, 4_960, 4_960]  # exact in one process
    # Redis holds the lease as spent: the counters never pass a limit.
    server = counters.client()
    minute, day = int(clock.now // counters.MINUTE), int(clock.now // counters.DAY)
    assert int(server.get(f"{counters.PREFIX}:req:t{token.pk}:{minute}")) == 1 + 5
    assert int(server.get(f"{counters.PREFIX}:rows:t{token.pk}:{day}")) == 10 + 10 + 50
    # The next minute: the rows the lease has left are carried into the next trip.
    clock.move(60)
    again = api.get(ROWS, {"page_size": 10})
    assert int(again["RateLimit-Remaining"]) == 499
    assert int(again["X-RateLimit-Rows-Remaining"]) == 5_000 - 50  # 5 pages served


def test_no_lease_share_means_a_trip_a_request(rows_reader, settings, clock, redis_commands):
    settings.QUOTA_REQUESTS_PER_MINUTE = 500
    settings.QUOTA_LEASE_SHARE = 0
    api = client_for(rows_reader)
    api.get(ROWS)
    before = Counter(redis_commands)
    for _ in range(3):
        api.get(ROWS)
    assert redis_commands - before == Counter(script=3)
