"""Issue 24's low items and queued work: what anonymous callers learn, who reads /metrics,
the audit's client address, production's cookie and TLS settings, formulas in CSV
exports, grants no wider than their giver's, and limits on the work users can queue."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Grant
from lineage.models import RequestLog
from tests.support.factories import client_for, give, make_user

ROOT = Path(__file__).resolve().parents[2]


# -- /healthz: names and states only ---------------------------------------------------------


@pytest.mark.django_db
def test_healthz_tells_anonymous_callers_names_and_states_only(settings):
    settings.REDIS_URL = "redis://secret-user:pw@127.0.0.1:1/0"
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    followers = body.pop("followers")
    assert body.pop("spark") == {"mode": "local"}  # a cluster's master: to staff only
    assert body == {
        "status": "unavailable",
        "failing": ["redis", "broker"],
        "checks": {"database": "ok", "redis": "error", "broker": "error"},
    }
    # The followers' lags: names and two numbers each, no version (the catalog's, to readers).
    assert set(followers) == {"search", "metrics"}
    for per_resource in followers.values():
        for lag in per_resource.values():
            assert set(lag) == {"lag_versions", "lag_seconds"}
            assert all(isinstance(v, int | float) for v in lag.values())
    for leak in ("127.0.0.1", "secret-user", "Error", ":1"):
        assert leak not in response.content.decode()


# -- /metrics: a token or networks named by the operator ---------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.7", "::1"])
def test_metrics_trust_no_address_by_default(settings, address):
    settings.METRICS_TOKEN = "metrics-s3cret"
    client = APIClient()
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 403
    good = client.get("/metrics", REMOTE_ADDR=address, HTTP_AUTHORIZATION="Bearer metrics-s3cret")
    assert good.status_code == 200


# -- the audit's client address: the request log's rule ----------------------------------------


def test_the_audit_log_takes_the_request_logs_client_address(staff, alice):
    admin = client_for(staff)
    body = {"user": "alice", "resource": "sales", "privilege": "read"}
    response = admin.post(
        "/api/v1/grants/",
        body,
        format="json",
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="6.6.6.6",
    )
    assert response.status_code == 201, response.json()
    entry = LogEntry.objects.get(content_type__model="grant", object_pk=str(response.json()["id"]))
    logged = RequestLog.objects.filter(path="/api/v1/grants/", method="POST").latest("id")
    assert entry.remote_addr == logged.ip == "10.0.0.5"


# -- production settings: secure cookies, HSTS, TLS ---------------------------------------------


def production_settings(**extra) -> dict:
    names = [
        "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT", "SECURE_CONTENT_TYPE_NOSNIFF",
        "SESSION_COOKIE_HTTPONLY", "SECURE_PROXY_SSL_HEADER", "METRICS_ALLOWED_NETWORKS",
    ]  # fmt: skip
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {names!r}}}))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datalake.settings",
        "DEBUG": "false",
        "SECRET_KEY": "x" * 50,
        "LAKE_MASKING_KEY": "y" * 50,
        "AUDIT_SIGNING_KEY": "z" * 50,
        **extra,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_outside_debug_cookies_are_secure_and_hsts_is_on():
    got = production_settings()
    assert got["SESSION_COOKIE_SECURE"] is True and got["CSRF_COOKIE_SECURE"] is True
    assert got["SECURE_HSTS_SECONDS"] >= 31536000 and got["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert got["SECURE_SSL_REDIRECT"] is True and got["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert got["SECURE_PROXY_SSL_HEADER"] is None  # trusted only when the operator says so
    assert got["METRICS_ALLOWED_NETWORKS"] == []
    behind_proxy = production_settings(SECURE_SSL_REDIRECT="false", SECURE_PROXY_SSL="true")
    assert behind_proxy["SECURE_SSL_REDIRECT"] is False
    assert behind_proxy["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


# -- CSV exports: no formulas ------------------------------------------------------------------


def test_csv_cells_that_would_be_formulas_are_neutralised():
    from datalake.platform.csvsafe import safe_cell

    for dangerous in ("=1+2", "+1", "-cmd", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("x")'):
        assert safe_cell(dangerous) == "'" + dangerous
    for harmless in ("FR", "", "a=b", 12, -5, 3.5, None):
        assert safe_cell(harmless) == harmless


def test_a_report_csv_carries_no_formula(alice, lake, django_capture_on_commit_callbacks):
    from datalake.runs.models import RunStatus
    from metrics.models import Report
    from metrics.reports import ReportType
    from metrics.reports.services import report_execute

    class Formulas(ReportType):
        name = "test-formulas"
        description = "Cells that a spreadsheet would run."
        resources = ()
        columns = ("name", "amount")

        def rows(self, params):
            yield {"name": '=HYPERLINK("http://evil.example","x")', "amount": -5}
            yield {"name": "@SUM(1)", "amount": 1}

    report = Report.objects.create(report_name="test-formulas", params={}, requested_by=alice)
    assert report_execute(report.pk).status == RunStatus.SUCCEEDED
    text = (lake / "reports" / f"{report.pk}.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1:] == [['\'=HYPERLINK("http://evil.example","x")', "-5"], ["'@SUM(1)", "1"]]


# -- a grant is no wider than its giver's ----------------------------------------------------


@pytest.fixture
def holder(db):
    """dora holds `grant` and a restricted `read` on transactions: FR rows, three
    columns, user_id masked."""
    dora = make_user("dora")
    give(dora, "transactions", "grant")
    give(
        dora, "transactions", "read", row_filter={"country": ["FR"]},
        columns=["transaction_id", "user_id", "amount"], masked=["user_id"],
    )  # fmt: skip
    return dora


def post_grant(client, **body):
    return client.post("/api/v1/grants/", {"user": "alice", "resource": "transactions", **body},
                       format="json")  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"privilege": "read"},  # unrestricted
        {
            "privilege": "read",
            "row_filter": {"country": ["FR"]},
            "columns": ["transaction_id", "amount"],
        },  # user_id not masked: fine, hidden
        {
            "privilege": "read",
            "row_filter": {"country": ["FR", "DE"]},
            "columns": ["amount"],
        },  # more rows
        {
            "privilege": "read",
            "row_filter": {"country": ["FR"]},
            "columns": ["amount", "country"],
        },  # a column it cannot see
        {
            "privilege": "read",
            "row_filter": {"country": ["FR"]},
            "columns": ["user_id"],
        },  # user_id in clear
    ],
)
def test_a_restricted_holder_cannot_give_more_than_it_holds(holder, alice, body):
    response = post_grant(client_for(holder), **body)
    allowed = body.get("columns") == ["transaction_id", "amount"]
    if allowed:
        assert response.status_code == 201, response.json()
        return
    assert response.status_code == 403, response.json()
    assert response.json()["code"] == "grant_wider_than_held"
    assert not Grant.objects.filter(user=alice).exists()


def test_a_holder_gives_what_it_holds_or_less(holder, alice):
    api = client_for(holder)
    same = post_grant(
        api, privilege="read", row_filter={"country": ["FR"]},
        columns=["transaction_id", "user_id", "amount"], masked=["user_id"],
    )  # fmt: skip
    assert same.status_code == 201, same.json()
    narrower = post_grant(
        api, privilege="read", row_filter={"country": ["FR"], "payment_method": ["card"]},
        columns=["user_id"], masked=["user_id"],
    )  # fmt: skip
    assert narrower.status_code == 201, narrower.json()
    # Restricted, it gives no `grant` (a delegate could give an unrestricted read) and,
    # masked, no `write` (a write unmasks): review attack 1.
    for privilege in ("grant", "write"):
        refused = post_grant(api, privilege=privilege)
        assert refused.status_code == 403, refused.json()
        assert refused.json()["code"] == "grant_wider_than_held"


def test_a_row_filtered_unmasked_holder_gives_write_not_grant(db, alice):
    dora = make_user("dora")
    give(dora, "transactions", "grant")
    give(dora, "transactions", "read", row_filter={"country": ["FR"]})
    api = client_for(dora)
    assert post_grant(api, privilege="write").status_code == 201
    assert post_grant(api, privilege="grant").json()["code"] == "grant_wider_than_held"


def test_a_restricted_holder_cannot_drop_its_own_restriction(holder, alice):
    api = client_for(holder)
    own = Grant.objects.get(user=holder, privilege="read")
    refused = api.delete(f"/api/v1/grants/{own.pk}/")
    assert refused.status_code == 403 and refused.json()["code"] == "own_grant"
    assert Grant.objects.filter(pk=own.pk).exists()
    assert post_grant(api, privilege="read", user="dora").status_code == 403


# -- ranged metrics: stored rankings only on the granularity, and a bounded number --------------


def stored_rankings() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM metrics_range_result")
        return cursor.fetchone()[0]


@pytest.fixture
def metric_data(db):
    from tests.support.lake import merge, row

    rows = [row(i) for i in range(40)]
    merge(rows)
    return {r["transaction_id"]: r for r in rows}


def test_odd_ranges_store_no_ranking_and_stay_exact(alice, metric_data, settings):
    from tests.support.lake import D0, completed

    give(alice, "transactions", "read")
    api = client_for(alice)
    settings.METRICS_RANGE_GRANULARITY_SECONDS = 60
    url = "/api/v1/metrics/top-products/"
    until = D0 + dt.timedelta(days=4)
    for micro in range(2, 7):  # five ranges a microsecond apart: none is stored
        since = D0 + dt.timedelta(hours=7, microseconds=micro)
        body = api.get(url, {"x": 3, "since": since.isoformat(), "until": until.isoformat()})
        assert body.status_code == 200, body.content
        sums = {}
        for r in completed(metric_data, since, until):
            sums[r["product_id"]] = sums.get(r["product_id"], 0) + r["quantity"]
        best = sorted(sums, key=lambda p: (-sums[p], p))[:3]
        assert [(r["product_id"], r["quantity"]) for r in body.json()["results"]] == [
            (p, sums[p]) for p in best
        ]
    assert stored_rankings() == 0
    # On the granularity (an inclusive `until` one microsecond short of it too): stored.
    since = D0 + dt.timedelta(hours=7)
    for end in (until, until - dt.timedelta(microseconds=1)):
        params = {"x": 3, "since": since.isoformat(), "until": end.isoformat()}
        assert api.get(url, params).status_code == 200
    assert stored_rankings() == 2


def test_the_stored_rankings_are_bounded(alice, metric_data, settings):
    from tests.support.lake import D0

    give(alice, "transactions", "read")
    api = client_for(alice)
    settings.METRICS_RANGE_CACHE_MAX = 3
    for hours in range(1, 9):
        since = (D0 + dt.timedelta(hours=hours)).isoformat()
        answer = api.get("/api/v1/metrics/top-products/", {"x": 3, "since": since})
        assert answer.status_code == 200
    assert stored_rankings() <= 3


# -- re-push-all: one at a time ----------------------------------------------------------------


def test_a_second_repush_all_is_refused_while_one_runs(staff):
    from ingestion.models import RepushJob, RunStatus

    api = client_for(staff)
    first = api.post("/api/v1/pipeline/repush-all/", {"resource": "transactions"}, format="json")
    assert first.status_code == 202, first.json()
    second = api.post("/api/v1/pipeline/repush-all/", {"resource": "transactions"}, format="json")
    assert second.status_code == 409, second.json()
    assert second.json()["code"] == "repush_all_running"
    assert str(first.json()["id"]) in second.json()["detail"]
    assert RepushJob.objects.count() == 1
    RepushJob.objects.update(status=RunStatus.SUCCEEDED)
    third = api.post("/api/v1/pipeline/repush-all/", {"resource": "transactions"}, format="json")
    assert third.status_code == 202


# -- reports: a per-user limit of running ones ---------------------------------------------------


def test_a_user_runs_a_bounded_number_of_reports_at_once(alice, settings, db):
    from datalake.runs.models import RunStatus
    from metrics.models import Report

    give(alice, "transactions", "read")
    settings.REPORTS_MAX_RUNNING_PER_USER = 2
    api, other = client_for(alice), client_for(make_user("erin"))
    give(User.objects.get(username="erin"), "transactions", "read")
    body = {"report_name": "spend-per-country", "params": {}}
    for _ in range(2):
        assert api.post("/api/v1/reports/", body, format="json").status_code == 202
    refused = api.post("/api/v1/reports/", body, format="json")
    assert refused.status_code == 429, refused.json()
    assert refused.json()["code"] == "too_many_running_reports"
    assert set(refused.json()) >= {"detail", "code"}
    assert other.post("/api/v1/reports/", body, format="json").status_code == 202  # per user
    Report.objects.filter(requested_by=alice).update(status=RunStatus.SUCCEEDED)
    assert api.post("/api/v1/reports/", body, format="json").status_code == 202


# -- queues: ingestion, reports and ML apart, each with its workers -------------------------------

QUEUES = {
    "ingestion.run": "ingestion",
    "ingestion.run_batch": "ingestion",
    "ingestion.pull": "ingestion",
    "ingestion.scan_landing": "ingestion",
    "pipeline.repush_all": "ingestion",
    "reports.run": "reports",
    "ml.train": "ml",
    "audit.seal": "audit",
    "audit.retention": "audit",
}


def queue_of(name: str) -> str:
    from datalake.celery import app

    route = app.amqp.router.route({}, name, (), {})
    return route["queue"].name


def test_ingestion_reports_and_ml_have_queues_of_their_own():
    from datalake.celery import app

    app.loader.import_default_modules()
    assert set(QUEUES) <= set(app.tasks)
    assert {name: queue_of(name) for name in QUEUES} == QUEUES
    for housekeeping in ("reports.expire_stale", "ingestion.recover_stalled"):
        assert queue_of(housekeeping) == "celery"


def consumed(command: list[str]) -> set[str]:
    """The queues a `celery worker` command line consumes (-Q, or Celery's default)."""
    if "-Q" not in command:
        return {"celery"}
    return set(command[command.index("-Q") + 1].split(","))


def test_make_run_and_compose_start_a_worker_for_every_queue():
    import yaml

    sys.path.insert(0, str(ROOT / "scripts"))
    import run_local

    needed = set(QUEUES.values()) | {"celery"}
    local = [c for c in run_local.processes(8000).values() if "worker" in c]
    assert set().union(*map(consumed, local)) == needed
    assert all(len(consumed(c) & {"ingestion", "reports", "ml"}) <= 1 for c in local)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    workers = [
        s["command"] for s in compose["services"].values() if "worker" in s.get("command", [])
    ]
    assert set().union(*map(consumed, workers)) == needed
    assert all(len(consumed(c) & {"ingestion", "reports", "ml"}) <= 1 for c in workers)


def test_a_user_runs_a_bounded_number_of_trainings_at_once(settings, db):
    from django.utils import timezone

    from metrics.ml.models import Training

    settings.TRAININGS_MAX_RUNNING_PER_USER = 1
    ana = make_user("ana")
    for privilege in ("read", "write"):  # training needs `write` besides `read`
        give(ana, "transactions", privilege)
    api = client_for(ana)
    body = {"model": "product-demand"}
    assert api.post("/api/v1/ml/trainings/", body, format="json").status_code == 202
    refused = api.post("/api/v1/ml/trainings/", body, format="json")
    assert refused.status_code == 429, refused.json()
    assert refused.json()["code"] == "too_many_running_trainings"
    # One queued longer than the task time limit lost its worker: it counts no more.
    old = timezone.now() - dt.timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1)
    Training.objects.filter(requested_by=ana).update(created_at=old)
    assert api.post("/api/v1/ml/trainings/", body, format="json").status_code == 202


def test_a_holder_cannot_revoke_its_own_grant_even_expired(holder):
    """Own grants, live or expired: the check reads them all (an expired grant that is
    extended again would otherwise be gone from under staff)."""
    own = Grant.objects.get(user=holder, privilege="read")
    Grant.objects.filter(pk=own.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    refused = client_for(holder).delete(f"/api/v1/grants/{own.pk}/")
    assert refused.status_code == 403 and refused.json()["code"] == "own_grant"
    assert Grant.objects.filter(pk=own.pk).exists()
