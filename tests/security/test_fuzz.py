"""Fuzzing every operation of the project's own OpenAPI schema against a live server.

Schemathesis generates requests from the schema (drf-spectacular's, built in-process)
and sends them over HTTP to pytest-django's live server, as a user holding grants on
every resource and as one holding none. Every response must be a non-5xx that the
schema documents (status code, content type, body). Bounded here (FUZZ_EXAMPLES per
operation, 3 by default); `make fuzz` runs it with many more. Then the edge values that
random generation rarely draws (below), on every operation. The session ends with a
line saying how many operations, examples and edge requests ran (tests/conftest.py).
"""

from __future__ import annotations

import itertools
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.factories import give, make_user
from tests.support.lake import pipeline_batch, tx, write_lines

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3"))
FULL = EXAMPLES >= 10  # `make fuzz`


@pytest.fixture(scope="module")
def api_schema(django_db_blocker):
    with django_db_blocker.unblock():
        raw = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(raw)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def api_schema_for_refusals(api_schema):
    """The same schema for the user without grants, without the coverage phase. That
    phase (boundary values of every parameter, ~40 requests an operation) runs for the
    user with every grant, whose requests reach every parser and query; this user's
    stop at the grant check or read an empty catalog and its own tokens, for which the
    examples and fuzzing phases suffice. `make fuzz` keeps every phase for both."""
    phases = {} if FULL else {"phases": {"coverage": {"enabled": False}}}
    return schemathesis.openapi.from_dict(
        api_schema.raw_schema, config=schemathesis.Config.from_dict(phases)
    )


refusals = schemathesis.pytest.from_fixture("api_schema_for_refusals")


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


@dataclass
class FuzzStats:
    """What the fuzzing ran, printed at the end of the session (tests/conftest.py)."""

    operations: set = field(default_factory=set)  # by schemathesis
    examples: int = 0
    edge_operations: set = field(default_factory=set)
    edge_requests: int = 0

    def summary(self) -> str:
        return (
            f"fuzzing: {len(self.operations)} operations, {self.examples} schemathesis "
            f"examples (FUZZ_EXAMPLES={EXAMPLES}; examples and fuzzing phases, coverage "
            f"{'for both users' if FULL else 'for the user with every grant'}); "
            f"{len(self.edge_operations)} operations, {self.edge_requests} edge requests"
        )


STATS = FuzzStats()


def call(case, token: str, base_url: str):
    STATS.operations.add(case.operation.label)
    STATS.examples += 1
    response = case.call(base_url=base_url, headers={"Authorization": f"Token {token}"})
    excluded = DOMAIN_REFUSALS.get((case.method.upper(), case.path), [])
    case.validate_response(response, excluded_checks=excluded)


@schema.parametrize()
@FUZZ
def test_fuzz_as_a_user_with_every_grant(case, tokens, live_server):
    call(case, tokens["granted"], live_server.url)


@refusals.parametrize()
@FUZZ
def test_fuzz_as_a_user_without_grants(case, tokens, live_server):
    call(case, tokens["bare"], live_server.url)


# ---- Edge values: what random generation rarely draws, on every operation ----------
#
# Schemathesis draws from the schema; the values that broke the API sat at the edges it
# rarely reaches: integers past PostgreSQL's types, the calendar's first and last days
# (and time zones pushing past them), control characters in path segments and values,
# raw bodies (JSON nested thousands deep, invalid, not UTF-8, another media type). Each
# is sent alone on every operation of the schema, the other parameters plain, with DEBUG
# on (HTML error pages live there); every answer must be a non-5xx JSON, an error in the
# envelope. `make fuzz` sends every value below to every parameter, random values of the
# same kinds (FUZZ_EXAMPLES // 3 more per parameter), and with DEBUG off too.

# The most telling first: the suite sends the first EDGE_SHARE of each list.
EDGE_INTEGERS = [str(2**63), "9" * 30, "0", str(2**31), "1e3", "-1", str(2**31 - 1), "١٢"]
EDGE_DATES = [
    "0001-01-01T00:00:00+05:00", "9999-12-31", "0001-01-01", "9999-12-31T23:59:59-05:00",
    "0001-01-02T00:00:00Z", "9999-12-30T23:59:59.999999Z", "2026-02-30", "2026-11-20T25:00Z",
]  # fmt: skip
EDGE_TEXT = ["a\x00b", "\x1f\x7f", "é\u2028", "x" * 3000, "\x01", "\n", "%00", ".."]
EDGE_BODIES = [
    ("[" * 5000 + "]" * 5000, "application/json"),
    ('{"a":' * 300 + "1" + "}" * 300, "application/json"),
    ('{"username": "a\\u0000", "row_filter": {"country": ["F\\u0000R"]}}', "application/json"),
    (b"\xff\xfe{}", "application/json"),
    ("[" * 400 + "]" * 400, "text/plain"),
    ("[1, NaN, Infinity, 1e999, " + "9" * 5000 + "]", "application/json"),
    ("{not json", "application/json"),
]
EDGE_SHARE = None if FULL else 5
# Query parameters tried per kind (integer, date, text) and operation: the table filters
# repeat one another; `make fuzz` tries them all, with DEBUG off and on.
PER_KIND = None if FULL else 1
DEBUG_MODES = [False, True] if FULL else [True]
# Plain values of path parameters that reach the code behind them.
PLAIN_PATH = {
    "name": ["transactions", "raw_transactions"], "n": ["1"], "id": ["1"],
    "product_id": ["P1"], "customer_id": ["17850"], "invoice_no": ["536365"], "line": ["1"],
    "stock_code": ["85123A"],
}  # fmt: skip


