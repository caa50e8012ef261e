"""The real `delta-sharing` Python connector against the portal (issue 19, item 5).

gunicorn serves the test database (tests/support/deltasharing.py); the connector runs in
its own virtual environment, in a subprocess, and its answers are compared with what the
rows API (`/api/v1/resources/<name>/rows/`, every page) gives the same user: the same
rows, columns and pseudonyms, at the current version and at an older one, and the change
feed built from the portal's versions (inserts, update pairs, deletes); two recipients
with different restrictions, a raw folder, an unversioned table, an empty one, a table
cut into several files, concurrent first readers.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from datalake.catalog.sync import sync_resources
from datalake.models import ExchangeRate, Resource
from datalake.sharing import snapshots
from lineage.models import RequestLog, Version
from tests.support.deltasharing import ConnectorError, column_types, comparable
from tests.support.factories import client_for, give, make_user
from tests.support.lake import ingest, pipeline_batch, tx, write_lines
from tests.support.restrictions import every_row

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

COUNTRIES = ["FR", "DE", "BE"]
TX = "/api/v1/resources/transactions/"
CDF = ("_change_type", "_commit_version", "_commit_timestamp")
SHOWN = ["transaction_id", "user_id", "country", "amount", "timestamp"]  # debe's columns


def record(i: int, **changes) -> dict:
    return tx(i, **{"country": COUNTRIES[i % 3], "user_id": f"user-{i % 4}", **changes})


def version_of(name: str) -> int:
    return Resource.objects.get(name=name).current_version


class History:
    """Three versions of `transactions` with corrections, and what the rows API gave each
    user at each version (`rows[username][version]`)."""

    def __init__(self, users):
        self.users = users
        self.rows: dict[str, dict[int, list[dict]]] = {u.username: {} for u in users}
        self.versions: list[int] = []
        self.types = column_types(client_for(users[0]), "transactions")

    def merge(self, *records) -> int:
        pipeline_batch(*records)
        version = version_of("transactions")
        self.versions.append(version)
        for user in self.users:
            self.rows[user.username][version] = every_row(client_for(user), TX + "rows/")
        return version


@pytest.fixture
def people(db):
    """full: `read` on transactions; fr: FR rows, user_id masked; debe: DE and BE rows,
    five columns, transaction_id masked; other: `read` on exchange_rates only."""
    full, fr, debe, other = (make_user(n) for n in ("full", "fr", "debe", "other"))
    give(full, "transactions")
    give(fr, "transactions", row_filter={"country": ["FR"]}, masked=["user_id"])
    give(debe, "transactions", row_filter={"country": ["DE", "BE"]}, columns=SHOWN,
         masked=["transaction_id"])  # fmt: skip
    give(other, "exchange_rates")
    return {"full": full, "fr": fr, "debe": debe, "other": other}


@pytest.fixture
def history(lake, people) -> History:
    """v1: 9 transactions; v2: TX-0003 corrected (amount), TX-0009 and TX-0010 new;
    v3: TX-0004 corrected (status), TX-0011 new."""
    made = History([people["full"], people["fr"], people["debe"]])
    made.merge(*(record(i) for i in range(9)))
    made.merge(record(3, amount=500), record(9), record(10))
    made.merge(record(4, status="refunded"), record(11))
    assert len(set(made.versions)) == 3 and made.versions == sorted(made.versions)
    return made


def frame_rows(frame: dict, drop=CDF) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in drop} for row in frame["rows"]]


def each_change_is_a_rows_api_row(changes: dict, history: History, name: str) -> None:
    """Each change row is a row as the rows API showed it to `name` (masked keys
    included): the previous version's for a pre-image, its own version's otherwise."""
    snapshots = history.rows[name]
    for row in changes["rows"]:
        at = history.versions.index(row["_commit_version"])
        before = row["_change_type"] == "update_preimage"
        shown = snapshots[history.versions[at - before]]
        (want,) = [r for r in shown if r["transaction_id"] == row["transaction_id"]]
        assert comparable(frame_rows({"rows": [row]}), history.types) == comparable(
            [want], history.types
        ), (name, row)


def test_the_connector_lists_exactly_the_tables_its_user_may_read(people, lake, recipients):
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", [record(i) for i in range(3)])
    sync_resources()
    give(people["full"], "raw_transactions")
    assert recipients(people["full"]).list_all_tables() == [
        ("lake", "files", "raw_transactions"),
        ("lake", "tables", "transactions"),
    ]
    assert recipients(people["fr"]).list_all_tables() == [("lake", "tables", "transactions")]
    assert recipients(people["other"]).list_all_tables() == [("lake", "tables", "exchange_rates")]


def test_the_profile_endpoint_gives_a_profile_the_connector_reads_with(
    people, sharing_server, recipients
):
    expires = timezone.now().replace(microsecond=0) + dt.timedelta(days=2)
    recipient = recipients(people["fr"], expires_at=expires)
    with sharing_server.http() as http:
        answer = http.get(
            "/api/v1/delta-sharing/profile/", headers={"Authorization": f"Token {recipient.token}"}
        )
    assert answer.status_code == 200, answer.text
    profile = answer.json()
    assert profile["shareCredentialsVersion"] == 1
    assert profile["endpoint"] == sharing_server.endpoint
    assert profile["bearerToken"] == recipient.token
    assert dt.datetime.fromisoformat(profile["expirationTime"]) == expires
    recipient.profile.write_text(answer.text)
    assert recipient.list_all_tables() == [("lake", "tables", "transactions")]


def test_a_table_loads_at_the_current_and_an_older_version(people, history, recipients):
    full = recipients(people["full"])
    v1, v2, v3 = history.versions
    assert full.version("transactions") == v3
    expected = history.rows["full"]
    for version in (None, v1, v2):
        options = {} if version is None else {"version": version}
        frame = full.load("transactions", **options)
        want = expected[version or v3]
        assert comparable(frame["rows"], history.types) == comparable(want, history.types), version
        assert set(frame["columns"]) == set(want[0]), version
    assert len(full.load("transactions", limit=2)["rows"]) == 2
    # time travel by timestamp: the version current at that time
    made = Version.objects.get(resource__name="transactions", version=v2).created_at
    frame = full.load("transactions", timestamp=made.isoformat().replace("+00:00", "Z"))
    assert comparable(frame["rows"], history.types) == comparable(expected[v2], history.types)
    assert full.version("transactions", starting_timestamp=made.isoformat()) == v2
    # pandas types: decimals as Decimal (object), timestamps in UTC, strings as objects
    dtypes = full.load("transactions")["dtypes"]
    assert dtypes["amount"] == "object" and "UTC" in dtypes["timestamp"], dtypes
    # every call is in the request log, under the recipient, naming the table it read
    logged = RequestLog.objects.filter(username="full", path__startswith="/api/v1/delta-sharing/")
    assert logged.filter(path__endswith="/query", resource="transactions", status_code=200).exists()
    assert logged.filter(path__contains="/files/", resource="transactions").exists()


def test_the_change_feed_has_inserts_and_the_correction_as_an_update_pair(
    people, history, recipients
):
    full = recipients(people["full"])
    _v1, v2, v3 = history.versions
    changes = full.changes("transactions", starting_version=v2, ending_version=v3)
    assert set(CDF[:2]) <= set(changes["columns"])
    got = sorted(
        (r["_commit_version"], r["transaction_id"], r["_change_type"]) for r in changes["rows"]
    )
    assert got == sorted([
        (v2, "TX-0003", "update_preimage"), (v2, "TX-0003", "update_postimage"),
        (v2, "TX-0009", "insert"), (v2, "TX-0010", "insert"),
        (v3, "TX-0004", "update_preimage"), (v3, "TX-0004", "update_postimage"),
        (v3, "TX-0011", "insert"),
    ])  # fmt: skip
    each_change_is_a_rows_api_row(changes, history, "full")
    amounts = {
        r["_change_type"]: r["amount"] for r in changes["rows"] if r["transaction_id"] == "TX-0003"
    }
    assert (amounts["update_preimage"], amounts["update_postimage"]) == ("13.00", "500.00")


def test_two_recipients_with_different_restrictions_get_exactly_their_rows_and_columns(
    people, history, recipients
):
    v1, v2, v3 = history.versions
    for name, countries, columns in (
        ("fr", {"FR"}, set(history.types)),
        ("debe", {"DE", "BE"}, set(SHOWN)),
    ):
        recipient = recipients(people[name])
        for version in (v3, v1):
            frame = recipient.load("transactions", version=version)
            want = history.rows[name][version]
            assert set(frame["columns"]) == columns, (name, frame["columns"])
            assert {r["country"] for r in frame["rows"]} == countries
            # masked values included: the rows API's pseudonyms, nothing else
            assert comparable(frame["rows"], history.types) == comparable(want, history.types)
    # the change feed under each restriction: the same filter, columns and pseudonyms
    for name, columns, expected in (
        ("fr", set(history.types), [(v2, "update_preimage"), (v2, "update_postimage"),
                                    (v2, "insert")]),  # TX-0003 corrected, TX-0009
        # 10 and 11; TX-0004's correction changed `status` only, which debe does not
        # see: not in its feed (the pair would tell that a hidden value changed)
        ("debe", set(SHOWN), [(v2, "insert"), (v3, "insert")]),
    ):  # fmt: skip
        changes = recipients(people[name]).changes(
            "transactions", starting_version=v2, ending_version=v3
        )
        assert set(changes["columns"]) - set(CDF) == columns, (name, changes["columns"])
        got = sorted((r["_commit_version"], r["_change_type"]) for r in changes["rows"])
        assert got == sorted(expected), name
        each_change_is_a_rows_api_row(changes, history, name)
    fr = recipients(people["fr"]).load("transactions")["rows"]
    assert all(r["user_id"].startswith("anon_") for r in fr)
    debe = recipients(people["debe"]).load("transactions")["rows"]
    assert all(r["transaction_id"].startswith("anon_") for r in debe)
    assert "customer_rating" not in debe[0] and "user_id" in debe[0]
    # the schema the connector is given: debe's five columns, the masked key a string
    debe_reader = recipients(people["debe"])
    schema = json.loads(debe_reader.run("metadata", url=debe_reader.url("transactions"))[
        "schema_string"])  # fmt: skip
    assert {f["name"]: f["type"] for f in schema["fields"]} == {
        "transaction_id": "string", "user_id": "string", "country": "string",
        "amount": "decimal(16,2)", "timestamp": "timestamp",
    }  # fmt: skip


def test_a_raw_folder_and_an_unversioned_table_load_and_have_no_time_travel(
    people, lake, recipients
):
    records = [record(i) for i in range(7)]
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", records[:4])
    write_lines(lake / "landing/transactions/2026-11-21.jsonl", records[4:])
    sync_resources()
    give(people["full"], "raw_transactions")
    client = client_for(people["full"])
    want = every_row(client, "/api/v1/resources/raw_transactions/rows/")
    types = column_types(client, "raw_transactions")
    frame = recipients(people["full"]).load("raw_transactions", schema="files")
    assert len(frame["rows"]) == 7
    assert comparable(frame["rows"], types) == comparable(want, types)
    with pytest.raises(ConnectorError) as refused:
        recipients(people["full"]).load("raw_transactions", schema="files", version=1)
    assert refused.value.status == 409, refused.value.body
    # restricted: FR records, the timestamp (naive UTC in the folder) and user_id masked
    give(people["fr"], "raw_transactions", row_filter={"country": ["FR"]},
         masked=["timestamp", "user_id"], columns=["transaction_id", "timestamp", "user_id",
                                                   "country", "amount"])  # fmt: skip
    frame = recipients(people["fr"]).load("raw_transactions", schema="files")
    want = every_row(client_for(people["fr"]), "/api/v1/resources/raw_transactions/rows/")
    assert len(frame["rows"]) == 3 and {r["country"] for r in frame["rows"]} == {"FR"}
    types = column_types(client_for(people["fr"]), "raw_transactions")
    assert comparable(frame["rows"], types) == comparable(want, types)  # the same pseudonyms
    assert set(frame["columns"]) == set(want[0])
    for day, currency, rate in ((1, "USD", "1.0512"), (1, "GBP", "0.8312"), (2, "USD", "1.06")):
        ExchangeRate.objects.create(date=dt.date(2026, 11, day), currency=currency, rate=rate)
    other = recipients(people["other"])
    client = client_for(people["other"])
    want = every_row(client, "/api/v1/resources/exchange_rates/rows/")
    types = column_types(client, "exchange_rates")
    frame = other.load("exchange_rates")
    assert len(frame["rows"]) == 3
    assert comparable(frame["rows"], types) == comparable(want, types)
    assert set(frame["columns"]) == set(types)
    for call, options in (("load", {"version": 1}), ("changes", {"starting_version": 1})):
        with pytest.raises(ConnectorError) as refused:
            other.run(call, url=other.url("exchange_rates"), **options)
        assert refused.value.status == 409, refused.value.body


def test_a_table_in_several_files_loads_whole_and_a_limit_reads_only_the_first_files(
    people, history, sharing_servers, recipients
):
    server = sharing_servers(SHARING_FILE_ROWS="4")
    full = recipients(people["full"], server=server)
    query = "/api/v1/delta-sharing/shares/lake/schemas/tables/tables/transactions/query"

    def files(body: dict) -> list[dict]:
        with server.http(full.token) as http:
            answer = http.post(query, json=body)
        assert answer.status_code == 200, answer.text[:500]
        lines = [json.loads(line) for line in answer.text.splitlines()]
        return [line["file"] for line in lines if "file" in line]

    listed = files({})
    assert [json.loads(f["stats"])["numRecords"] for f in listed] == [4, 4, 4]
    assert len(files({"limitHint": 5})) == 2  # the first two files hold 8 >= 5 rows
    frame = full.load("transactions")
    expected = history.rows["full"][history.versions[-1]]
    assert comparable(frame["rows"], history.types) == comparable(expected, history.types)
    assert len(full.load("transactions", limit=5)["rows"]) == 5
    for name in ("fr", "debe"):  # restricted files are cut at 4 rows too
        frame = recipients(people[name], server=server).load("transactions")
        expected = history.rows[name][history.versions[-1]]
        assert comparable(frame["rows"], history.types) == comparable(expected, history.types)


def test_an_empty_table_loads_as_an_empty_frame_with_the_recipients_columns(
    people, lake, recipients
):
    types = column_types(client_for(people["full"]), "transactions")
    for name, columns in (("full", set(types)), ("debe", set(SHOWN))):
        frame = recipients(people[name]).load("transactions")
        assert frame["rows"] == [] and set(frame["columns"]) == columns, (name, frame)


def test_a_replaced_day_of_sales_gives_deletes_and_array_columns(people, lake, recipients):
    """`sales` (an array column) through Spark: a day's file delivered again with a line
    changed and one gone is an update pair and a delete in the change feed."""
    give(people["full"], "sales")
    day = lake / "landing/sales/2026-11-20.json"
    first = [{"Id": 1, "products": ["P1", "P2"]}, {"Id": 2, "products": ["P3"]},
             {"Id": 3, "products": ["P4"]}]  # fmt: skip
    versions, snapshots = [], {}
    client = client_for(people["full"])
    types = column_types(client, "sales")
    for lines in (first, [{"Id": 1, "products": ["P1", "P9"]}, {"Id": 2, "products": ["P3"]}]):
        run = ingest("sales", write_lines(day, lines))
        assert run.status == "succeeded", run.error
        versions.append(version_of("sales"))
        snapshots[versions[-1]] = every_row(client, "/api/v1/resources/sales/rows/")
    full = recipients(people["full"])
    for version in versions:
        frame = full.load("sales", version=version)
        assert comparable(frame["rows"], types) == comparable(snapshots[version], types)
    changes = full.changes("sales", starting_version=versions[1])
    got = sorted((r["line"], r["_change_type"], tuple(r["products"])) for r in changes["rows"])
    assert got == [
        (1, "update_postimage", ("P1", "P9")), (1, "update_preimage", ("P1", "P2")),
        (3, "delete", ("P4",)),
    ], got  # fmt: skip


def test_concurrent_first_queries_share_one_snapshot(people, history, sharing_server):
    """Both gunicorn workers asked at once for a version nobody read yet: one writes its
    files (under a lock), every answer names the same files."""
    _token, key = ApiToken.issue(people["fr"])
    query = "/api/v1/delta-sharing/shares/lake/schemas/tables/tables/transactions/query"
    v1 = history.versions[0]

    def ask(_):
        with sharing_server.http(key) as http:
            answer = http.post(query, json={"version": v1})
        assert answer.status_code == 200, answer.text[:300]
        lines = [json.loads(line) for line in answer.text.splitlines()]
        return sorted(line["file"]["id"] for line in lines if "file" in line)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, range(6)))
    assert all(a == answers[0] for a in answers) and answers[0]
    state = sharing_server.sharing_root / snapshots.FORMAT / "transactions" / f"v{v1}"
    written = sorted(p.name for p in state.iterdir() if p.is_dir())
    assert len(written) == 2 and "all" in written, written  # the base and fr's, once each
