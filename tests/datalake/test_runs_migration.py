"""The runs' migrations keep every database upgradable: runs recorded with the old
status words (main before datalake/runs/) come out in the runs' vocabulary, and back."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

# The leaf migrations of main before the runs framework.
BEFORE = [("ingestion", "0007_reject_fields"), ("metrics", "0008_training_promotion")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def leaves():
    executor = MigrationExecutor(connection)
    return [
        leaf for leaf in executor.loader.graph.leaf_nodes() if leaf[0] in ("ingestion", "metrics")
    ]


def test_old_statuses_map_to_the_runs_vocabulary_and_back():
    old = migrate(BEFORE)
    now = timezone.now()
    hour_ago = now - dt.timedelta(hours=1)
    Report = old.get_model("metrics", "Report")
    reports = {
        word: Report.objects.create(report_name="top-products", status=word).pk
        for word in ("completed", "error")
    }
    reports["waiting"] = Report.objects.create(report_name="top-products", status="running").pk
    reports["started"] = Report.objects.create(
        report_name="top-products", status="running", started_at=now
    ).pk
    Report.objects.filter(pk=reports["completed"]).update(report_date=hour_ago)
    Request = old.get_model("ingestion", "RepushRequest")
    requests = {
        word: Request.objects.create(
            transaction_id=f"TX-{word}", status=word, original_timestamp=now,
            new_timestamp=now, topic="transactions.raw",
            processed_at=now if word != "pushed" else None,
        ).pk
        for word in ("pushed", "processed", "failed")
    }  # fmt: skip
    Job = old.get_model("ingestion", "RepushJob")
    jobs = {word: Job.objects.create(status=word).pk for word in ("running", "completed", "failed")}
    Training = old.get_model("metrics", "Training")
    training = Training.objects.create(model_name="product-demand", status="succeeded").pk
    Run = old.get_model("ingestion", "IngestionRun")
    run = Run.objects.create(source="transactions", path="a.jsonl", status="skipped").pk

    try:
        new = migrate(leaves())
        status = lambda model, pk: new.get_model(*model).objects.get(pk=pk).status  # noqa: E731
        report = ("metrics", "Report")
        assert {k: status(report, pk) for k, pk in reports.items()} == {
            "completed": "succeeded", "error": "failed", "waiting": "queued", "started": "running",
        }  # fmt: skip
        moved = new.get_model("metrics", "Report").objects.get(pk=reports["completed"])
        assert moved.created_at == hour_ago  # report_date is the run's created_at
        repush = ("ingestion", "RepushRequest")
        assert {k: status(repush, pk) for k, pk in requests.items()} == {
            "pushed": "running", "processed": "succeeded", "failed": "failed",
        }  # fmt: skip
        processed = new.get_model(*repush).objects.get(pk=requests["processed"])
        assert processed.finished_at == now and processed.started_at == processed.created_at
        job = ("ingestion", "RepushJob")
        assert {k: status(job, pk) for k, pk in jobs.items()} == {
            "running": "running", "completed": "succeeded", "failed": "failed",
        }  # fmt: skip
        assert status(("metrics", "Training"), training) == "succeeded"
        assert status(("ingestion", "IngestionRun"), run) == "skipped"

        back = migrate(BEFORE)  # and down again: the old words
        status = lambda model, pk: back.get_model(*model).objects.get(pk=pk).status  # noqa: E731
        assert {k: status(report, pk) for k, pk in reports.items()} == {
            "completed": "completed", "error": "error", "waiting": "running", "started": "running",
        }  # fmt: skip
        assert {k: status(repush, pk) for k, pk in requests.items()} == {
            "pushed": "pushed", "processed": "processed", "failed": "failed",
        }  # fmt: skip
        assert {k: status(job, pk) for k, pk in jobs.items()} == {
            "running": "running", "completed": "completed", "failed": "failed",
        }  # fmt: skip
        assert back.get_model(*repush).objects.get(pk=requests["processed"]).processed_at == now
    finally:
        migrate(leaves())
