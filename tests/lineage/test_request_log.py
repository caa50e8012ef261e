"""The request log: every /api/ request stored, secrets masked, append-only."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from lineage import writer
from lineage.models import RequestLog
from tests.support.factories import client_for, give

ROWS = "/api/v1/resources/transactions/rows/"


def last() -> RequestLog:
    return RequestLog.objects.order_by("-id").first()


def test_a_read_is_stored_with_who_what_and_how(alice):
    give(alice, "transactions")
    client_for(alice).get(ROWS, {"country": "FR"}, REMOTE_ADDR="10.1.2.3")
    entry = last()
    assert (entry.username, entry.user_id) == ("alice", alice.pk)
    assert (entry.method, entry.path, entry.query) == ("GET", ROWS, {"country": "FR"})
    assert entry.status_code == 200 and entry.resource == "transactions"
    assert entry.ip == "10.1.2.3" and entry.duration_ms > 0 and entry.at is not None


def test_anonymous_refused_and_malformed_requests_are_stored(alice, db):
    APIClient().get(ROWS)
    assert (last().username, last().status_code) == ("", 401)
    client_for(alice).get(ROWS)
    assert (last().username, last().status_code, last().resource) == ("alice", 403, "transactions")
    give(alice, "transactions")
    client_for(alice).get(ROWS, {"amount__gt": "lots"})
    assert last().status_code == 400
    client_for(alice).post("/api/v1/grants/", "{not json", content_type="application/json")
    assert last().status_code == 400
    assert last().body == {"_invalid_json": "{not json"}


def test_the_password_of_a_token_request_is_masked(alice):
    APIClient().post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-pw-123"}, format="json"
    )
    entry = last()
    assert entry.body == {"username": "alice", "password": "***"}
    assert entry.status_code == 200 and entry.username == ""
    APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "guess"})
    assert last().body == {"username": "alice", "password": "***"}  # form-encoded too


def test_nested_secrets_and_large_bodies(staff):
    admin = client_for(staff)
    admin.post(
        "/api/v1/grants/",
        {"user": "x", "nested": {"api_key": "k", "Authorization": "t", "list": [{"secret": 1}]}},
        format="json",
    )
    body = last().body
    assert body["nested"] == {"api_key": "***", "Authorization": "***", "list": [{"secret": "***"}]}
    admin.post("/api/v1/grants/", {"user": "x" * 50_000}, format="json")
    big = last().body
    assert big["_truncated"] is True and big["_size"] > 50_000 and len(big["_head"]) <= 2000


@pytest.mark.urls("tests.support.urls_boom")
def test_a_500_inside_a_view_still_leaves_its_entry(alice):
    client = client_for(alice)
    client.raise_request_exception = False
    response = client.post("/api/v1/boom/", {"a": 1}, format="json")
    assert response.status_code == 500
    entry = last()
    assert (entry.path, entry.status_code, entry.body) == ("/api/v1/boom/", 500, {"a": 1})


def test_non_api_paths_are_not_logged(db):
    before = RequestLog.objects.count()
    APIClient().get("/healthz")
    assert RequestLog.objects.count() == before


def test_staff_query_the_log_with_filters(staff, alice):
    give(alice, "transactions")
    api = client_for(alice)
    api.get(ROWS)
    api.get(ROWS, {"nope": "1"})
    admin = client_for(staff)
    body = admin.get("/api/v1/audit/requests/", {"user": "alice", "status_code": 400}).json()
    assert [r["query"] for r in body["results"]] == [{"nope": "1"}]
    ok = admin.get(
        "/api/v1/audit/requests/",
        {"user": "alice", "resource": "transactions", "method": "get", "since": "2000-01-01"},
    ).json()
    assert {r["status_code"] for r in ok["results"]} == {200, 400}
    assert ok["results"][0]["at"] >= ok["results"][1]["at"]  # newest first
    future = admin.get("/api/v1/audit/requests/", {"since": "2999-01-01"}).json()
    assert future["count"] == 0
    assert admin.get("/api/v1/audit/requests/", {"since": "someday"}).status_code == 400
    assert admin.get("/api/v1/audit/requests/", {"colour": "red"}).status_code == 400


def test_only_staff_read_the_log(alice):
    assert client_for(alice).get("/api/v1/audit/requests/").status_code == 403


@pytest.mark.parametrize("method", ["put", "patch", "delete", "post"])
def test_no_api_changes_an_entry(staff, method):
    admin = client_for(staff)
    admin.get(ROWS)
    entry_id = last().pk
    target = (
        f"/api/v1/audit/requests/{entry_id}/" if method != "post" else "/api/v1/audit/requests/"
    )
    response = getattr(admin, method)(target, {"status_code": 200}, format="json")
    assert response.status_code == 405
    assert RequestLog.objects.get(pk=entry_id).status_code == 200


def test_the_database_refuses_update_and_delete(staff):
    client_for(staff).get(ROWS)
    entry_id = last().pk
    for sql in (
        "UPDATE lineage_requestlog SET status_code = 200 WHERE id = %s",
        "DELETE FROM lineage_requestlog WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry_id])
    with pytest.raises(DatabaseError), transaction.atomic():
        RequestLog.objects.filter(pk=entry_id).update(status_code=1)


def test_access_log_needs_grant_and_shows_who(alice, staff):
    from tests.support.factories import make_user

    give(alice, "transactions", "read")
    client_for(alice).get(ROWS, {"country": "FR"})
    url = "/api/v1/resources/transactions/access-log/"
    assert client_for(alice).get(url).status_code == 403
    owner = make_user("olga")
    give(owner, "transactions", "grant")
    body = client_for(owner).get(url, {"user": "alice"}).json()
    # Refused attempts count as accesses too: alice's 403 on access-log is listed first.
    assert [(r["path"], r["status_code"]) for r in body["results"]] == [(url, 403), (ROWS, 200)]
    assert body["results"][1]["user"] == "alice"
    assert body["results"][1]["query"] == {"country": "FR"}
    assert set(body["results"][0]) == {"user", "at", "method", "path", "query", "status_code"}
    assert client_for(owner).get(url, {"until": "2000-01-01"}).json()["count"] == 0
    assert client_for(owner).get("/api/v1/resources/sales/access-log/").status_code == 403


def test_entries_outside_a_transaction_are_written_in_batches(transactional_db):
    """How the web stores entries (autocommit): reads by the writer thread, writes at once."""
    from tests.support.factories import make_user

    bob = make_user("bob")
    give(bob, "transactions")
    api = client_for(bob)
    assert connection.get_autocommit()
    api.get(ROWS, {"country": "FR", "weird": "a\x00b"}, REMOTE_ADDR="10.9.8.7")
    assert writer.flush()
    entry = last()
    assert (entry.username, entry.user_id, entry.method, entry.status_code) == (
        "bob", bob.pk, "GET", 400
    )  # fmt: skip
    assert entry.query == {"country": "FR", "weird": "a\ufffdb"}
    assert entry.ip == "10.9.8.7" and entry.body is None and entry.restrictions is None
    assert entry.resource == "transactions" and len(entry.request_id) == 32
    api.post("/api/v1/auth/tokens/rotate/", {"password": "s3cret"}, format="json")
    assert last().method == "POST" and last().body == {"password": "***"}
    before = RequestLog.objects.count()
    for _ in range(3):
        api.get(ROWS)
    assert writer.flush()
    assert RequestLog.objects.count() == before + 3


EXITING = """
import os, sys, django
django.setup()
from django.utils import timezone
from lineage.writer import store_entry
for i in range(50):
    store_entry({"at": timezone.now(), "username": "", "method": "GET", "path": "/api/exit-test/",
                 "query": {"i": i}, "status_code": 200, "duration_ms": 1.0, "resource": "",
                 "request_id": "exit-test"}, asynchronous=True)
sys.exit(0)  # at once: what the writer thread holds is stored on the way out
"""


def test_queued_entries_are_stored_when_the_process_exits(transactional_db):
    import subprocess
    import sys

    from django.db import connection as conn

    db = conn.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**__import__("os").environ, "DATABASE_URL": url, "REQUEST_LOG_FLUSH_MS": "1000"}
    subprocess.run([sys.executable, "-c", EXITING], env=env, check=True, timeout=60)
    stored = RequestLog.objects.filter(request_id="exit-test")
    assert sorted(e.query["i"] for e in stored) == list(range(50))
