"""`world`: the lake and every kind of object carrying the marker MARK (records, a raw
file, an ingestion run with a reject, a report, a re-push, a re-push job, request-log
entries), for the walks that prove no route or task gives it to a user without grants
(tests/security/test_leaks.py, test_data_paths.py). A plugin of tests/conftest.py."""

from __future__ import annotations

import pytest
from django.utils import timezone

from datalake.catalog.sync import sync_resources
from ingestion.models import IngestionRun, Reject, RepushJob, RepushRequest
from lineage import writer as request_log_writer
from lineage.models import RequestLog
from metrics.models import Report, ReportRow
from tests.support.factories import client_for
from tests.support.lake import pipeline_batch, tx, write_lines

MARK = "ZQX7781"


@pytest.fixture
def world(lake, staff):
    """Data carrying MARK everywhere; object ids are 1 (sequences reset)."""
    records = [tx(i, transaction_id=f"{MARK}-TX-{i}", user_id=f"{MARK}-U{i}") for i in range(5)]
    pipeline_batch(*records)
    write_lines(lake / "landing/transactions/2026-11-20.jsonl", records)
    write_lines(lake / "landing/sales/2026-11-20.json", [{"Id": 1, "products": ["P1"]}])
    sync_resources()
    run = IngestionRun.objects.create(
        source="transactions", path="landing/transactions/2026-11-20.jsonl", requested_by=staff
    )
    Reject.objects.create(run=run, line=3, raw=f'{{"transaction_id": "{MARK}-BAD"}}',
                          reason=f"bad_type: amount of {MARK}-BAD")  # fmt: skip
    report = Report.objects.create(
        report_name="top-products", status="succeeded", requested_by=staff,
        columns=["product_id", "units"], row_count=1,
    )  # fmt: skip
    ReportRow.objects.create(report=report, n=1, data={"product_id": f"{MARK}-P", "units": 3})
    now = timezone.now()
    RepushRequest.objects.create(
        transaction_id=f"{MARK}-TX-1", status="succeeded", original_timestamp=now,
        new_timestamp=now, topic="transactions.raw", requested_by=staff,
    )  # fmt: skip
    RepushJob.objects.create(resource="transactions", requested_by=staff)
    client_for(staff).get("/api/v1/resources/transactions/rows/", {"user_id": f"{MARK}-U1"})
    assert request_log_writer.flush()
    assert MARK in str(RequestLog.objects.filter(username="root").values_list("query", flat=True))
    return records