def _kind(parameter: dict) -> str:
    schema = parameter.get("schema", {})
    if schema.get("type") == "integer":
        return "integer"
    if schema.get("format") in ("date", "date-time") or parameter["name"] in ("since", "until"):
        return "date"
    return "text"


def _random_value(kind: str, rng: random.Random) -> str:
    if kind == "integer":
        return str(rng.choice([-1, 1]) * 10 ** rng.randint(9, 40))
    if kind == "date":
        zone = f"{rng.choice('+-')}{rng.randint(0, 14):02d}:00"
        return f"{rng.choice(['0001-01-01', '9999-12-31'])}T{rng.randint(0, 23):02d}:00{zone}"
    return "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(1, 8)))


def edge_values(parameter: dict, rng: random.Random) -> list[str]:
    kind = _kind(parameter)
    fixed = {"integer": EDGE_INTEGERS, "date": EDGE_DATES, "text": EDGE_TEXT}[kind]
    return fixed[:EDGE_SHARE] + [_random_value(kind, rng) for _ in range(EXAMPLES // 3)]


def edge_requests(raw_schema: dict, rng: random.Random):
    """(operation label, method, path, query, body, content type), one edge at a time."""
    for template, methods in raw_schema["paths"].items():
        for method, operation in methods.items():
            label = f"{method.upper()} {template}"
            params = operation.get("parameters", [])
            in_path = [p["name"] for p in params if p["in"] == "path"]
            for plain in itertools.product(*(PLAIN_PATH.get(n, ["x"]) for n in in_path)):
                values = dict(zip(in_path, plain, strict=True))
                for parameter in _sampled(params):
                    for value in edge_values(parameter, rng):
                        if parameter["in"] == "path":
                            path = _fill(template, {**values, parameter["name"]: value})
                            yield label, method, path, {}, None, None
                        elif parameter["in"] == "query":
                            path = _fill(template, values)
                            yield label, method, path, {parameter["name"]: value}, None, None
                if "requestBody" in operation:
                    for body, content_type in EDGE_BODIES[:EDGE_SHARE]:
                        yield label, method, _fill(template, values), {}, body, content_type


def _sampled(params: list[dict]) -> list[dict]:
    """Every path parameter; of the query parameters, PER_KIND of each kind (the first
    ones: page, page_size, since, ...), or all of them in `make fuzz`."""
    taken, kept = Counter(), []
    for parameter in params:
        key = (parameter["in"], _kind(parameter))
        if parameter["in"] == "path" or PER_KIND is None or taken[key] < PER_KIND:
            taken[key] += 1
            kept.append(parameter)
    return kept


def _fill(template: str, values: dict) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", quote(value, safe=""))
    return template


def edge_failure(response) -> str | None:
    """What is wrong with an answer to an edge request, or None."""
    content_type = response.headers.get("Content-Type", "")
    if response.status_code >= 500:
        return f"{response.status_code} {' '.join(response.text[:400].split())[:160]}"
    if response.status_code >= 400:
        if not content_type.startswith("application/json"):
            return f"{response.status_code} not JSON: {content_type}"
        body = response.json()
        if not (isinstance(body, dict) and body.get("detail") and body.get("code")):
            return f"{response.status_code} not the envelope: {response.text[:200]}"
    return None


@pytest.fixture
def edge_world(tokens, lake):
    """A version 1 of transactions and a raw file of it: edges reach the backends."""
    from datalake.catalog.sync import sync_resources

    records = [tx(i) for i in range(3)]
    pipeline_batch(*records)
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    sync_resources()
    return tokens


@pytest.mark.parametrize("debug", DEBUG_MODES)
def test_edge_values_on_every_operation(api_schema, edge_world, live_server, settings, debug):
    settings.DEBUG = debug
    session = requests.Session()
    session.headers["Authorization"] = f"Token {edge_world['granted']}"
    rng, failures = random.Random(1717), []
    for label, method, path, query, body, content_type in edge_requests(api_schema.raw_schema, rng):
        headers = {"Content-Type": content_type} if content_type else {}
        data = body.encode("utf-8") if isinstance(body, str) else body
        response = session.request(
            method, live_server.url + path, params=query, data=data, headers=headers, timeout=60
        )
        STATS.edge_operations.add(label)
        STATS.edge_requests += 1
        problem = edge_failure(response)
        if problem:
            failures.append(
                f"{method.upper()} {path[:120]} {str(query)[:80]} {body and body[:40]!r}: {problem}"
            )
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:30])
