"""Every /api/v1/ endpoint refuses anonymous and bad-token calls with 401.

The URL patterns are walked from the resolver, so an endpoint added later is
covered without anyone remembering to add it here.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

# Open by contract (API.md): the token endpoint and the pages that hold no data.
PUBLIC = {"api/v1/auth/token/", "api/v1/schema/", "api/v1/docs/", "api/v1/redoc/"}
METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$")
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def _value(match) -> str:
    return "1" if match.group(1) in ("pk", "id", "n") else "x"


def _concrete(route: str) -> str:
    """A path matching the pattern, with a plausible value for each parameter."""
    route = route.replace("\\.", ".")
    route = re.sub(r"\(\?P<format>[^)]*\)\??", "", route)
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", _value, route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", _value, route)
    route = route.replace("[^/.]+", "x")
    return "/" + route.replace("\\", "")


def api_routes() -> list[str]:
    routes = {_concrete(r) for r in _walk(get_resolver().url_patterns)}
    return sorted(r for r in routes if r.startswith("/api/v1/") and r[1:] not in PUBLIC)


def test_the_walk_finds_the_endpoints():
    routes = api_routes()
    assert "/api/v1/resources/" in routes
    assert "/api/v1/resources/x/rows/" in routes
    assert len(routes) >= 4


@pytest.mark.django_db
@pytest.mark.parametrize("route", api_routes())
@pytest.mark.parametrize("credentials", [None, "Token not-a-real-token", "Bearer abc"])
def test_every_api_endpoint_refuses_without_valid_credentials(route, credentials):
    client = APIClient()
    if credentials:
        client.credentials(HTTP_AUTHORIZATION=credentials)
    for method in METHODS:
        response = getattr(client, method)(route, format="json")
        assert response.status_code in (401, 405), (method, route, response.status_code)
        if method == "get" or response.status_code == 401:
            assert response.status_code == 401, (method, route, response.status_code)
            assert "detail" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(PUBLIC - {"api/v1/auth/token/"}))
def test_docs_and_schema_are_open(route):
    assert APIClient().get("/" + route).status_code == 200
