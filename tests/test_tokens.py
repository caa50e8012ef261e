"""Tokens: hashed at rest, optional expiry, rotation, revocation, failed-login throttle."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.conftest import make_user

TOKEN_URL = "/api/v1/auth/token/"


def login(username="alice", password="alice-pw-123", ip="127.0.0.1"):
    return APIClient().post(
        TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=ip
    )


def with_key(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_token_endpoint_and_bad_credentials(alice):
    response = login()
    assert response.status_code == 200
    key = response.json()["token"]
    assert with_key(key).get("/api/v1/resources/").status_code == 200
    bad = login(password="wrong")
    assert bad.status_code == 400 and bad.json()["detail"]
    assert login(username="nobody").status_code == 400
    assert APIClient().post(TOKEN_URL, {}, format="json").status_code == 400


def test_only_a_hash_of_the_key_is_stored(alice):
    key = login().json()["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        stored = " ".join(str(v) for row in cursor.fetchall() for v in row)
    assert key not in stored
    token = ApiToken.objects.get(user=alice)
    assert with_key(token.key_hash).get("/api/v1/resources/").status_code == 401
    assert token.prefix == key[:8]


def test_an_expired_token_is_refused(alice):
    key = login().json()["token"]
    ApiToken.objects.filter(user=alice).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = with_key(key).get("/api/v1/resources/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_user_rotates_their_own_token(alice):
    old = login().json()["token"]
    response = with_key(old).post("/api/v1/auth/tokens/rotate/")
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old
    assert with_key(old).get("/api/v1/resources/").status_code == 401
    assert with_key(new).get("/api/v1/resources/").status_code == 200


def test_an_administrator_revokes_any_token_a_user_only_their_own(alice, staff):
    alice_key = login().json()["token"]
    make_user("bob")
    bob_key = login("bob", "bob-pw-123").json()["token"]
    alice_token = ApiToken.objects.get(user=alice)
    assert with_key(bob_key).delete(f"/api/v1/auth/tokens/{alice_token.pk}/").status_code == 404
    listed = with_key(bob_key).get("/api/v1/auth/tokens/").json()["results"]
    assert [t["user"] for t in listed] == ["bob"] and "key_hash" not in listed[0]
    staff_key = login("root", "root-pw-123").json()["token"]
    assert with_key(staff_key).delete(f"/api/v1/auth/tokens/{alice_token.pk}/").status_code == 204
    assert with_key(alice_key).get("/api/v1/resources/").status_code == 401


def test_repeated_failed_logins_are_throttled(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        assert login(password="wrong").status_code == 400
    throttled = login(password="wrong")
    assert throttled.status_code == 429
    assert "Retry-After" in throttled.headers
    assert login().status_code == 429  # even the right password, until the window ends
    assert login("alice", "alice-pw-123", ip="10.9.9.9").status_code == 429  # per username too


def test_failures_from_one_ip_throttle_that_ip(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    make_user("bob")
    for name in ("x1", "x2", "x3"):
        login(name, "nope", ip="10.0.0.7")
    assert login("bob", "bob-pw-123", ip="10.0.0.7").status_code == 429
    assert login("bob", "bob-pw-123", ip="10.0.0.8").status_code == 200
