"""Driving the Delta Sharing protocol with the Django test client: a recipient's client
(`Authorization: Bearer`, as the connectors send), NDJSON lines, and the rows of the
files a query or the change feed lists, fetched by their signed URLs."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
from rest_framework.test import APIClient

from tests.support.factories import client_for

BASE = "/api/v1/delta-sharing"
TABLE = f"{BASE}/shares/lake/schemas/tables/tables/transactions"


def bearer(user) -> APIClient:
    """A client that authenticates as the connectors do: `Authorization: Bearer`."""
    token_client = client_for(user)
    key = token_client._credentials["HTTP_AUTHORIZATION"].split()[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def lines(response) -> list[dict]:
    """The NDJSON lines of a protocol answer."""
    assert response["Content-Type"].startswith("application/x-ndjson"), response.content[:300]
    return [json.loads(line) for line in response.content.decode().splitlines()]


def file_path(action: dict) -> str:
    """The path of a `file`/`cdf` action's signed URL (the test client's host dropped)."""
    return action["url"].removeprefix("http://testserver")


def fetch(path: str, **headers) -> tuple[int, bytes]:
    """(status, body) of a signed file URL fetched with no Authorization header."""
    response = APIClient().get(path, **headers)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body


def rows_of(file_lines: list[dict], key: str = "file") -> list[dict]:
    """Every row of the files a query (`file`) or the change feed (`cdf`) listed."""
    rows = []
    for line in file_lines:
        status, body = fetch(file_path(line[key]))
        assert status == 200, (status, body[:300])
        rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows
