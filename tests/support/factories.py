"""Objects the tests make: users, API clients holding a token, grants.

Made directly in the database: the API's own paths for them are tested elsewhere.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework.test import APIClient

from accounts.models import ApiToken, Grant
from datalake.models import Resource


def make_user(username: str, **extra) -> User:
    return User.objects.create_user(username=username, password=f"{username}-pw-123", **extra)


def client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        _token, key = ApiToken.issue(user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def give(user_or_group, resource: str, privilege: str = "read", **extra) -> Grant:
    """A grant made directly in the database (the API's own path is tested elsewhere)."""
    field = "user" if isinstance(user_or_group, User) else "group"
    return Grant.objects.create(
        **{field: user_or_group},
        resource=Resource.objects.get(name=resource),
        privilege=privilege,
        **extra,
    )
