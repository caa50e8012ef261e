"""Reports: POST, poll, result pages and CSV; errors; privileges; the page with a chart."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from datalake.celery import app as celery_app
from metrics.models import Report
from metrics.reports import ReportType
from metrics.reports.services import expire_stale_reports
from tests.support.factories import client_for, give, make_user
from tests.support.lake import merge, row


class Boom(ReportType):
    """A report whose computation raises (registered like any report: one class)."""

    name = "test-boom"
    description = "Always fails."
    columns = ("x",)

    def rows(self, params):
        raise RuntimeError("the computation failed on purpose")
        yield  # pragma: no cover


@pytest.fixture
def run_reports(django_capture_on_commit_callbacks):
    """Celery eager: the queued task runs in-process when the request's transaction commits."""
    celery_app.conf.task_always_eager = True

    def post(client, body):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/reports/", body, format="json")
        return response

    yield post
    celery_app.conf.task_always_eager = False


@pytest.fixture
def data(db, lake):
    rows = [row(i, country=["FR", "DE", "ES", "US"][i % 4]) for i in range(60)]
    merge(rows)
    return rows


@pytest.fixture
def api(alice):
    give(alice, "transactions", "read")
    return client_for(alice)


def test_types_publish_a_json_schema_per_report(api):
    types = {t["report_name"]: t for t in api.get("/api/v1/reports/types/").json()}
    assert {"top-products", "spend-per-country", "ratings-per-category"} <= set(types)
    schema = types["spend-per-country"]["params"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert {"since", "until", "include", "exclude"} <= set(schema["properties"])
    assert schema["properties"]["include"]["type"] == "array"


def test_spend_per_country_from_post_to_csv(api, data, run_reports):
    body = {
        "report_name": "spend-per-country",
        "params": {"since": "2026-11-18", "until": "2026-11-25", "exclude": ["US"]},
    }
    response = run_reports(api, body)
    assert response.status_code == 202, response.json()
    created = response.json()
    assert created["status"] == "running" and created["result_url"] is None
    report = api.get(created["url"]).json()
    assert report["status"] == "completed", report["error"]
    expected = {}
    until = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    for r in data:
        if r["status"] == "completed" and r["country"] != "US" and r["timestamp"] < until:
            expected[r["country"]] = expected.get(r["country"], Decimal(0)) + r["amount_eur"]
    result = api.get(report["result_url"]).json()
    assert result["count"] == len(expected) == report["row_count"]
    got = {r["country"]: Decimal(r["total_eur"]) for r in result["results"]}
    assert got == expected
    csv_response = api.get(report["csv_url"])
    assert csv_response["Content-Type"] == "text/csv"
    lines = list(csv.DictReader(io.StringIO(b"".join(csv_response.streaming_content).decode())))
    assert {r["country"]: Decimal(r["total_eur"]) for r in lines} == expected


@pytest.mark.parametrize("name", ["top-products", "ratings-per-category"])
def test_every_builtin_report_completes_and_pages(api, data, run_reports, name):
    report = api.get(run_reports(api, {"report_name": name, "params": {}}).json()["url"]).json()
    assert report["status"] == "completed", report["error"]
    first = api.get(report["result_url"]).json()
    assert first["count"] == report["row_count"] > 0
    assert len(first["results"]) == min(10, report["row_count"])
    if report["row_count"] > 10:
        second = api.get(first["next"]).json()
        assert second["results"] and second["results"][0] != first["results"][0]
    assert api.get(report["result_url"], {"page": 99}).status_code == 404


def test_top_products_report_includes_and_excludes(api, data, run_reports):
    body = {"report_name": "top-products", "params": {"include": ["P1", "P2"], "limit": 5}}
    report = api.get(run_reports(api, body).json()["url"]).json()
    rows = api.get(report["result_url"]).json()["results"]
    assert {r["product_id"] for r in rows} == {"P1", "P2"}
    assert [r["rank"] for r in rows] == [1, 2]


def test_a_report_that_raises_ends_in_error(api, data, run_reports):
    report = api.get(run_reports(api, {"report_name": "test-boom", "params": {}}).json()["url"])
    body = report.json()
    assert body["status"] == "error"
    assert "failed on purpose" in body["error"]
    result = api.get(f"/api/v1/reports/{body['id']}/result/")
    assert result.status_code == 409 and result.json()["code"] == "report_not_ready"


def test_a_report_whose_worker_died_ends_in_error(api, alice, settings):
    settings.REPORT_TIMEOUT = 60
    stale = Report.objects.create(report_name="top-products", requested_by=alice)
    Report.objects.filter(pk=stale.pk).update(created_at=timezone.now() - dt.timedelta(hours=1))
    body = api.get(f"/api/v1/reports/{stale.pk}/").json()
    assert body["status"] == "error" and "worker" in body["error"]
    assert expire_stale_reports() == 0


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"report_name": "nope", "params": {}}, 400),
        ({"report_name": "top-products", "params": {"limit": 0}}, 400),
        ({"report_name": "top-products", "params": {"since": "whenever"}}, 400),
        ({"report_name": "top-products", "params": {"colour": "red"}}, 400),
        ({"report_name": "top-products", "params": []}, 400),
        ({"params": {}}, 400),
    ],
)
def test_bad_report_requests(api, db, body, status):
    response = api.post("/api/v1/reports/", body, format="json")
    assert response.status_code == status
    assert response.json()["detail"]


