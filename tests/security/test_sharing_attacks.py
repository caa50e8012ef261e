"""Attacks on the Delta Sharing endpoints (issue 19) by a recipient holding a token: no
grant, a restricted grant (columns, row filter, masks), several grants, staff. Each
route, its path segments, parameters, bodies and methods; the signed file URLs
(tampered, expired, replayed after a grant changed, signed for another path); the
restriction semantics against the rows API; the request log of every call.

Driven with the Django test client (tests/support/sharing.py), as
tests/datalake/test_sharing_protocol.py drives the protocol itself."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from datalake.models import Resource
from datalake.models.lake import Sale
from datalake.sharing import links
from lineage import writer as request_log_writer
from lineage.models import RequestLog
from tests.support.factories import client_for, give, make_user
from tests.support.lake import pipeline_batch, tx
from tests.support.restrictions import ROWS, every_row, restricted
from tests.support.sharing import BASE, TABLE, bearer, fetch, file_path, lines, rows_of

pytestmark = pytest.mark.django_db

RAW = f"{BASE}/shares/lake/schemas/files/tables/raw_transactions"
TABLE_ROUTES = ("metadata", "version", "changes?startingVersion=1")


@pytest.fixture
def three_versions(lake):
    """Version 1: TX-0000..5 (FR, DE alternately); 2: TX-0006; 3: TX-0001 moves DE -> FR."""
    pipeline_batch(*[tx(i, country=["FR", "DE"][i % 2], user_id=f"u{i % 3}") for i in range(6)])
    pipeline_batch(tx(6, country="FR"))
    pipeline_batch(tx(1, amount=99, country="FR"))


def as_text(rows: list[dict]) -> list[dict]:
    """Rows with every value as the rows API's JSON text (Decimal, datetime), sorted."""

    def text(value) -> str:
        if isinstance(value, dt.datetime):
            return value.isoformat().replace("+00:00", "Z")
        return str(value)

    texts = [{k: text(v) for k, v in row.items()} for row in rows]
    return sorted(texts, key=lambda r: sorted(r.items()))


def query(client, body=None, url=TABLE):
    response = client.post(f"{url}/query", body or {}, format="json")
    assert response.status_code == 200, response.content[:300]
    return lines(response)[2:]


def first_file(client, body=None, url=TABLE) -> str:
    return file_path(query(client, body, url)[0]["file"])


# --- who may call what -----------------------------------------------------------------


