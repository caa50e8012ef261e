"""Grants: every privilege rule of API.md, through the real API and database."""

from __future__ import annotations

import datetime as dt

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import Grant
from tests.support.factories import client_for, give, make_user

ROWS = "/api/v1/resources/transactions/rows/"


@pytest.fixture
def carol(db):
    """carol holds `grant` on transactions (and nothing else)."""
    user = make_user("carol")
    give(user, "transactions", "grant")
    return user


def post_grant(client, **body):
    return client.post("/api/v1/grants/", body, format="json")


def test_staff_gives_a_grant_and_it_works_at_once(staff, alice):
    admin, api = client_for(staff), client_for(alice)
    assert api.get(ROWS).status_code == 403
    response = post_grant(admin, user="alice", resource="transactions", privilege="read")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["user"] == "alice" and body["group"] is None
    assert body["resource"] == "transactions" and body["privilege"] == "read"
    assert body["granted_by"] == "root" and body["expires_at"] is None
    assert body["created_at"] and body["id"]
    assert api.get(ROWS).status_code == 200


def test_identical_live_grant_is_returned_not_duplicated(staff, alice):
    admin = client_for(staff)
    first = post_grant(admin, user="alice", resource="transactions", privilege="read")
    again = post_grant(admin, user="alice", resource="transactions", privilege="read")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert Grant.objects.filter(user=alice).count() == 1


def test_revoke_is_effective_on_the_next_request(staff, alice):
    admin, api = client_for(staff), client_for(alice)
    grant_id = post_grant(admin, user="alice", resource="transactions", privilege="read").json()[
        "id"
    ]
    assert api.get(ROWS).status_code == 200
    assert admin.delete(f"/api/v1/grants/{grant_id}/").status_code == 204
    assert api.get(ROWS).status_code == 403


def test_expired_grant_gives_nothing(alice):
    give(alice, "transactions", "read", expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert client_for(alice).get(ROWS).status_code == 403


def test_grant_until_a_future_date_works_until_then(alice):
    grant = give(alice, "transactions", "read", expires_at=timezone.now() + dt.timedelta(hours=1))
    api = client_for(alice)
    assert api.get(ROWS).status_code == 200
    Grant.objects.filter(pk=grant.pk).update(expires_at=timezone.now())
    assert api.get(ROWS).status_code == 403


def test_group_grant_reaches_its_members_only(staff, alice):
    analysts = Group.objects.create(name="analysts")
    alice.groups.add(analysts)
    outsider = make_user("dave")
    response = post_grant(client_for(staff), group="analysts", resource="sales", privilege="read")
    assert response.status_code == 201
    assert response.json()["group"] == "analysts" and response.json()["user"] is None
    assert client_for(alice).get("/api/v1/resources/sales/rows/").status_code == 200
    assert client_for(outsider).get("/api/v1/resources/sales/rows/").status_code == 403


def test_who_may_give(alice, carol):
    api, holder = client_for(alice), client_for(carol)
    assert (
        post_grant(api, user="alice", resource="transactions", privilege="read").status_code == 403
    )
    ok = post_grant(holder, user="alice", resource="transactions", privilege="read")
    assert ok.status_code == 201 and ok.json()["granted_by"] == "carol"
    assert post_grant(holder, user="alice", resource="sales", privilege="read").status_code == 403


def test_who_may_revoke(alice, carol, staff):
    own = give(alice, "transactions", "read")
    other = give(alice, "sales", "read")
    api, holder = client_for(alice), client_for(carol)
    assert api.delete(f"/api/v1/grants/{own.pk}/").status_code == 403  # sees it, may not revoke
    assert holder.delete(f"/api/v1/grants/{other.pk}/").status_code == 404  # does not see it
    assert holder.delete(f"/api/v1/grants/{own.pk}/").status_code == 204


def test_who_sees_which_grants(alice, carol, staff):
    analysts = Group.objects.create(name="analysts")
    alice.groups.add(analysts)
    mine = give(alice, "sales", "read")
    ours = give(analysts, "exchange_rates", "read")
    on_tx = give(make_user("erin"), "transactions", "read")
    elsewhere = give(make_user("frank"), "sales", "write")

    def ids(client, **params):
        body = client.get("/api/v1/grants/", params).json()
        return {g["id"] for g in body["results"]}

    carols_own = Grant.objects.get(user=carol).pk
    assert ids(client_for(alice)) == {mine.pk, ours.pk}
    assert ids(client_for(carol)) == {on_tx.pk, carols_own}
    assert {mine.pk, ours.pk, on_tx.pk, elsewhere.pk, carols_own} == ids(client_for(staff))
    assert ids(client_for(staff), resource="sales") == {mine.pk, elsewhere.pk}
    assert ids(client_for(staff), user="erin") == {on_tx.pk}


@pytest.mark.parametrize(
    "body",
    [
        {"resource": "transactions", "privilege": "read"},
        {"user": "alice", "group": "g", "resource": "transactions", "privilege": "read"},
        {"user": "nobody", "resource": "transactions", "privilege": "read"},
        {"user": "alice", "resource": "nope", "privilege": "read"},
        {"user": "alice", "resource": "transactions", "privilege": "admin"},
        {"user": "alice", "resource": "transactions", "privilege": "read", "expires_at": "soon"},
        {
            "user": "alice",
            "resource": "transactions",
            "privilege": "read",
            "expires_at": "2001-01-01T00:00:00Z",
        },
    ],
)
def test_bad_grant_requests_are_400(staff, alice, body):
    Group.objects.create(name="g")
    response = post_grant(client_for(staff), **body)
    assert response.status_code == 400, response.json()
    assert response.json()["detail"]


def test_grant_list_rejects_unknown_filters(staff):
    response = client_for(staff).get("/api/v1/grants/", {"colour": "red"})
    assert response.status_code == 400


def test_grant_changes_are_in_the_auditlog(staff, alice):
    admin = client_for(staff)
    grant_id = post_grant(admin, user="alice", resource="sales", privilege="read").json()["id"]
    admin.delete(f"/api/v1/grants/{grant_id}/")
    entries = LogEntry.objects.filter(content_type__model="grant", object_pk=str(grant_id))
    assert [e.action for e in entries.order_by("timestamp")] == [
        LogEntry.Action.CREATE,
        LogEntry.Action.DELETE,
    ]
    assert all(e.actor == staff for e in entries)


def test_the_admin_gives_and_revokes(staff, alice, client):
    from datalake.models import Resource

    client.force_login(staff)
    resource = Resource.objects.get(name="transactions")
    response = client.post(
        "/admin/accounts/grant/add/",
        {"user": alice.pk, "resource": resource.pk, "privilege": "read"},
    )
    assert response.status_code == 302, response.content[:500]
    grant = Grant.objects.get(user=alice)
    assert grant.granted_by == staff
    assert client_for(alice).get(ROWS).status_code == 200
    listing = client.get("/admin/accounts/grant/", {"q": "alice"})
    assert b"transactions" in listing.content
    client.post(f"/admin/accounts/grant/{grant.pk}/delete/", {"post": "yes"})
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert client_for(alice).get(ROWS).status_code == 403
