"""Reports: start one, execute it (with its requester's privileges), expire stale ones."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from accounts.access import Access
from datalake.errors import Invalid
from datalake.platform.csvsafe import safe_row
from datalake.platform.jobs import refuse_too_many_running
from datalake.runs import lifecycle
from metrics.models import Report, ReportRow
from metrics.reports import get_report_type

logger = logging.getLogger(__name__)
ROW_BATCH = 5000


def _params(report_type, params) -> dict:
    if not isinstance(params, dict):
        raise Invalid({"params": ["Must be an object."]})
    unknown = sorted(set(params) - set(report_type.Params().fields))
    if unknown:
        raise Invalid({"params": [f"Unknown parameter(s): {', '.join(unknown)}."]})
    data = report_type.Params(data=params)
    if not data.is_valid():
        raise Invalid({"params": data.errors})
    return data.validated_data


def _refuse_unreadable(access: Access, report_type, missing_message: str) -> None:
    """AccessDenied unless the user holds `read`, unrestricted, on every resource the
    report type reads (`missing_message` formatted with the first one missing)."""
    resources = list(report_type.resources) if report_type else []
    access.require_all("read", resources, missing_message)
    for resource in resources:
        access.require_unrestricted(resource, "Reports")


def refuse_result(access: Access, report: Report) -> None:
    """403 unless `user` may still read, unrestricted, every resource the report read.

    A result is data of those resources: a grant revoked, or restricted (columns, row
    filter, masks), after the report ran counts from the next request, as on `rows/`.
    """
    _refuse_unreadable(
        access, get_report_type(report.report_name),
        "This report read {resource!r}; you no longer hold `read` on it.",
    )  # fmt: skip


@transaction.atomic
def report_start(*, report_name: str, params: dict, requested_by) -> Report:
    """Validate and queue a report; it reads with the requester's privileges.

    A user has at most REPORTS_MAX_RUNNING_PER_USER reports `running` (429
    `too_many_running_reports` past it; staff too: a loop of reports starves the
    workers whoever sends it). A per-user advisory lock makes the count and the insert
    one step."""
    report_type = get_report_type(report_name)
    if report_type is None:
        raise Invalid({"report_name": [f"Unknown report {report_name!r}."]})
    need = "This report reads {resource!r}; you need `read` on it."
    _refuse_unreadable(Access(requested_by), report_type, need)
    _params(report_type, params)
    _refuse_too_many_running(requested_by)
    report = Report.objects.create(
        report_name=report_name, params=params, requested_by=requested_by
    )
    from metrics.tasks import run_report

    transaction.on_commit(lambda: run_report.delay(report.pk))
    return report


def _refuse_too_many_running(user) -> None:
    refuse_too_many_running(
        user, Report.objects.active().filter(requested_by=user),
        limit=settings.REPORTS_MAX_RUNNING_PER_USER, what="reports",
        code="too_many_running_reports",
    )  # fmt: skip


def report_execute(report_id: int, task_id: str = "") -> Report:
    """Compute the rows, store them (numbered, for fast pages) and the CSV, then succeed.
    A finished report is left alone (a redelivered task does nothing twice)."""
    queryset = Report.objects.select_related("requested_by")
    return lifecycle.execute(Report, report_id, _compute, task_id=task_id, queryset=queryset)


def _compute(report: Report) -> None:
    report_type = get_report_type(report.report_name)
    _refuse_unreadable(
        Access(report.requested_by), report_type,
        "the requester no longer holds `read` on {resource!r}",
    )  # fmt: skip
    _store(report, report_type(), _params(report_type, report.params))


def _store(report: Report, report_type, params: dict) -> None:
    folder = Path(settings.LAKE_ROOT) / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    final, partial = folder / f"{report.pk}.csv", folder / f".{report.pk}.csv.partial"
    count = 0
    with transaction.atomic(), open(partial, "w", newline="", encoding="utf-8") as handle:
        ReportRow.objects.filter(report=report).delete()
        writer = csv.writer(handle)
        writer.writerow(safe_row(report_type.columns))
        batch = []
        for row in report_type.rows(params):
            count += 1
            writer.writerow(safe_row(row[c] for c in report_type.columns))
            batch.append(ReportRow(report=report, n=count, data=row))
            if len(batch) == ROW_BATCH:
                ReportRow.objects.bulk_create(batch)
                batch = []
        ReportRow.objects.bulk_create(batch)
        handle.flush()
        partial.replace(final)
        lifecycle.succeed(
            report, row_count=count, columns=list(report_type.columns),
            result_path=str(final.relative_to(settings.LAKE_ROOT)),
        )  # fmt: skip


def expire_stale_reports() -> int:
    """A report unfinished REPORT_TIMEOUT seconds after it was requested lost its worker:
    failed (`error` on the wire). The report kind's stall policy (`Report.stalled`)."""
    return len(Report.recover_stalled())
