"""A page per report result, for people: the table and a bar chart drawn as inline SVG
(no chart library, nothing fetched from outside)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from accounts.access import Access, data_path
from datalake.errors import AccessDenied
from datalake.runs.models import RunStatus
from metrics.models import Report
from metrics.reports.services import refuse_result
from metrics.reports.views import REPORT_WORDS

MAX_BARS = 30


def _number(value) -> float | None:
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None


def chart(columns: list[str], rows: list[dict]) -> dict | None:
    """Bars of the first numeric column other than a rank, labelled by the first text one."""
    if not rows:
        return None
    label = next((c for c in columns if _number(rows[0][c]) is None), columns[0])
    value = next(
        (c for c in columns if c not in ("rank", label) and _number(rows[0][c]) is not None), None
    )
    if value is None:
        return None
    values = [(str(r[label]), _number(r[value]) or 0.0) for r in rows[:MAX_BARS]]
    top = max((v for _, v in values), default=0) or 1.0
    bars = [
        {"label": name, "value": v, "width": round(560 * v / top, 1), "y": 24 * i}
        for i, (name, v) in enumerate(values)
    ]
    return {"label": label, "value": value, "bars": bars, "height": 24 * len(bars)}


@data_path("the requester's own report; its type's `resources` (`read`, unrestricted)")
@login_required
def report_page(request, pk: int):
    access = Access.of(request)
    report = Report.objects.readable_by(request.user).filter(pk=pk).first()
    if report is None:
        raise Http404("No such report.")
    rows = []
    word = REPORT_WORDS.get(report.status, report.status)
    if report.status == RunStatus.SUCCEEDED:
        try:
            refuse_result(access, report)
        except AccessDenied as refused:
            return render(request, "reports/result.html", {"report": report, "rows": [],
                          "chart": None, "refused": str(refused.detail),
                          "status": word}, status=403)  # fmt: skip
        rows = list(report.rows.order_by("n").values_list("data", flat=True)[:200])
    context = {"report": report, "rows": rows, "chart": chart(report.columns, rows),
               "status": word}  # fmt: skip
    return render(request, "reports/result.html", context)