def test_reports_run_with_the_requesters_privileges_and_only_they_see_them(
    alice, staff, data, run_reports
):
    outsider = client_for(make_user("oscar"))
    body = {"report_name": "spend-per-country", "params": {}}
    assert outsider.post("/api/v1/reports/", body, format="json").status_code == 403
    give(alice, "transactions", "read")
    mine = run_reports(client_for(alice), body).json()
    give(make_user("olga"), "transactions", "read")
    from django.contrib.auth.models import User

    olga = client_for(User.objects.get(username="olga"))
    assert olga.get(mine["url"]).status_code == 404
    assert olga.get("/api/v1/reports/").json()["count"] == 0
    assert client_for(staff).get(mine["url"]).status_code == 200


def test_a_revoked_grant_fails_the_queued_report(alice, data):
    from accounts.models import Grant
    from metrics.reports.services import report_execute

    grant = give(alice, "transactions", "read")
    report = Report.objects.create(report_name="spend-per-country", requested_by=alice)
    Grant.objects.filter(pk=grant.pk).delete()
    done = report_execute(report.pk)
    assert done.status == "failed" and "no longer holds" in done.error


def test_the_report_page_shows_a_chart(alice, data, run_reports, client):
    api = client_for(alice)
    give(alice, "transactions", "read")
    report = run_reports(api, {"report_name": "spend-per-country", "params": {}}).json()
    client.force_login(alice)
    page = client.get(f"/reports/{report['id']}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "<rect" in html and "FR" in html
    # Nothing fetched from outside (a word test would trip on a CSRF token holding "cdn").
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html), html
    client.logout()
    assert client.get(f"/reports/{report['id']}/").status_code == 302  # to the login page


def test_a_result_follows_the_readers_grant_as_it_is_now(alice, data, run_reports, client):
    """Restricted or revoked after the report ran: its result, CSV and page are refused
    from the next request; the restriction lifted, they are served again."""
    from accounts.models import Grant

    grant = give(alice, "transactions", "read")
    api = client_for(alice)
    report = run_reports(api, {"report_name": "spend-per-country", "params": {}}).json()
    result, csv_url = report["url"] + "result/", f"/api/v1/reports/{report['id']}/result.csv"
    assert api.get(result).status_code == 200 and api.get(csv_url).status_code == 200
    client.force_login(alice)

    Grant.objects.filter(pk=grant.pk).update(row_filter={"country": ["FR"]})
    for url in (result, csv_url):
        refused = api.get(url)
        assert refused.status_code == 403 and refused.json()["code"] == "restricted_grant"
    page = client.get(f"/reports/{report['id']}/")
    # The 403 page holds random tokens (CSRF): look for a rendered cell, not two letters.
    assert page.status_code == 403 and b"<svg" not in page.content
    assert b"<td>DE</td>" not in page.content and b"<tbody>" not in page.content

    Grant.objects.filter(pk=grant.pk).update(row_filter=None)
    assert api.get(result).status_code == 200
    served = client.get(f"/reports/{report['id']}/")
    assert served.status_code == 200 and b"<td>DE</td>" in served.content
    Grant.objects.filter(pk=grant.pk).delete()
    assert api.get(result).status_code == 403 and api.get(csv_url).status_code == 403
