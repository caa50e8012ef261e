"""The admin's autocomplete fields rank what the administrator typed: the exact name
first, then names that start with it, then names that contain it (each group by name).

Without the ranking, `transactions` came after `raw_transactions` (alphabetical), and a
grant picked by the first suggestion went to the wrong resource.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from datalake.models import Resource
from tests.support.factories import make_user

AUTOCOMPLETE = "/admin/autocomplete/"


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def suggestions(client: Client, field: str, term: str) -> list[str]:
    response = client.get(
        AUTOCOMPLETE,
        {"app_label": "accounts", "model_name": "grant", "field_name": field, "term": term},
    )
    assert response.status_code == 200, response.content
    return [r["text"] for r in response.json()["results"]]


def test_the_exact_resource_name_comes_first_then_prefixes_then_the_rest(admin_client):
    Resource.objects.get_or_create(name="raw_transactions", defaults={"kind": "files"})
    Resource.objects.get_or_create(name="transactions_archive", defaults={"kind": "table"})
    Resource.objects.get_or_create(name="transactions", defaults={"kind": "table"})
    names = suggestions(admin_client, "resource", "transactions")
    assert names[:3] == ["transactions", "transactions_archive", "raw_transactions"], names
    # The same ranking whatever the case typed.
    assert suggestions(admin_client, "resource", "TRANSACTIONS")[0] == "transactions"


def test_users_and_groups_rank_the_exact_name_first(admin_client):
    for name in ("carol", "carole", "bcarol"):
        make_user(name)
        Group.objects.create(name=f"{name}-team" if name != "carol" else "carol")
    assert suggestions(admin_client, "user", "carol") == ["carol", "carole", "bcarol"]
    groups = suggestions(admin_client, "group", "carol")
    assert groups[0] == "carol", groups


def test_an_empty_term_lists_everything_by_name(admin_client):
    names = suggestions(admin_client, "resource", "")
    assert names == sorted(names) and len(names) == Resource.objects.count()
