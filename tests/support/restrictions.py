"""Restricted `read` grants and the transactions they are tried on.

`stored` is a fixture, for every test (tests/conftest.py loads this module as a plugin;
a test module's own `stored` fixture takes precedence in that module).
"""

from __future__ import annotations

import pytest

from accounts.models import Grant
from datalake.catalog.sync import sync_resources
from tests.support.factories import give
from tests.support.lake import pipeline_batch, tx, write_lines

ROWS = "/api/v1/resources/transactions/rows/"
COUNTRIES = ["FR", "DE", "BE"]


@pytest.fixture
def stored(lake):
    """30 transactions (10 per country) in the table, and the same as a landed file."""
    records = [tx(i, country=COUNTRIES[i % 3], user_id=f"user-{i % 4}") for i in range(30)]
    pipeline_batch(*records)
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    sync_resources()
    return records


def restricted(user, resource="transactions", **restriction) -> Grant:
    """A `read` grant with a restriction (columns, row_filter, masked)."""
    return give(user, resource, "read", **restriction)


def every_row(client, url, **params) -> list[dict]:
    """Every row of a rows endpoint, following `next_cursor`."""
    rows, params = [], dict(params)
    while True:
        body = client.get(url, params).json()
        rows += body["results"]
        if not body["next_cursor"]:
            return rows
        params["cursor"] = body["next_cursor"]


def cursor_for(user, resource: str, values: list, query: str = "") -> str:
    """A `next_cursor` sealed as the server seals it for `user`, after the row whose
    ordering values are `values`, walking the resource's current data."""
    from django.http import QueryDict

    from accounts.access import Access
    from datalake.catalog.selectors import resource_entry
    from datalake.query.grammar import parse_row_query
    from datalake.query.snapshots import current

    entry = resource_entry(resource)
    restriction = Access(user).restriction(resource)
    parsed = parse_row_query(entry, QueryDict(query), restriction, owner=user.pk)
    return parsed.encode_cursor(values, current(entry).sealed())
