"""Runs as one framework (datalake/runs/): re-pushes and re-push-all jobs take the runs'
status vocabulary. The API keeps the old words (the serializers map them)."""

from django.db import migrations
from django.db.models import F

# old -> new, per model; backward: the reverse, plus the new states the old lacked.
REPUSH = {"pushed": "running", "processed": "succeeded"}
REPUSH_BACK = {"running": "pushed", "queued": "pushed", "succeeded": "processed",
               "skipped": "failed"}  # fmt: skip
JOB = {"completed": "succeeded"}
JOB_BACK = {"succeeded": "completed", "queued": "running", "skipped": "failed"}


def _map(model, mapping: dict) -> None:
    for old, new in mapping.items():
        model.objects.filter(status=old).update(status=new)


def forward(apps, schema_editor):
    request = apps.get_model("ingestion", "RepushRequest")
    _map(request, REPUSH)
    # A recorded re-push was sent at once: it started when it was recorded.
    request.objects.filter(started_at__isnull=True).update(started_at=F("created_at"), attempts=1)
    _map(apps.get_model("ingestion", "RepushJob"), JOB)


def backward(apps, schema_editor):
    _map(apps.get_model("ingestion", "RepushRequest"), REPUSH_BACK)
    _map(apps.get_model("ingestion", "RepushJob"), JOB_BACK)


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0009_runs_framework")]

    operations = [migrations.RunPython(forward, backward)]
