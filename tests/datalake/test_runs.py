"""Runs as one framework (datalake/runs/): the claim, the outcome recorded only by the
attempt holding the run, the one beat job with each kind's stall policy, the task base
class, the documented words on the wire and one admin for every kind."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import admin
from django.utils import timezone

from datalake.runs import lifecycle
from datalake.runs.admin import RUN_COLUMNS, RunAdmin
from datalake.runs.models import Run, RunStatus, StallPolicy, run_models
from datalake.runs.tasks import recover_stalled
from ingestion.models import HttpPull, HttpSource, IngestionRun, RepushJob, RepushRequest
from metrics.models import Report, Training
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db

KINDS = {IngestionRun, RepushRequest, RepushJob, Report, Training, HttpPull}


def ago(seconds: float):
    return timezone.now() - dt.timedelta(seconds=seconds)


def test_the_five_kinds_are_runs():
    assert set(run_models()) == KINDS
    for model in KINDS:
        assert issubclass(model, Run)
        assert {f.name for f in model._meta.fields} >= {
            "status", "created_at", "started_at", "finished_at", "heartbeat_at", "attempts",
            "error", "task_id", "claim",
        }  # fmt: skip


def test_one_attempt_claims_a_run_and_only_it_records_the_outcome():
    report = Report.objects.create(report_name="top-products")
    first, second = Report.objects.get(pk=report.pk), Report.objects.get(pk=report.pk)
    assert lifecycle.claim(first, "task-1")
    assert not lifecycle.claim(second, "task-2")  # held, its heartbeat fresh
    first.refresh_from_db()
    assert (first.status, first.attempts, first.task_id) == (RunStatus.RUNNING, 1, "task-1")
    assert first.started_at and first.heartbeat_at
    second.claim = "someone-else"
    assert not lifecycle.succeed(second)  # not its claim
    assert lifecycle.fail(first, "broken")
    assert not lifecycle.succeed(first)  # recorded once
    first.refresh_from_db()
    assert (first.status, first.error) == (RunStatus.FAILED, "broken") and first.finished_at
    assert not lifecycle.claim(Report.objects.get(pk=report.pk), "task-3")  # finished


def test_a_run_whose_heartbeat_stopped_is_claimed_again(settings):
    settings.RUN_STALL_SECONDS = 60
    pull = HttpPull.objects.create(source=HttpSource.objects.create(name="products"))
    assert lifecycle.claim(pull, "task-1")
    HttpPull.objects.filter(pk=pull.pk).update(heartbeat_at=ago(120))
    again = HttpPull.objects.get(pk=pull.pk)
    assert lifecycle.claim(again, "task-2")
    assert again.attempts == 2 and again.claim != pull.claim
    assert not lifecycle.succeed(pull)  # the attempt given up for dead records nothing
    assert lifecycle.succeed(again)


def test_execute_records_the_bodys_outcome():
    def boom(run):
        raise ValueError("on purpose")

    report = Report.objects.create(report_name="top-products")
    done = lifecycle.execute(Report, report.pk, boom, task_id="t")
    assert (done.status, done.error) == (RunStatus.FAILED, "ValueError: on purpose")
    assert lifecycle.execute(Report, report.pk, lambda run: None).status == RunStatus.FAILED
    other = Report.objects.create(report_name="top-products")
    assert lifecycle.execute(Report, other.pk, lambda run: None).status == RunStatus.SUCCEEDED
    skipped = Report.objects.create(report_name="top-products")
    assert lifecycle.execute(Report, skipped.pk, lifecycle.skip).status == RunStatus.SKIPPED


def test_one_beat_job_recovers_every_kind_by_its_policy(
    settings, django_capture_on_commit_callbacks
):
    settings.RUN_STALL_SECONDS = 60
    settings.REPORT_TIMEOUT = 600
    settings.INGESTION_STALL_SECONDS = 30
    stale = {"status": RunStatus.RUNNING, "heartbeat_at": ago(3600), "claim": "dead"}
    fresh = {"status": RunStatus.RUNNING, "heartbeat_at": timezone.now(), "claim": "alive"}
    old_report = Report.objects.create(report_name="top-products")
    Report.objects.filter(pk=old_report.pk).update(created_at=ago(3600))
    new_report = Report.objects.create(report_name="top-products")
    job = RepushJob.objects.create(**stale)
    streaming = RepushJob.objects.create(**fresh)
    waiting_for_consumer = RepushJob.objects.create(status=RunStatus.RUNNING)  # no heartbeat
    training = Training.objects.create(model_name="product-demand", attempts=1, **stale)
    worn = Training.objects.create(model_name="product-demand", attempts=3, **stale)
    pull = HttpPull.objects.create(source=HttpSource.objects.create(name="products"), **stale)
    run = IngestionRun.objects.create(source="transactions", path="a.jsonl", **stale)

    with django_capture_on_commit_callbacks() as sent:
        recovered = recover_stalled()
    assert recovered == {
        "metrics.Report": [old_report.pk],
        "ingestion.RepushJob": [job.pk],
        "metrics.Training": [training.pk, worn.pk],
        "ingestion.HttpPull": [pull.pk],
        "ingestion.IngestionRun": [run.pk],
    }
    assert len(sent) == 2  # the training's and the ingestion run's new tasks
    state = lambda model, pk: model.objects.values_list("status", flat=True).get(pk=pk)  # noqa: E731
    assert state(Report, old_report.pk) == RunStatus.FAILED  # reports: failed (expired)
    assert "worker" in Report.objects.get(pk=old_report.pk).error
    assert state(Report, new_report.pk) == RunStatus.QUEUED
    assert state(RepushJob, job.pk) == RunStatus.FAILED
    assert state(RepushJob, streaming.pk) == state(RepushJob, waiting_for_consumer.pk)
    assert state(RepushJob, streaming.pk) == RunStatus.RUNNING
    requeued = Training.objects.get(pk=training.pk)  # trainings: queued again...
    assert (requeued.status, requeued.claim) == (RunStatus.QUEUED, "")
    assert requeued.task_id != ""
    assert state(Training, worn.pk) == RunStatus.FAILED  # ... up to max_attempts
    assert state(HttpPull, pull.pk) == RunStatus.FAILED
    assert state(IngestionRun, run.pk) == RunStatus.QUEUED  # ingestion: queued again
    with django_capture_on_commit_callbacks():
        assert recover_stalled() == {}


def test_the_kinds_keep_their_recovery():
    policies = {model: model.stall_policy for model in KINDS}
    assert policies == {
        IngestionRun: StallPolicy.OWN,  # requeued with the rest of its batch
        RepushRequest: StallPolicy.OWN,  # sent again
        RepushJob: StallPolicy.FAIL,
        Report: StallPolicy.FAIL,  # expired
        Training: StallPolicy.REQUEUE,
        HttpPull: StallPolicy.FAIL,
    }


def test_the_task_base_fails_the_runs_of_a_task_that_died():
    from celery import current_app

    current_app.loader.import_default_modules()
    task = current_app.tasks["reports.run"]
    report = Report.objects.create(report_name="top-products")
    lifecycle.claim(report, "task-9")
    task.on_failure(TimeoutError("hard time limit"), "task-9", (report.pk,), {}, None)
    report.refresh_from_db()
    assert (report.status, report.error) == (RunStatus.FAILED, "TimeoutError: hard time limit")


def test_run_tasks_keep_their_names_and_beat_runs_one_recovery(settings):
    from celery import current_app

    from datalake.runs.tasks import RunTask

    current_app.loader.import_default_modules()
    for name in ("ingestion.run", "ingestion.run_batch", "ingestion.pull", "pipeline.repush_all",
                 "reports.run", "ml.train"):  # fmt: skip
        assert isinstance(current_app.tasks[name], RunTask), name
    for old in ("ingestion.recover_stalled", "reports.expire_stale",
                "pipeline.resend_stuck_repushes", "runs.recover_stalled"):  # fmt: skip
        assert old in current_app.tasks  # queued messages are still understood
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "runs.recover_stalled" in scheduled
    assert not scheduled & {"ingestion.recover_stalled", "reports.expire_stale",
                            "pipeline.resend_stuck_repushes"}  # fmt: skip


def test_the_openapi_enums_show_the_documented_words():
    from drf_spectacular.generators import SchemaGenerator

    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]

    def enum_of(component: str) -> list[str]:
        status = schemas[component]["properties"]["status"]
        ref = status.get("$ref") or status["allOf"][0]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]["enum"]

    assert enum_of("Report") == ["running", "completed", "error"]
    assert enum_of("Repush") == ["pushed", "processed", "failed"]
    assert enum_of("RepushJob") == ["running", "completed", "failed"]
    assert enum_of("Training") == ["queued", "running", "succeeded", "failed"]
    assert enum_of("IngestionRun") == ["queued", "running", "succeeded", "failed", "skipped"]


def test_every_run_kind_has_the_same_admin_columns_and_filters(client):
    staff = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(staff)
    for model in KINDS:
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, RunAdmin), model
        columns = model_admin.get_list_display(None)
        assert columns[: len(RUN_COLUMNS)] == RUN_COLUMNS
        assert model_admin.get_list_filter(None)[:2][0] == "status"
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert client.get(url).status_code == 200, url
        assert client.get(url, {"status__exact": "failed"}).status_code == 200, url


@pytest.mark.django_db
def test_a_repush_job_that_streamed_is_never_claimed_again():
    """Once its records are on the topic, a job waits for the consumer with no heartbeat:
    a redelivered message must not claim it and stream the table a second time."""
    job = RepushJob.objects.create(resource="transactions")
    assert lifecycle.claim(job, "first")
    RepushJob.objects.filter(pk=job.pk).update(heartbeat_at=None)  # streamed, waiting
    again = RepushJob.objects.get(pk=job.pk)
    assert not lifecycle.claim(again, "redelivered")
    assert RepushJob.objects.get(pk=job.pk).task_id == "first"
