"""The Delta Sharing protocol over HTTP (the Django test client): listings, metadata,
files by their signed URLs with Range, time travel and the change feed, each under
the recipient's grant. The real connector reads them in test_sharing_connector.py."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from datalake.sharing import snapshots
from lineage.models import RequestLog
from tests.support.factories import client_for, give, make_user
from tests.support.lake import pipeline_batch, tx
from tests.support.restrictions import ROWS, every_row, restricted
from tests.support.sharing import BASE, TABLE, bearer, lines

pytestmark = pytest.mark.django_db


def read_files(file_lines: list[dict], key: str = "file") -> list[dict]:
    """Every row of the files, fetched by their URLs with Range requests (footer first)."""
    anonymous = APIClient()
    rows = []
    for line in file_lines:
        action = line[key]
        url = action["url"].removeprefix("http://testserver")
        head = anonymous.head(url)
        assert head.status_code == 200 and int(head["Content-Length"]) == action["size"]
        size = action["size"]
        tail = anonymous.get(url, HTTP_RANGE="bytes=-8")
        assert (
            tail.status_code == 206
            and tail["Content-Range"] == f"bytes {size - 8}-{size - 1}/{size}"
        )
        data = b"".join(anonymous.get(url).streaming_content)
        assert data[-8:] == b"".join(tail.streaming_content) and len(data) == size
        rows += pq.read_table(io.BytesIO(data)).to_pylist()
    return rows


@pytest.fixture
def three_versions(lake):
    pipeline_batch(*[tx(i, country=["FR", "DE"][i % 2], user_id=f"u{i % 3}") for i in range(6)])
    pipeline_batch(tx(6, country="FR"))
    pipeline_batch(tx(2, amount=99, country="FR"))  # a correction of TX-0002


def test_listing_shows_only_what_the_recipient_reads(three_versions):
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    assert client.get(f"{BASE}/shares").json()["items"][0]["name"] == "lake"
    schemas = client.get(f"{BASE}/shares/lake/schemas").json()["items"]
    assert [s["name"] for s in schemas] == ["tables", "files"]
    tables = client.get(f"{BASE}/shares/lake/all-tables").json()["items"]
    assert [(t["schema"], t["name"]) for t in tables] == [("tables", "transactions")]
    nobody = bearer(make_user("carol"))
    assert nobody.get(f"{BASE}/shares/lake/all-tables").json()["items"] == []
    refused = nobody.get(f"{TABLE}/metadata")
    assert refused.status_code == 403
    assert refused.json()["errorCode"] == "PERMISSION_DENIED" and refused.json()["code"]
    assert nobody.post(f"{TABLE}/query", {}, format="json").status_code == 403


def test_query_gives_the_rows_api_rows_under_a_restriction(three_versions):
    eve = make_user("eve")
    restricted(eve, columns=["transaction_id", "user_id", "amount", "country"],
               row_filter={"country": ["FR"]}, masked=["user_id"])  # fmt: skip
    client = bearer(eve)
    meta = lines(client.get(f"{TABLE}/metadata"))
    schema = json.loads(meta[1]["metaData"]["schemaString"])
    assert {f["name"]: f["type"] for f in schema["fields"]} == {
        "transaction_id": "string", "user_id": "string", "country": "string",
        "amount": "decimal(16,2)",
    }  # fmt: skip
    response = client.post(f"{TABLE}/query", {}, format="json")
    assert response["delta-table-version"] == "3"
    got = read_files(lines(response)[2:])
    expected = every_row(client_for(eve), ROWS)
    assert len(got) == 4  # FR only: TX-0000, 0002, 0004, 0006
    assert as_text(got) == as_text(expected)  # masked user_id: the rows API's pseudonyms


def as_text(rows: list[dict]) -> list[dict]:
    """Rows with every value as text (Decimal in Parquet, a string in JSON), by id."""
    texts = ({k: str(v) for k, v in r.items()} for r in rows)
    return sorted(texts, key=lambda r: r["transaction_id"])


def test_time_travel_and_the_change_feed(three_versions):
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    old = client.post(f"{TABLE}/query", {"version": 1}, format="json")
    assert old["delta-table-version"] == "1"
    rows = read_files(lines(old)[2:])
    assert len(rows) == 6 and {r["transaction_id"] for r in rows} == {
        f"TX-{i:04d}" for i in range(6)
    }
    feed = client.get(f"{TABLE}/changes", {"startingVersion": 2, "endingVersion": 3})
    actions = lines(feed)[2:]
    assert [a["cdf"]["version"] for a in actions] == [2, 3]
    changes = read_files(actions, key="cdf")
    kinds = sorted((r["transaction_id"], r["_change_type"]) for r in changes)
    assert kinds == [
        ("TX-0002", "update_postimage"), ("TX-0002", "update_preimage"), ("TX-0006", "insert")
    ]  # fmt: skip
    assert client.post(f"{TABLE}/query", {"version": 9}, format="json").status_code == 404
    for bad in ("²", "-1", "1" * 11, "1.0", " 1"):
        answer = client.get(f"{TABLE}/changes", {"startingVersion": bad})
        assert answer.status_code == 400, (bad, answer.status_code)
    bad = client.post(f"{TABLE}/query", {"version": 1, "oops": 1}, format="json")
    assert bad.status_code == 400 and bad.json()["errorCode"] == "INVALID_PARAMETER_VALUE"


def test_a_file_url_is_bound_to_its_signature_and_grant(three_versions):
    bob = make_user("bob")
    grant = give(bob, "transactions")
    url = lines(bearer(bob).post(f"{TABLE}/query", {}, format="json"))[2]["file"]["url"]
    path = url.removeprefix("http://testserver")
    anonymous = APIClient()
    assert anonymous.get(path).status_code == 200
    token = path.rsplit("/", 1)[1]
    tampered = path[: -len(token)] + token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert anonymous.get(tampered).status_code == 403
    assert anonymous.get(path, HTTP_RANGE="bytes=999999999-").status_code == 416
    logged = RequestLog.objects.filter(path__startswith=BASE).order_by("id")
    assert [(e.username, e.resource, e.status_code) for e in logged] == [
        ("bob", "transactions", 200),  # the query
        ("bob", "transactions", 200),  # the file: both in the table's access log
        ("", "", 403),  # the tampered URL names nobody
        ("bob", "transactions", 416),
    ]
    assert all(token not in entry.path for entry in RequestLog.objects.all())
    assert logged[1].path.startswith(f"{BASE}/files/<signed:")  # a digest, not the credential
    grant.delete()
    refused = anonymous.get(path)
    assert refused.status_code == 403 and b"PAR1" not in refused.content
    last = RequestLog.objects.order_by("-id").first()
    assert (last.username, last.resource, last.status_code) == ("bob", "transactions", 403)


def test_a_raw_folder_is_shared_like_its_rows_endpoint(stored):
    eve = make_user("eve")
    restricted(eve, "raw_transactions", columns=["transaction_id", "country", "user_id"],
               row_filter={"country": ["DE"]}, masked=["user_id"])  # fmt: skip
    client = bearer(eve)
    tables = client.get(f"{BASE}/shares/lake/schemas/files/tables").json()["items"]
    assert [t["name"] for t in tables] == ["raw_transactions"]
    raw = f"{BASE}/shares/lake/schemas/files/tables/raw_transactions"
    response = client.post(f"{raw}/query", {}, format="json")
    assert response.status_code == 200, response.content[:300]
    got = read_files(lines(response)[2:])
    expected = every_row(client_for(eve), "/api/v1/resources/raw_transactions/rows/")
    assert len(got) == 10 and as_text(got) == as_text(expected)
    assert client.post(f"{raw}/query", {"version": 1}, format="json").status_code == 409
    again = client.post(f"{raw}/query", {}, format="json")
    assert [f["file"]["id"] for f in lines(again)[2:]] == [
        f["file"]["id"] for f in lines(response)[2:]
    ]


def test_a_limit_hint_lists_only_the_files_that_hold_it(three_versions, settings):
    settings.SHARING_FILE_ROWS = 2  # 7 current rows: 4 files
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    every = lines(client.post(f"{TABLE}/query", {}, format="json"))[2:]
    assert len(every) == 4
    some = lines(client.post(f"{TABLE}/query", {"limitHint": 3}, format="json"))[2:]
    assert len(some) == 2 and len(read_files(some)) == 4


def test_files_no_url_can_reach_are_dropped_and_written_again(three_versions, settings):
    from datalake.sharing.tasks import drop_unreachable

    bob, eve = make_user("bob"), make_user("eve")
    give(bob, "transactions")
    restricted(eve, row_filter={"country": ["DE"]})
    for client, body in ((bearer(bob), {}), (bearer(eve), {}), (bearer(bob), {"version": 1})):
        assert client.post(f"{TABLE}/query", body, format="json").status_code == 200
    root = snapshots.root() / "transactions"
    written = sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.is_dir())
    assert len(written) == 3 and "v3/all" in written and "v1/all" in written
    assert drop_unreachable() == []  # every URL still valid
    settings.SHARING_URL_LIFETIME_SECONDS = -120  # as if they had all expired
    dropped = drop_unreachable()
    assert sorted(dropped) == sorted(f"transactions/{w}" for w in written if w != "v3/all")
    assert [str(p.relative_to(root)) for p in root.glob("*/*") if p.is_dir()] == ["v3/all"]
    settings.SHARING_URL_LIFETIME_SECONDS = 3600
    again = bearer(eve).post(f"{TABLE}/query", {}, format="json")
    assert {r["country"] for r in read_files(lines(again)[2:])} == {"DE"}


def test_timestamps_name_versions(three_versions):
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    now = client.post(f"{TABLE}/query", {"timestamp": "2999-01-01T00:00:00Z"}, format="json")
    assert now["delta-table-version"] == "3"
    early = client.post(f"{TABLE}/query", {"timestamp": "2000-01-01T00:00:00Z"}, format="json")
    assert early.status_code == 400 and early.json()["code"] == "timestamp_too_early"
    first = client.get(f"{TABLE}/version", {"startingTimestamp": "2000-01-01T00:00:00Z"})
    assert first.status_code == 200 and first["delta-table-version"] == "1"
    assert client.get(f"{TABLE}/version")["delta-table-version"] == "3"
    edges = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2026-12-01T00:00:00\x00")
    for bad in ("yesterday", "2026-02-30T00:00:00Z", "9" * 70, "2026-13-01", *edges):
        answer = client.get(f"{TABLE}/version", {"startingTimestamp": bad})
        assert answer.status_code == 400, (bad, answer.status_code)


def test_a_file_url_dies_with_the_token_that_asked_for_it(three_versions):
    from accounts.models import ApiToken

    bob = make_user("bob")
    give(bob, "transactions")
    url = lines(bearer(bob).post(f"{TABLE}/query", {}, format="json"))[2]["file"]["url"]
    path = url.removeprefix("http://testserver")
    assert APIClient().get(path).status_code == 200
    ApiToken.objects.filter(user=bob).delete()  # revoked: the URLs it got go too
    refused = APIClient().get(path)
    assert refused.status_code == 403 and refused.json()["code"] == "url_invalid"


def test_past_versions_on_disk_are_bounded(three_versions, settings):
    settings.SHARING_MAX_PAST_VERSIONS = 1
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    assert client.post(f"{TABLE}/query", {"version": 1}, format="json").status_code == 200
    again = client.post(f"{TABLE}/query", {"version": 1}, format="json")
    assert again.status_code == 200  # the same past version: its files are there
    assert client.post(f"{TABLE}/query", {}, format="json").status_code == 200  # now: always
    refused = client.post(f"{TABLE}/query", {"version": 2}, format="json")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_past_versions"
    assert refused.json()["errorCode"] == "TOO_MANY_REQUESTS"
    settings.SHARING_URL_LIFETIME_SECONDS = -1  # version 1's URLs have all expired
    assert client.post(f"{TABLE}/query", {"version": 2}, format="json").status_code == 200


def test_strings_that_look_like_nulls_stay_strings(lake):
    pipeline_batch(tx(1, country="NA", product_category="null"), tx(2, product_category="nan"))
    eve = make_user("eve")
    restricted(eve, row_filter={"country": ["NA"]}, masked=["product_category"])
    bob = make_user("bob")
    give(bob, "transactions")
    got = read_files(lines(bearer(bob).post(f"{TABLE}/query", {}, format="json"))[2:])
    assert sorted((r["country"], r["product_category"]) for r in got) == [
        ("FR", "nan"), ("NA", "null")
    ]  # fmt: skip
    mine = read_files(lines(bearer(eve).post(f"{TABLE}/query", {}, format="json"))[2:])
    rows_api = every_row(client_for(eve), ROWS)  # the NA row, its category masked
    pick = [{k: r[k] for k in ("transaction_id", "country", "product_category")} for r in mine]
    assert pick == [{k: r[k] for k in pick[0]} for r in rows_api] and len(pick) == 1
    assert pick[0]["product_category"].startswith("anon_")


def test_the_same_restriction_in_another_order_shares_the_files(three_versions):
    eve, ann = make_user("eve"), make_user("ann")
    restricted(eve, row_filter={"country": ["FR", "DE"]}, masked=["user_id"])
    restricted(ann, row_filter={"country": ["DE", "FR", "DE"]}, masked=["user_id"])
    ids = [
        [f["file"]["id"] for f in lines(bearer(u).post(f"{TABLE}/query", {}, format="json"))[2:]]
        for u in (eve, ann)
    ]
    assert ids[0] == ids[1]


def test_a_concealed_key_orders_rows_across_files_too(lake, settings):
    settings.SHARING_FILE_ROWS = 5
    pipeline_batch(*[tx(i) for i in range(40)])
    eve = make_user("eve")
    restricted(eve, masked=["transaction_id"])
    files = lines(bearer(eve).post(f"{TABLE}/query", {}, format="json"))[2:]
    assert len(files) == 8
    names = [[r["transaction_id"] for r in read_files([f])] for f in files]
    flat = [n for part in names for n in part]
    assert flat == sorted(flat) and len(set(flat)) == 40  # one order over every file


def test_the_change_feed_hides_updates_of_hidden_columns_only(lake):
    pipeline_batch(tx(1), tx(2))
    pipeline_batch(tx(1, amount=77))  # version 2: only the amount changes
    pipeline_batch(tx(2, country="DE"))  # version 3: a visible change
    eve = make_user("eve")
    restricted(eve, columns=["transaction_id", "country"])
    feed = bearer(eve).get(f"{TABLE}/changes", {"startingVersion": 2, "endingVersion": 3})
    changes = read_files(lines(feed)[2:], key="cdf")
    assert sorted((r["transaction_id"], r["_change_type"]) for r in changes) == [
        ("TX-0002", "update_postimage"), ("TX-0002", "update_preimage")
    ]  # fmt: skip


def test_the_change_feed_spans_a_bounded_number_of_versions(three_versions, settings):
    settings.SHARING_MAX_CHANGE_VERSIONS = 2
    settings.SHARING_MAX_PAST_VERSIONS = 1
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    refused = client.get(f"{TABLE}/changes", {"startingVersion": 1})
    assert refused.status_code == 400 and refused.json()["code"] == "too_many_versions"
    assert "endingVersion=2" in refused.json()["detail"]
    assert client.get(f"{TABLE}/changes", {"startingVersion": 2}).status_code == 200
    # the change feed's files are not past versions: time travel is still open
    assert client.post(f"{TABLE}/query", {"version": 1}, format="json").status_code == 200


def test_logs_keep_a_digest_of_a_signed_url_never_the_token(three_versions, caplog):
    from datalake.platform.logging import JsonFormatter, TextFormatter

    bob = make_user("bob")
    give(bob, "transactions")
    url = lines(bearer(bob).post(f"{TABLE}/query", {}, format="json"))[2]["file"]["url"]
    token = url.rsplit("/", 1)[1]
    with caplog.at_level("WARNING", logger="django.request"):
        assert APIClient().get(url.removesuffix(token) + token[:-3] + "xyz").status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    for formatter in (JsonFormatter(), TextFormatter()):
        for record in records:
            line = formatter.format(record)
            assert token[:-3] not in line and "/delta-sharing/files/<signed:" in line
