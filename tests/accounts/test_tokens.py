"""Tokens: hashed at rest, optional expiry, rotation, revocation, failed-login throttle."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from tests.support.factories import make_user

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


def test_failures_lock_that_username_from_that_ip_only(alice, settings):
    """Counted per (username, IP): an attacker elsewhere cannot lock alice out."""
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(2):
        assert login(password="wrong", ip="10.6.6.6").status_code == 400
    assert login(password="wrong", ip="10.6.6.6").status_code == 429  # the limit reached
    throttled = login(ip="10.6.6.6")  # even the right password, until the window ends
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled" and throttled.json()["detail"]
    assert int(throttled.headers["Retry-After"]) == settings.LOGIN_FAILURE_WINDOW
    assert login(ip="10.1.1.1").status_code == 200  # alice, from her own machine


def test_failures_for_other_usernames_do_not_refuse_the_right_password(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    make_user("bob")
    for _ in range(5):
        login("alice", "wrong", ip="10.0.0.7")
    assert login("bob", "bob-pw-123", ip="10.0.0.7").status_code == 200


def test_an_ip_guessing_many_usernames_meets_its_own_cap(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_IP_LIMIT = 6
    make_user("bob")
    for n in range(6):
        assert login(f"x{n}", "nope", ip="10.0.0.7").status_code in (400, 429)
    assert login("bob", "bob-pw-123", ip="10.0.0.7").status_code == 429
    assert login("bob", "bob-pw-123", ip="10.0.0.8").status_code == 200


def test_a_success_clears_only_that_usernames_count(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_IP_LIMIT = 5
    make_user("bob")
    for _ in range(2):
        login(password="wrong")
    assert login().status_code == 200
    for _ in range(2):
        assert login(password="wrong").status_code == 400  # alice's count started again
    login("x1", "nope")
    # The IP's count (5 failures) was not reset by alice's success: the cap holds.
    assert login("bob", "bob-pw-123").status_code == 429


def browser_login(path: str, username: str, password: str, ip: str):
    from django.test import Client

    return Client().post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("path", ["/api-auth/login/", "/admin/login/"])
def test_one_throttle_counts_failures_on_every_login_path(alice, staff, settings, path):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        assert browser_login(path, "root", "wrong", "10.2.2.2").status_code in (200, 429)
    refused = browser_login(path, "root", "root-pw-123", "10.2.2.2")
    assert refused.status_code == 429 and "_auth_user_id" not in refused.client.session
    assert login("root", "root-pw-123", ip="10.2.2.2").status_code == 429
    ok = browser_login(path, "root", "root-pw-123", "10.3.3.3")
    assert ok.status_code == 302 and ok.client.session["_auth_user_id"]


def test_token_failures_lock_the_browser_login_too(alice, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        login(password="wrong", ip="10.4.4.4")
    assert browser_login("/api-auth/login/", "alice", "alice-pw-123", "10.4.4.4").status_code == 429


def test_common_passwords_are_refused():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="too common"):
        validate_password("password123")
    validate_password("plover-quartz-1887")
