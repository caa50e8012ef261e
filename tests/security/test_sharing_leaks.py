"""What the Delta Sharing protocol refuses (issue 19): a recipient without `read`, file
URLs tampered with, expired, or naming another restriction's file, a revoked or changed
grant; and what a file URL honours (`Range`, `HEAD`: the connector reads a Parquet
footer from the end). The Django test client speaks the protocol (no connector is
needed for a refusal); the file URLs are fetched through gunicorn too, whose
`sendfile(2)` path serves ranged answers differently from the test client's.

A URL "from the past" or "for another restriction" is signed here with the server's
own key (the test runs with the same settings): what a URL that was altered, or that
aged, would look like if its signature held.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core import signing
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Grant
from datalake.catalog.sync import sync_resources
from datalake.sharing.links import SALT
from lineage import writer as request_log_writer
from lineage.models import RequestLog
from tests.support.factories import client_for, give, make_user
from tests.support.lake import pipeline_batch, tx
from tests.support.sharing import BASE, TABLE, bearer

COUNTRIES = ["FR", "DE", "BE"]
PARQUET = b"PAR1"
MARK = b"TX-"  # in every transaction id: no refusal may carry one

pytestmark = pytest.mark.django_db


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def ndjson(response) -> list[dict]:
    return [json.loads(line) for line in body_of(response).splitlines() if line.strip()]


def file_paths(client, table: str = TABLE, **body) -> list[str]:
    """The paths of the signed file URLs a query answers."""
    response = client.post(f"{table}/query", body, format="json")
    assert response.status_code == 200, body_of(response)[:500]
    paths = [urlsplit(line["file"]["url"]).path for line in ndjson(response) if "file" in line]
    assert paths
    return paths


def token_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def with_token(path: str, token: str) -> str:
    return path.rsplit("/", 1)[0] + "/" + token


class _AgedSigner(signing.TimestampSigner):
    def __init__(self, seconds_ago: float, **kwargs):
        super().__init__(**kwargs)
        self.seconds_ago = seconds_ago

    def timestamp(self):
        return signing.b62_encode(int(time.time() - self.seconds_ago))


def resigned(token: str, *, seconds_ago: float = 0, **claim) -> str:
    """`token`'s claim (with `claim`'s changes) signed with the server's key,
    `seconds_ago` seconds ago."""
    data = {**signing.loads(token, salt=SALT), **claim}
    return _AgedSigner(seconds_ago, salt=SALT).sign_object(data, compress=True)


def refused(response, status: int = 403) -> dict:
    """An error answer in both envelopes (the portal's and the protocol's), nothing of
    the data in it."""
    content = body_of(response)
    assert response.status_code == status, (response.status_code, content[:500])
    assert PARQUET not in content and MARK not in content
    body = json.loads(content)
    assert {"detail", "code"} <= set(body), body
    return body


def protocol_refusal(response, status: int = 403) -> dict:
    body = refused(response, status)
    assert body["errorCode"] == "PERMISSION_DENIED" and body["message"], body
    return body


@pytest.fixture
def data(lake):
    """12 transactions, 4 per country, in two versions (TX-0003 corrected in the second)."""
    pipeline_batch(*(tx(i, country=COUNTRIES[i % 3]) for i in range(9)))
    pipeline_batch(tx(3, amount=500), *(tx(i, country=COUNTRIES[i % 3]) for i in range(9, 12)))


@pytest.fixture
def fr(db):
    """Reads the FR rows of transactions, user_id masked."""
    user = make_user("fr")
    give(user, "transactions", row_filter={"country": ["FR"]}, masked=["user_id"])
    return user


@pytest.fixture
def debe(db):
    """Reads the DE and BE rows, three columns, transaction_id masked."""
    user = make_user("debe")
    give(user, "transactions", row_filter={"country": ["DE", "BE"]},
         columns=["transaction_id", "country", "amount"], masked=["transaction_id"])  # fmt: skip
    return user


def test_a_recipient_without_read_gets_403_and_sees_no_table(data):
    other = make_user("other")
    give(other, "exchange_rates")
    give(other, "transactions", "write")  # write is not read
    client = bearer(other)
    for response in (
        client.get(f"{TABLE}/metadata"),
        client.post(f"{TABLE}/query", {}, format="json"),
        client.post(f"{TABLE}/query", {"version": 1}, format="json"),
        client.get(f"{TABLE}/changes", {"startingVersion": 1, "endingVersion": 2}),
        client.get(f"{TABLE}/version"),
    ):
        protocol_refusal(response)
    listed = client.get(f"{BASE}/shares/lake/all-tables").json()["items"]
    assert [(t["schema"], t["name"]) for t in listed] == [("tables", "exchange_rates")]
    in_schema = client.get(f"{BASE}/shares/lake/schemas/tables/tables").json()["items"]
    assert [t["name"] for t in in_schema] == ["exchange_rates"]
    # and without a token at all
    assert APIClient().get(f"{TABLE}/metadata").status_code == 401
    # each refusal is in the request log, in the table's access log
    assert request_log_writer.flush()
    logged = RequestLog.objects.filter(username="other", resource="transactions")
    assert sorted(logged.values_list("method", "status_code")) == sorted(
        [("GET", 403)] * 3 + [("POST", 403)] * 2
    )


def test_a_tampered_file_url_gives_nothing(data, fr):
    (path,) = file_paths(bearer(fr))
    anon = APIClient()
    assert body_of(anon.get(path)).startswith(PARQUET)
    token = token_of(path)
    payload, stamp, signature = token.rsplit(":", 2)
    middle = len(payload) // 2
    flipped = payload[:middle] + ("A" if payload[middle] != "A" else "B") + payload[middle + 1 :]
    for bad in (
        f"{flipped}:{stamp}:{signature}",  # another claim under the same signature
        f"{payload}:{stamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{payload}:{signature}",  # no time
        token[:-1],
        token + "A",
        f"{payload}:{stamp}:",
    ):
        body = refused(anon.get(with_token(path, bad)))
        assert body["code"] == "url_invalid", (bad, body)


def test_an_expired_file_url_gives_nothing(data, fr):
    (path,) = file_paths(bearer(fr))
    token, anon = token_of(path), APIClient()
    lifetime = settings.SHARING_URL_LIFETIME_SECONDS
    fresh = anon.get(with_token(path, resigned(token, seconds_ago=lifetime - 60)))
    assert fresh.status_code == 200 and body_of(fresh).startswith(PARQUET)  # still in time
    aged = with_token(path, resigned(token, seconds_ago=lifetime + 5))
    assert refused(anon.get(aged))["code"] == "url_expired"
    assert anon.head(aged).status_code == 403


def test_a_file_url_cannot_be_turned_into_another_restrictions_file(data, fr, debe):
    full = make_user("full")
    give(full, "transactions")
    anon = APIClient()
    (fr_path,) = file_paths(bearer(fr))
    (debe_path,) = file_paths(bearer(debe))
    (full_path,) = file_paths(bearer(full))
    fr_token, debe_token = token_of(fr_path), token_of(debe_path)
    fr_claim = signing.loads(fr_token, salt=SALT)
    debe_claim = signing.loads(debe_token, salt=SALT)
    full_claim = signing.loads(token_of(full_path), salt=SALT)
    assert len({fr_claim["p"], debe_claim["p"], full_claim["p"]}) == 3  # a file each
    # each URL gives its own restriction's rows only
    fr_rows = pq.read_table(io.BytesIO(body_of(anon.get(fr_path)))).to_pylist()
    assert {r["country"] for r in fr_rows} == {"FR"} and len(fr_rows) == 4
    assert all(r["user_id"].startswith("anon_") for r in fr_rows)
    debe_rows = pq.read_table(io.BytesIO(body_of(anon.get(debe_path)))).to_pylist()
    assert set(debe_rows[0]) == {"transaction_id", "country", "amount"}
    assert {r["country"] for r in debe_rows} == {"DE", "BE"}
    # fr's URL naming debe's or the unrestricted file, validly signed: refused, since
    # fr does not read the table with that restriction; nor does debe with fr's
    for user, other_path in (
        (fr, debe_claim["p"]),
        (fr, full_claim["p"]),
        (debe, fr_claim["p"]),
        (debe, full_claim["p"]),
    ):
        forged = resigned(fr_token, u=user.pk, p=other_path)
        assert refused(anon.get(with_token(fr_path, forged)))["code"] == "url_invalid"
    # fr's signature over debe's claim (and the other way round): refused
    for payload_of, signature_of in ((debe_token, fr_token), (fr_token, debe_token)):
        payload = payload_of.rsplit(":", 2)[0]
        rest = signature_of.split(":", 1)[1]
        refused(anon.get(with_token(fr_path, f"{payload}:{rest}")))
    # a path leaving the sharing folder, validly signed: refused before any file is read
    for escape in ("transactions/../../../etc/passwd", "../x/y/z", "transactions/v1/all"):
        forged = resigned(token_of(full_path), p=escape)
        assert anon.get(with_token(full_path, forged)).status_code in (403, 404)


def test_a_changed_or_revoked_grant_stops_the_next_call_and_the_signed_urls(data, fr, staff):
    client, anon = bearer(fr), APIClient()
    (path,) = file_paths(client)
    assert client.get(f"{TABLE}/metadata").status_code == 200
    grant = Grant.objects.get(user=fr, resource__name="transactions")
    # wider rows: the files signed for the narrower restriction are not served any more
    Grant.objects.filter(pk=grant.pk).update(row_filter={"country": ["FR", "DE"]})
    assert refused(anon.get(path))["code"] == "url_invalid"
    (wider,) = file_paths(client)
    assert anon.get(wider).status_code == 200
    assert client_for(staff).delete(f"/api/v1/grants/{grant.pk}/").status_code == 204
    protocol_refusal(client.get(f"{TABLE}/metadata"))
    protocol_refusal(client.post(f"{TABLE}/query", {}, format="json"))
    protocol_refusal(client.get(f"{TABLE}/changes", {"startingVersion": 1}))
    assert client.get(f"{BASE}/shares/lake/all-tables").json()["items"] == []
    refused(anon.get(wider))
    assert anon.head(wider).status_code == 403


def check_ranges(fetch, path: str) -> None:
    """`fetch(method, path, range_header)` -> (status, headers, body): the whole file,
    HEAD, ranges of every form, and the unsatisfiable ones."""
    status, headers, whole = fetch("GET", path, None)
    size = len(whole)
    assert status == 200 and int(headers["content-length"]) == size
    assert whole[:4] == whole[-4:] == PARQUET
    status, headers, body = fetch("HEAD", path, None)
    assert status == 200 and int(headers["content-length"]) == size and body == b""
    assert headers["accept-ranges"] == "bytes"
    for header, start, end in (
        ("bytes=0-3", 0, 3),
        (f"bytes={size - 8}-", size - 8, size - 1),
        ("bytes=-8", size - 8, size - 1),
        (f"bytes=-{size + 50}", 0, size - 1),
        (f"bytes=10-{size + 100}", 10, size - 1),
        (f"bytes={size - 1}-{size - 1}", size - 1, size - 1),
    ):
        status, headers, body = fetch("GET", path, header)
        assert status == 206, (header, status)
        assert headers["content-range"] == f"bytes {start}-{end}/{size}", header
        assert body == whole[start : end + 1], header
        assert int(headers["content-length"]) == end - start + 1, header
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        status, headers, body = fetch("GET", path, header)
        assert status == 416, (header, status)
        assert headers["content-range"] == f"bytes */{size}" and PARQUET not in body


def test_range_and_head_on_a_file_url(data, fr):
    (path,) = file_paths(bearer(fr))
    anon = APIClient()

    def fetch(method, target, range_header):
        extra = {"HTTP_RANGE": range_header} if range_header else {}
        response = anon.head(target, **extra) if method == "HEAD" else anon.get(target, **extra)
        headers = {k.lower(): v for k, v in response.items()}
        return response.status_code, headers, body_of(response)

    check_ranges(fetch, path)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_file_urls_through_gunicorn(data, fr, sharing_server):
    """gunicorn sends a ranged answer with sendfile(2) from the window's position: the
    bytes are checked over real HTTP; and a refusal there gives nothing either."""
    _token, key = ApiToken.issue(fr)
    with sharing_server.http(key) as http:
        answer = http.post(f"{TABLE}/query", json={})
        assert answer.status_code == 200, answer.text[:500]
        (url,) = [json.loads(x)["file"]["url"] for x in answer.text.splitlines() if '"file"' in x]
    assert url.startswith(sharing_server.url + BASE + "/files/")
    path = urlsplit(url).path
    with httpx.Client(base_url=sharing_server.url, timeout=30) as anon:  # no Authorization

        def fetch(method, target, range_header):
            headers = {"Range": range_header} if range_header else {}
            response = anon.request(method, target, headers=headers)
            return response.status_code, response.headers, response.content

        check_ranges(fetch, path)
        token = token_of(path)
        aged = anon.get(with_token(path, resigned(token, seconds_ago=10**6)))
        assert aged.status_code == 403 and PARQUET not in aged.content
        assert aged.json()["code"] == "url_expired"
        tampered = anon.get(with_token(path, token[:-1]))
        assert tampered.status_code == 403 and PARQUET not in tampered.content


def test_listing_pages_hold_exactly_the_readable_tables(data, lake):
    (lake / "landing/transactions").mkdir(parents=True)
    (lake / "landing/transactions/2026-11-20.jsonl").write_text(json.dumps(tx(1)) + "\n")
    sync_resources()
    reader = make_user("reader")
    for name in ("sales", "transactions", "raw_transactions"):
        give(reader, name)
    give(reader, "exchange_rates", "write")  # not read: never listed
    client = bearer(reader)
    for path, want in (
        (f"{BASE}/shares/lake/all-tables", ["raw_transactions", "sales", "transactions"]),
        (f"{BASE}/shares/lake/schemas/tables/tables", ["sales", "transactions"]),
        (f"{BASE}/shares/lake/schemas/files/tables", ["raw_transactions"]),
    ):
        names, token = [], None
        while True:
            params = {"maxResults": 1, **({"pageToken": token} if token else {})}
            body = client.get(path, params).json()
            assert len(body["items"]) <= 1, body
            names += [t["name"] for t in body["items"]]
            token = body.get("nextPageToken")
            if not token:
                break
        assert names == want, path
    for params in ({"maxResults": 0}, {"maxResults": "x"}, {"pageToken": "../x"}):
        refused(client.get(f"{BASE}/shares/lake/all-tables", params), 400)


def test_an_expired_or_unknown_token_is_401_in_both_envelopes(data):
    reader = make_user("reader")
    give(reader, "transactions")
    _token, key = ApiToken.issue(reader, expires_at=timezone.now() - dt.timedelta(seconds=1))
    for header in (f"Bearer {key}", "Bearer 0123456789abcdef", f"Token {key}"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        for response in (
            client.get(f"{TABLE}/metadata"),
            client.post(f"{TABLE}/query", {}, format="json"),
            client.get(f"{BASE}/shares/lake/all-tables"),
        ):
            body = refused(response, 401)
            assert body["errorCode"] == "UNAUTHENTICATED", (header, body)