def test_no_read_grant_no_table_on_any_route(three_versions):
    """A recipient without `read` (none, or only another privilege, or an expired one)
    lists nothing and gets a 403 naming the table on every table route."""
    carol = make_user("carol")
    give(carol, "transactions", "write")
    expired = make_user("dave")
    give(expired, "transactions", expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    for user in (carol, expired):
        client = bearer(user)
        assert client.get(f"{BASE}/shares/lake/all-tables").json()["items"] == []
        assert client.get(f"{BASE}/shares/lake/schemas/tables/tables").json()["items"] == []
        for route in TABLE_ROUTES:
            answer = client.get(f"{TABLE}/{route}")
            assert answer.status_code == 403, (route, answer.status_code)
            assert answer.json()["errorCode"] == "PERMISSION_DENIED"
        refused = client.post(f"{TABLE}/query", {}, format="json")
        assert refused.status_code == 403 and b"file" not in refused.content
    assert APIClient().get(f"{BASE}/shares").status_code == 401


@pytest.mark.parametrize(
    "name",
    ["\x00", "\x1b[31m", "a" * 5000, "transactions%0A", "%00", "trans actions", "é", "..", "a.b.c",
     "transactions%2F..", "raw_transactions", "TRANSACTIONS", "transactions "],
)  # fmt: skip
def test_odd_path_segments_are_4xx_for_a_reader_and_for_staff(three_versions, staff, name):
    bob = make_user("bob")
    give(bob, "transactions")
    for client in (bearer(bob), bearer(staff)):
        for route in TABLE_ROUTES:
            answer = client.get(f"{BASE}/shares/lake/schemas/tables/tables/{name}/{route}")
            assert 400 <= answer.status_code < 500, (route, answer.status_code)
        answer = client.post(f"{BASE}/shares/lake/schemas/tables/tables/{name}/query")
        assert 400 <= answer.status_code < 500, answer.status_code
        for url in (
            f"{BASE}/shares/{name}",
            f"{BASE}/shares/{name}/schemas",
            f"{BASE}/shares/{name}/all-tables",
            f"{BASE}/shares/lake/schemas/{name}/tables",
            f"{BASE}/shares/lake/schemas/{name}/tables/transactions/metadata",
            f"{BASE}/shares/{name}/schemas/tables/tables/transactions/metadata",
            f"{BASE}/files/{name}",
        ):
            answer = client.get(url)
            assert 400 <= answer.status_code < 500, (url, answer.status_code)


def test_a_table_of_the_other_schema_is_not_there(stored):
    bob = make_user("bob")
    give(bob, "transactions")
    give(bob, "raw_transactions")
    client = bearer(bob)
    wrong = f"{BASE}/shares/lake/schemas/files/tables/transactions/metadata"
    assert client.get(wrong).status_code == 404
    as_table = f"{BASE}/shares/lake/schemas/tables/tables/raw_transactions/metadata"
    assert client.get(as_table).status_code == 404
    assert client.get(f"{RAW}/changes?startingVersion=1").status_code == 409
    assert (
        client.post(f"{RAW}/query", {"timestamp": "2026-01-01"}, format="json").status_code == 409
    )


def test_every_method_on_every_route(three_versions):
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    routes = {
        "/shares": "get", "/shares/lake": "get", "/shares/lake/schemas": "get",
        "/shares/lake/schemas/tables/tables": "get", "/shares/lake/all-tables": "get",
        "/shares/lake/schemas/tables/tables/transactions/version": "get",
        "/shares/lake/schemas/tables/tables/transactions/metadata": "get",
        "/shares/lake/schemas/tables/tables/transactions/query": "post",
        "/shares/lake/schemas/tables/tables/transactions/changes": "get",
        "/profile/": "get",
    }  # fmt: skip
    for route, allowed in routes.items():
        for method in ("put", "patch", "delete", "post", "get"):
            if method != allowed:
                answer = getattr(client, method)(BASE + route)
                assert answer.status_code == 405, (route, method, answer.status_code)
        assert client.options(BASE + route).status_code == 200
    path = first_file(client)
    anonymous = APIClient()
    for method in ("put", "patch", "delete", "post"):
        assert getattr(anonymous, method)(path).status_code == 405
    assert b"PAR1" not in anonymous.options(path).content


def test_parameters_and_bodies_at_their_limits_are_4xx(three_versions):
    bob = make_user("bob")
    give(bob, "transactions")
    client = bearer(bob)
    listing = f"{BASE}/shares/lake/all-tables"
    for params in ({"maxResults": "0"}, {"maxResults": "1001"}, {"maxResults": "-1"},
                   {"maxResults": "1e2"}, {"maxResults": "9" * 5000}, {"pageToken": "a" * 101},
                   {"pageToken": "\x00"}, {"pageToken": "../x"}):  # fmt: skip
        assert client.get(listing, params).status_code == 400, params
    for params in ({"startingVersion": "0"}, {"startingVersion": "4"},
                   {"startingVersion": "9999999999"}, {"startingVersion": "99999999999"},
                   {"startingVersion": "1", "endingVersion": "9999999999"},
                   {"startingVersion": "3", "endingVersion": "1"}, {"endingVersion": "2"},
                   {"startingTimestamp": "2999-01-01"},
                   {"startingVersion": "1", "startingTimestamp": "2000-01-01"},
                   {"startingTimestamp": "2000-01-01", "endingTimestamp": "2000-01-02"},
                   {"startingVersion": "1", "endingTimestamp": "0001-01-02"}):  # fmt: skip
        answer = client.get(f"{TABLE}/changes", params)
        assert answer.status_code == 400, (params, answer.status_code)
    for body in ({"version": 2**31}, {"version": True}, {"version": 1.5}, {"version": None},
                 {"timestamp": 5}, {"timestamp": "2026-01-01", "version": 1},
                 {"limitHint": -1}, {"limitHint": 2**64}, {"predicateHints": ["x"] * 101},
                 {"predicateHints": [{"a": 1}]}, {"jsonPredicateHints": {"op": "x"}},
                 {"unknown": 1}, [], "x", [{"version": 1}]):  # fmt: skip
        answer = client.post(f"{TABLE}/query", body, format="json")
        assert answer.status_code == 400, (body, answer.status_code)
    assert client.post(f"{TABLE}/query", {"version": 0}, format="json").status_code == 404
    assert client.post(f"{TABLE}/query", "{", content_type="application/json").status_code == 400
    deep = '{"predicateHints": ' + "[" * 5000 + "]" * 5000 + "}"
    assert client.post(f"{TABLE}/query", deep, content_type="application/json").status_code == 400
    huge = {"predicateHints": ["a = 1"] * 200_000}
    assert client.post(f"{TABLE}/query", huge, format="json").status_code in (400, 413)
    form = client.post(f"{TABLE}/query", "version=1", content_type="text/plain")
    assert form.status_code == 415 and form.json()["errorCode"] == "UNSUPPORTED_MEDIA_TYPE"


# --- signed file URLs ------------------------------------------------------------------


def test_a_file_url_dies_with_the_grant_it_was_signed_under(three_versions, staff):
    """Replayed after a revoke, after the grant changed (restriction added, removed),
    after the signer was demoted from staff or deactivated: refused, no bytes."""
    bob = make_user("bob")
    grant = give(bob, "transactions")
    path = first_file(bearer(bob))
    assert fetch(path)[0] == 200
    grant.row_filter = {"country": ["FR"]}
    grant.save()
    status, body = fetch(path)
    assert status == 403 and b"PAR1" not in body
    narrowed = first_file(bearer(bob))
    grant.row_filter = None
    grant.save()
    assert fetch(narrowed)[0] == 403  # the narrow file, now that bob reads all
    grant.delete()
    assert fetch(path)[0] == 403
    staff_path = first_file(bearer(staff))
    staff.is_staff = False
    staff.save()
    assert fetch(staff_path)[0] == 403
    restricted(staff, row_filter={"country": ["DE"]})
    assert fetch(staff_path)[0] == 403  # reads, but another restriction
    eve = make_user("eve")
    give(eve, "transactions")
    eve_path = first_file(bearer(eve))
    eve.is_active = False
    eve.save()
    assert fetch(eve_path)[0] == 403


def test_a_file_url_expires_and_cannot_be_altered(three_versions, settings):
    bob = make_user("bob")
    give(bob, "transactions")
    path = first_file(bearer(bob))
    token = path.rsplit("/", 1)[1]
    payload, stamp, signature = token.split(":")
    for altered in (
        f"{payload}:{stamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{payload}X:{stamp}:{signature}",
        f"{payload}:{stamp}",
        f"{payload}::{signature}",
        token.upper(),
        "",
    ):
        answer = APIClient().get(f"{BASE}/files/{altered}")
        assert answer.status_code in (403, 404), (altered, answer.status_code)
    settings.SHARING_URL_LIFETIME_SECONDS = -1
    status, body = fetch(path)
    assert status == 403 and b"url_expired" in body


def test_another_recipients_url_is_refused_for_a_narrower_signer(three_versions):
    """eve (FR rows) cannot have the unrestricted file, even by a URL signed for her over
    its path (what a server bug or a leaked key would make), nor bob's URL rewritten."""
    bob, eve = make_user("bob"), make_user("eve")
    give(bob, "transactions")
    restricted(eve, row_filter={"country": ["FR"]})
    bob_path = first_file(bearer(bob))
    relative = links.verify(bob_path.rsplit("/", 1)[1]).relative
    assert relative.split("/")[2] == "all"
    forged, _ = links.sign(eve.pk, relative)
    status, body = fetch(f"{BASE}/files/{forged}")
    assert status == 403 and b"PAR1" not in body
    eve_path = first_file(bearer(eve))
    eve_relative = links.verify(eve_path.rsplit("/", 1)[1]).relative
    swapped, _ = links.sign(bob.pk, eve_relative)  # bob reads all: not eve's restriction
    assert fetch(f"{BASE}/files/{swapped}")[0] == 403


@pytest.mark.parametrize(
    "relative",
    [
        "transactions/v3/../part-00000.parquet",
        "../../../etc/passwd",
        "/etc/a/b/c",
        "transactions/v3/all/../../../../../etc/passwd",
        "transactions//all/part-00000.parquet",
        "transactions/v3/all/part-00000.parquet/x",
        "transactions/v3/all/.",
        "transactions/v3/all/part-00000.parquet\x00",
        "transactions/v3/all/part-00000.parquet\n",
        "transactions/v3/all/\udcff",
        "sales/v1/all/part-00000.parquet",
    ],
)
def test_a_signed_path_outside_the_shared_files_is_refused(three_versions, relative):
    """`verify` and `within`, behind the signature: a payload naming a path outside
    SHARING_ROOT, or with control characters, is a 403/404, never a 500 nor a file."""
    bob = make_user("bob")
    give(bob, "transactions")
    first_file(bearer(bob))  # transactions/v3/all is written
    token, _ = links.sign(bob.pk, relative)
    answer = APIClient().get(f"{BASE}/files/{token}")
    assert answer.status_code in (403, 404), answer.status_code


def test_range_requests_in_every_form(three_versions):
    bob = make_user("bob")
    give(bob, "transactions")
    path = first_file(bearer(bob))
    status, whole = fetch(path)
    size = len(whole)
    expected = {
        "bytes=0-0": (206, whole[:1]),
        "bytes=-8": (206, whole[-8:]),
        f"bytes=-{size + 5}": (206, whole),
        f"bytes={size - 1}-": (206, whole[-1:]),
        "bytes=0-": (206, whole),
        f"bytes=10-{10**18}": (206, whole[10:]),
        "bytes=0-1,3-4": (200, whole),  # several ranges: the whole file (RFC 9110 allows)
        "bytes=0-99999999999999999999": (200, whole),
        "bytes=": (200, whole),
        "bytes=-": (200, whole),
        "items=0-1": (200, whole),
        "bytes=-0": (416, None),
        "bytes=5-3": (200, whole),  # last before first: not a valid range, ignored
        f"bytes={size}-": (416, None),
        "bytes=9999999999999999999-": (416, None),
    }
    for header, (code, body) in expected.items():
        status, got = fetch(path, HTTP_RANGE=header)
        assert status == code, (header, status)
        if body is not None:
            assert got == body, header
        head = APIClient().head(path, HTTP_RANGE=header)
        assert head.status_code in (200, 416) and not head.content


# --- restrictions, as the rows API ----------------------------------------------------


def test_hidden_and_masked_columns_in_the_row_filter(three_versions):
    """The row filter names a hidden column (country) and a masked one (user_id); the
    key is masked: the files hold the rows API's rows exactly."""
    eve = make_user("eve")
    restricted(eve, columns=["transaction_id", "amount", "user_id"],
               row_filter={"country": ["DE"], "user_id": ["u1", "u0"]},
               masked=["transaction_id", "user_id"])  # fmt: skip
    client = bearer(eve)
    schema = lines(client.get(f"{TABLE}/metadata"))[1]["metaData"]["schemaString"]
    assert "country" not in schema
    got = rows_of(query(client))
    assert got and as_text(got) == as_text(every_row(client_for(eve), ROWS))
    assert all(r["transaction_id"].startswith("anon_") for r in got)


def test_a_group_grant_and_a_direct_grant_combine_as_in_the_rows_api(three_versions):
    eve = make_user("eve")
    group = Group.objects.create(name="analysts")
    eve.groups.add(group)
    give(group, "transactions", "read", row_filter={"country": ["FR"]}, masked=["user_id"])
    restricted(eve, row_filter={"country": ["DE"]}, columns=["transaction_id", "user_id"])
    client = bearer(eve)
    got = rows_of(query(client))
    assert as_text(got) == as_text(every_row(client_for(eve), ROWS))
    assert {r["country"] for r in got} == {"FR", "DE"}


def test_a_grant_with_no_columns_shows_none(three_versions):
    eve = make_user("eve")
    restricted(eve, columns=[])
    client = bearer(eve)
    schema = lines(client.get(f"{TABLE}/metadata"))[1]["metaData"]["schemaString"]
    assert '"fields":[]' in schema
    assert rows_of(query(client)) == []  # no column, so no value


def test_rotating_the_masking_key_writes_new_files(three_versions, settings):
    eve = make_user("eve")
    restricted(eve, masked=["user_id"])
    client = bearer(eve)
    before = query(client)
    old = {r["user_id"] for r in rows_of(before)}
    settings.LAKE_MASKING_KEY = ["a-new-masking-key-" + "y" * 40, *settings.LAKE_MASKING_KEY]
    assert fetch(file_path(before[0]["file"]))[0] == 403  # pseudonyms of the old key
    after = query(client)
    assert after[0]["file"]["id"] != before[0]["file"]["id"]
    new = {r["user_id"] for r in rows_of(after)}
    assert not old & new
    assert new == {r["user_id"] for r in every_row(client_for(eve), ROWS)}


@pytest.mark.parametrize("column", ["timestamp", "amount", "quantity", "transaction_id"])
def test_masked_columns_of_every_type_are_the_rows_api_pseudonyms(three_versions, column):
    eve = make_user("eve")
    restricted(eve, masked=[column])
    got = rows_of(query(bearer(eve)))
    assert as_text(got) == as_text(every_row(client_for(eve), ROWS))


def test_the_change_feed_under_a_row_filter_shows_only_rows_it_allows(three_versions):
    eve = make_user("eve")
    restricted(eve, row_filter={"country": ["DE"]}, masked=["user_id"])
    feed = bearer(eve).get(f"{TABLE}/changes", {"startingVersion": 1})
    got = rows_of(lines(feed)[2:], "cdf")
    assert got and {r["country"] for r in got} == {"DE"}
    assert all(r["user_id"].startswith("anon_") for r in got)


def test_the_change_feed_under_a_column_restriction_is_readable(three_versions):
    """The cdf files of a recipient whose grant lists columns: their URLs are refused
    (403 'Your grant on this table changed') although the grant did not change."""
    eve = make_user("eve")
    restricted(eve, columns=["transaction_id", "country"])
    feed = bearer(eve).get(f"{TABLE}/changes", {"startingVersion": 1, "endingVersion": 3})
    actions = lines(feed)[2:]
    assert [a["cdf"]["version"] for a in actions] == [1, 2, 3]
    got = rows_of(actions, "cdf")
    assert {tuple(sorted(r)) for r in got} == {("_change_type", "country", "transaction_id")}


@pytest.mark.parametrize(
    "table",
    ["transactions", "sales", "exchange_rates", "product_daily_sales", "products",
     "retail_invoices"],
)  # fmt: skip
def test_an_empty_table_is_shared_as_an_empty_file(lake, staff, table):
    """A table with no rows (a new lake, version 0, a cleared aggregate) was a 500
    (pyarrow: 'Empty CSV file') for every recipient, restricted or not."""
    eve = make_user("eve")
    give(eve, table, row_filter=None, masked=[])
    url = f"{BASE}/shares/lake/schemas/tables/tables/{table}"
    for client in (bearer(staff), bearer(eve)):
        client.raise_request_exception = False
        answer = client.post(f"{url}/query", {}, format="json")
        assert answer.status_code == 200, answer.content[:200]
        assert rows_of(lines(answer)[2:]) == []


@pytest.fixture
def a_sale(lake):
    Sale.objects.create(
        sale_date=dt.date(2026, 11, 20), line=1, customer_id="C1", products=["P1", "P2"]
    )
    Resource.objects.filter(name="sales").update(current_version=1)


def test_a_masked_array_column_holds_the_rows_api_pseudonyms(a_sale):
    """sales.products (an array) masked: 500 (pyarrow has no dictionary_encode for lists)."""
    eve = make_user("eve")
    restricted(eve, "sales", masked=["products"])
    client = bearer(eve)
    client.raise_request_exception = False
    sales = f"{BASE}/shares/lake/schemas/tables/tables/sales"
    answer = client.post(f"{sales}/query", {}, format="json")
    assert answer.status_code == 200, answer.content[:200]
    got = rows_of(lines(answer)[2:])
    expected = every_row(client_for(eve), "/api/v1/resources/sales/rows/")
    assert [r["products"] for r in got] == [r["products"] for r in expected]
    assert got[0]["products"].startswith("anon_")


@pytest.mark.parametrize("column", ["timestamp", "amount", "quantity", "_line"])
def test_a_raw_folder_masks_as_its_rows_endpoint(stored, column):
    """A raw folder's masked timestamp held other pseudonyms than its rows endpoint
    (the files' timestamps had no time zone: str() differs)."""
    eve = make_user("eve")
    restricted(eve, "raw_transactions", masked=[column], row_filter={"country": ["BE"]})
    got = rows_of(query(bearer(eve), url=RAW))
    expected = every_row(client_for(eve), "/api/v1/resources/raw_transactions/rows/")
    assert len(got) == 10 and as_text(got) == as_text(expected)


def test_a_raw_folder_under_a_column_restriction(stored):
    eve = make_user("eve")
    restricted(eve, "raw_transactions", columns=["country"], row_filter={"user_id": ["user-1"]})
    got = rows_of(query(bearer(eve), url=RAW))
    assert {tuple(sorted(r)) for r in got} == {("_file", "_line", "country")}
    assert as_text(got) == as_text(
        every_row(client_for(eve), "/api/v1/resources/raw_transactions/rows/")
    )


# --- the request log ------------------------------------------------------------------


def test_every_call_and_file_fetch_is_in_the_request_log_naming_the_table(three_versions):
    request_log_writer.flush()  # what earlier tests still queue
    eve = make_user("eve")
    restricted(eve, row_filter={"country": ["FR"]})
    client = bearer(eve)
    client.get(f"{BASE}/shares")
    client.get(f"{BASE}/shares/lake/all-tables")
    for route in TABLE_ROUTES:
        client.get(f"{TABLE}/{route}")
    path = first_file(client)
    fetch(path)
    APIClient().head(path, HTTP_RANGE="bytes=-8")
    fetch(path[:-3] + "AAA")  # altered: no user, no table
    nobody = bearer(make_user("carol"))
    nobody.get(f"{TABLE}/metadata")
    assert request_log_writer.flush()
    fields = ("method", "path", "username", "resource", "status_code")
    ours = RequestLog.objects.filter(path__startswith=BASE)
    logged = list(ours.order_by("id").values_list(*fields))
    assert len(logged) == 10, logged
    named = [(m, p.rsplit("/", 1)[-1][:10], u, r, s) for m, p, u, r, s in logged]
    assert named[:2] == [("GET", "shares", "eve", "", 200), ("GET", "all-tables", "eve", "", 200)]
    assert [(r, u) for _m, _p, u, r, _s in named[2:8]] == [("transactions", "eve")] * 6
    assert named[8][2:] == ("", "", 403)
    assert named[9] == ("GET", "metadata", "carol", "transactions", 403)
    files = RequestLog.objects.filter(path__startswith=f"{BASE}/files/", status_code__lt=300)
    assert sorted(files.values_list("method", "resource", "restrictions")) == sorted(
        [(m, "transactions", {"transactions": {"columns": None, "masked": [],
                                               "row_filter": [{"country": ["FR"]}]}})
         for m in ("GET", "HEAD")]
    )  # fmt: skip


@pytest.mark.parametrize(
    "restriction",
    [{"masked": ["transaction_id"]}, {"columns": ["amount", "country", "user_id"]}],
    ids=["masked key", "hidden key"],
)
def test_a_concealed_key_has_no_rank_in_the_files(stored, restriction):
    """The rows API orders rows whose key is masked or hidden by the key's keyed hash, so
    that a row's rank says nothing of its key. The files listed them in the table's
    physical order, which is the order the sequential ids were loaded in: the k-th row of
    a file was TX-000k, whatever its pseudonym."""
    eve = make_user("eve")
    restricted(eve, **restriction)
    got = rows_of(query(bearer(eve)))
    expected = every_row(client_for(eve), ROWS)
    assert sorted(str(r["amount"]) for r in got) == sorted(r["amount"] for r in expected)
    assert [str(r["amount"]) for r in got] == [r["amount"] for r in expected]


def test_an_update_across_the_row_filter_is_a_delete_or_an_insert(lake):
    """TX-0001 moves DE -> FR and TX-0002 FR -> DE in version 2. A recipient of DE rows
    got TX-0001's update_preimage with no postimage: a connector applying the feed keeps
    the row (an update whose new image it may not see), which its grant no longer shows;
    for that recipient the row left (delete), and TX-0002 came in (insert)."""
    pipeline_batch(tx(1, country="DE"), tx(2, country="FR"), tx(3, country="DE"))
    pipeline_batch(tx(1, country="FR"), tx(2, country="DE"), tx(3, country="DE", amount=7))
    expected = {
        "DE": [("TX-0001", "delete"), ("TX-0002", "insert"),
               ("TX-0003", "update_postimage"), ("TX-0003", "update_preimage")],
        "FR": [("TX-0001", "insert"), ("TX-0002", "delete")],
    }  # fmt: skip
    for country, changes in expected.items():
        user = make_user(f"reader-{country}")
        restricted(user, row_filter={"country": [country]})
        feed = bearer(user).get(f"{TABLE}/changes", {"startingVersion": 2})
        got = rows_of(lines(feed)[2:], "cdf")
        assert sorted((r["transaction_id"], r["_change_type"]) for r in got) == changes


def test_an_unsatisfiable_range_names_the_file_size(three_versions):
    """A 416 carries `Content-Range: bytes */<size>` (RFC 9110 15.5.17), so that a client
    learns the length; the API's error envelope replaced the response and dropped it."""
    bob = make_user("bob")
    give(bob, "transactions")
    path = first_file(bearer(bob))
    size = len(fetch(path)[1])
    refused = APIClient().get(path, HTTP_RANGE=f"bytes={size}-")
    assert refused.status_code == 416 and refused["Content-Range"] == f"bytes */{size}"
    assert refused.json()["code"]
