"""What a restricted `read` grant hides stays hidden off the rows endpoints too: rejects,
re-pushes, grant requests, run and version counts; and ingestion reads only landing files."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest

from datalake.catalog.sync import sync_resources
from datalake.celery import app as celery_app
from datalake.models import Resource, Transaction
from ingestion.models import RepushJob, RepushRequest
from lineage.models import Version
from tests.support.factories import client_for, give, make_user
from tests.support.lake import tx, write_lines

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = "/api/v1/ingestion/runs/"
FR_ONLY = {
    "columns": ["transaction_id", "country", "user_id", "quantity"],
    "row_filter": {"country": ["FR"]},
    "masked": ["user_id"],
}


@pytest.fixture
def eager():
    """Celery in eager mode: the same task code, run in-process when the request commits."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def ingest_as_staff(lake, source: str, relative: str) -> dict:
    staff = make_user("ops", is_staff=True)
    response = client_for(staff).post(RUNS, {"source": source, "path": relative}, format="json")
    assert response.status_code == 202, response.json()
    return client_for(staff).get(f"{RUNS}{response.json()['id']}/").json()


# -- 24.1: a run reads only its source's own landing folder ---------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "reports/42.jsonl",  # inside the lake, outside landing/
        "landing/sales/2026-11-20.jsonl",  # another source's landing folder
        "landing/transactions/link.jsonl",  # a link out of the folder
        "landing/transactions/../sales/2026-11-20.jsonl",
    ],
)
def test_a_run_reads_only_its_own_landing_folder(lake, staff, relative):
    write_lines(lake / "reports/42.jsonl", ['{"secret": "report line"}'])
    write_lines(lake / "landing/sales/2026-11-20.jsonl", ['{"Id": "C1", "products": ["P1"]}'])
    (lake / "landing/transactions").mkdir()
    os.symlink(lake / "reports/42.jsonl", lake / "landing/transactions/link.jsonl")
    body = {"source": "transactions", "path": relative}
    response = client_for(staff).post(RUNS, body, format="json")
    assert response.status_code == 400, response.json()
    assert "landing/transactions/" in response.json()["errors"]["path"][0]


# -- 17.1 / 24.1: rejects under the reader's restriction -------------------------------


@pytest.fixture
def rejected(lake, eager):
    """A transactions file with rejects of both countries, one unparseable line, and a
    duplicate (a fully parsed row); one good line per country."""
    lines = [
        tx(1, country="FR", user_id="fr-user"),
        tx(2, country="DE", user_id="de-user"),
        tx(3, country="DE", quantity=0, user_id="de-secret"),  # bad_quantity, DE
        tx(4, country="FR", quantity=0, user_id="fr-secret"),  # bad_quantity, FR
        "{oops not json",
        tx(1, country="FR", user_id="fr-user"),  # duplicate of line 1: line 1 rejected
    ]
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", lines)
    run = ingest_as_staff(lake, "transactions", "landing/transactions/2026-11-20.jsonl")
    assert run["status"] == "succeeded", run["error"]
    assert run["rows_rejected"] == 4
    sync_resources()
    return run


def test_rejects_and_run_counts_follow_the_readers_restriction(rejected):
    url = f"{RUNS}{rejected['id']}/rejects/"
    analyst = make_user("analyst")
    give(analyst, "transactions", "read", **FR_ONLY)
    give(analyst, "raw_transactions", "read", row_filter={"country": ["FR"]})
    api = client_for(analyst)
    body = api.get(url).json()
    # Only FR rejects: the unparseable line and the DE one are not shown, nor counted.
    assert body["count"] == 2
    results = body["results"]
    assert [r["line"] for r in results] == [1, 4]
    for reject in results:
        assert reject["raw"] is None  # the raw line cannot be restricted
        assert set(reject["fields"]) == {"transaction_id", "country", "user_id", "quantity"}
        assert reject["fields"]["country"] == "FR"
        assert reject["fields"]["user_id"].startswith("anon_")
        assert "secret" not in str(reject) and "fr-user" not in str(reject)
        assert ":" not in reject["reason"]  # the code only: the sentence may quote values
    assert [r["reason"] for r in results] == ["duplicate_id", "bad_quantity"]

    # 17.4: no whole-file counts to a row-filtered reader (as the catalog's row_count).
    run = api.get(f"{RUNS}{rejected['id']}/").json()
    listed = api.get(RUNS).json()["results"]
    for shown in (run, listed[0]):
        for name in ("rows_read", "rows_loaded", "rows_rejected", "rows_added", "rows_changed"):
            assert shown[name] is None, (name, shown)
    versions = api.get("/api/v1/resources/transactions/versions/").json()["results"]
    assert versions and all(v["rows_added"] is None and v["rows_changed"] is None for v in versions)

    # An unrestricted reader of the table: every FR and DE reject with all its fields, the
    # counts; the raw lines only once it reads the raw files unrestricted too.
    table_reader = make_user("table-reader")
    give(table_reader, "transactions", "read")
    api = client_for(table_reader)
    results = api.get(url).json()["results"]
    assert [r["line"] for r in results] == [1, 3, 4, 5]
    assert all(r["raw"] is None for r in results)
    assert results[1]["fields"]["user_id"] == "de-secret"  # nothing hidden from this reader
    assert results[1]["reason"].startswith("bad_quantity: ")
    assert results[3]["fields"] == {}  # nothing could be read from it
    assert api.get(f"{RUNS}{rejected['id']}/").json()["rows_read"] == 6
    give(table_reader, "raw_transactions", "read")
    assert api.get(url).json()["results"][3]["raw"] == "{oops not json"


