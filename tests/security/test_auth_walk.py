"""Every /api/v1/ endpoint refuses anonymous and bad-token calls with 401.

The URL patterns are walked from the resolver, so an endpoint added later is
covered without anyone remembering to add it here.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.support.routes import PUBLIC, SIGNED, api_routes

METHODS = ("get", "post", "put", "patch", "delete")


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


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(SIGNED))
@pytest.mark.parametrize("credentials", [None, "Token not-a-real-token", "Bearer abc"])
def test_signed_urls_refuse_without_a_valid_signature(route, credentials):
    """A file URL is its own credential: a token neither replaces nor spoils it."""
    client = APIClient()
    if credentials:
        client.credentials(HTTP_AUTHORIZATION=credentials)
    for method in ("get", "head"):
        response = getattr(client, method)("/" + route)
        assert response.status_code == 403, (method, route, response.status_code)
    assert client.get("/" + route).json()["code"] == "url_invalid"
