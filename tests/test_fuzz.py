"""Fuzzing every operation of the project's own OpenAPI schema against a live server.

Schemathesis generates requests from the schema (drf-spectacular's, built in-process)
and sends them over HTTP to pytest-django's live server, as a user holding grants on
every resource and as one holding none. Every response must be a non-5xx that the
schema documents (status code, content type, body). Bounded here (FUZZ_EXAMPLES per
operation, 3 by default); `make fuzz` runs it with many more.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import give, make_user

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))


@pytest.fixture(scope="module")
def api_schema(django_db_blocker):
    with django_db_blocker.unblock():
        raw = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(raw)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def tokens(lake):
    from accounts.models import ApiToken
    from datalake.catalog.sync import sync_resources
    from datalake.models import Resource

    sync_resources()
    granted, bare = make_user("fuzz-granted"), make_user("fuzz-bare")
    for resource in Resource.objects.values_list("name", flat=True):
        for privilege in ("read", "write", "grant"):
            give(granted, resource, privilege)
    return {who: ApiToken.issue(user)[1] for who, user in (("granted", granted), ("bare", bare))}


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


# A well-formed login with a wrong password is refused (400): the request is valid for
# the schema, the credentials are not. Every other check applies everywhere.
DOMAIN_REFUSALS = {("POST", "/api/v1/auth/token/"): [positive_data_acceptance]}


def call(case, token: str, base_url: str):
    response = case.call(base_url=base_url, headers={"Authorization": f"Token {token}"})
    excluded = DOMAIN_REFUSALS.get((case.method.upper(), case.path), [])
    case.validate_response(response, excluded_checks=excluded)


@schema.parametrize()
@FUZZ
def test_fuzz_as_a_user_with_every_grant(case, tokens, live_server):
    call(case, tokens["granted"], live_server.url)


@schema.parametrize()
@FUZZ
def test_fuzz_as_a_user_without_grants(case, tokens, live_server):
    call(case, tokens["bare"], live_server.url)