@pytest.fixture
def retail_rejected(lake, eager):
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    lines = [
        header,
        "536365,85123A,MUG,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
        "536366,85123B,CUP,lots,2010-12-01 08:28:00,1.85,17851,France",  # bad_quantity
    ]
    write_lines(lake / "landing/retail/2010-12-01.csv", lines)
    run = ingest_as_staff(lake, "retail", "landing/retail/2010-12-01.csv")
    assert run["status"] == "succeeded", run["error"]
    sync_resources()
    return run


def test_retail_rejects_carry_only_the_fields_of_the_readers_table(retail_rejected):
    reader = make_user("items-reader")
    give(reader, "retail_invoice_items", "read")
    results = client_for(reader).get(f"{RUNS}{retail_rejected['id']}/rejects/").json()["results"]
    assert len(results) == 1
    assert results[0]["raw"] is None
    assert results[0]["fields"]["invoice_no"] == "536366"
    assert "customer_id" not in results[0]["fields"] and "country" not in results[0]["fields"]
    assert "17851" not in str(results) and "France" not in str(results)


# -- 17.4: the grants endpoint is no existence oracle ----------------------------------


@pytest.mark.parametrize(
    "grantee", [{"user": "alice"}, {"user": "nobody-here"}, {"group": "no-such-group"}]
)
def test_grant_requests_without_grant_privilege_are_refused_before_validation(alice, grantee):
    outsider = make_user("outsider")
    give(outsider, "transactions", "read")
    body = {**grantee, "resource": "transactions", "privilege": "read"}
    response = client_for(outsider).post("/api/v1/grants/", body, format="json")
    assert response.status_code == 403, response.json()
    unknown = {**body, "resource": "no-such-resource"}
    assert client_for(outsider).post("/api/v1/grants/", unknown, format="json").status_code == 403


# -- 17.2: re-pushes are their requester's ----------------------------------------------


@pytest.fixture
def repushed(db):
    """A processed re-push by alice of a DE transaction (as the consumer records it)."""
    at = dt.datetime(2026, 11, 20, 13, 45, tzinfo=dt.UTC)
    Transaction.objects.create(
        transaction_id="TX-R1", user_id="U-secret", timestamp=at, transaction_type="online",
        payment_method="card", country="DE", product_id="P1", quantity=2,
        amount=Decimal("59.90"), currency="EUR", amount_eur=Decimal("59.90"), status="completed",
    )  # fmt: skip
    Version.objects.create(
        resource=Resource.objects.get(name="transactions"), version=1, source="repush:1"
    )
    alice = make_user("alice")
    give(alice, "transactions", "write")
    give(alice, "transactions", "read", columns=["transaction_id", "user_id"], masked=["user_id"])
    push = RepushRequest.objects.create(
        transaction_id="TX-R1", status="succeeded", original_timestamp=at, new_timestamp=at,
        topic="transactions.raw", version=1, requested_by=alice,
    )  # fmt: skip
    job = RepushJob.objects.create(total=1, requested_by=alice)
    return alice, push, job


def test_a_repush_is_shown_to_its_requester_only_and_restricted(repushed, staff):
    alice, push, job = repushed
    url, job_url = f"/api/v1/pipeline/repush/{push.pk}/", f"/api/v1/pipeline/jobs/{job.pk}/"
    shown = client_for(alice).get(url).json()
    row = shown["row"]
    assert set(row) == {"transaction_id", "user_id"} and row["user_id"].startswith("anon_")
    assert shown["original_timestamp"] is None  # `timestamp` is not in alice's columns
    by_staff = client_for(staff).get(url).json()
    assert by_staff["row"]["user_id"] == "U-secret"
    assert by_staff["original_timestamp"] == "2026-11-20T13:45:00Z"
    assert client_for(alice).get(job_url).status_code == 200
    other = make_user("other-reader")
    give(other, "transactions", "read")
    for path in (url, job_url):
        response = client_for(other).get(path)
        assert response.status_code == 404, response.json()
    # A row outside the reader's row filter is not shown, even to the requester.
    give_filter_only = make_user("fr-writer")
    give(give_filter_only, "transactions", "write")
    give(give_filter_only, "transactions", "read", row_filter={"country": ["FR"]})
    push.requested_by = give_filter_only
    push.save()
    outside = client_for(give_filter_only).get(url).json()
    assert outside["row"] is None and outside["original_timestamp"] is None


def test_a_failed_runs_error_text_is_cut_to_its_kind_under_a_restriction(db):
    from ingestion.models import IngestionRun

    error = 'The Spark job failed: DataError: value too long for type character varying(2): "FRX"'
    run = IngestionRun.objects.create(
        source="transactions", path="landing/transactions/x.jsonl", status="failed", error=error
    )  # as _finish records a failure: the database's message may quote a value
    analyst = make_user("analyst")
    give(analyst, "transactions", "read", columns=["transaction_id"])
    assert client_for(analyst).get(f"{RUNS}{run.pk}/").json()["error"] == "The Spark job failed"
    reader = make_user("reader")
    give(reader, "transactions", "read")
    assert client_for(reader).get(f"{RUNS}{run.pk}/").json()["error"] == error


def test_a_runs_progress_shows_no_counts_under_a_row_filter(db):
    from ingestion.models import IngestionRun

    progress = {"phase": "done", "rows_read": 6, "rows_loaded": 2, "rows_rejected": 4}
    run = IngestionRun.objects.create(
        source="transactions", path="landing/transactions/x.jsonl", status="succeeded",
        rows_read=6, progress=progress,
    )  # fmt: skip
    analyst = make_user("analyst")
    give(analyst, "transactions", "read", row_filter={"country": ["FR"]})
    shown = client_for(analyst).get(f"{RUNS}{run.pk}/").json()
    assert shown["rows_read"] is None and shown["progress"] == {"phase": "done"}
