"""Runs as one framework (datalake/runs/): reports take the runs' status vocabulary. The
API keeps the old words (`running`, `completed`, `error`: the serializer maps them)."""

from django.db import migrations

REPORT = {"completed": "succeeded", "error": "failed"}
REPORT_BACK = {"queued": "running", "succeeded": "completed", "failed": "error",
               "skipped": "error"}  # fmt: skip


def forward(apps, schema_editor):
    report = apps.get_model("metrics", "Report")
    for old, new in REPORT.items():
        report.objects.filter(status=old).update(status=new)
    # `running` before a worker took it: queued.
    report.objects.filter(status="running", started_at__isnull=True).update(status="queued")


def backward(apps, schema_editor):
    report = apps.get_model("metrics", "Report")
    for new, old in REPORT_BACK.items():
        report.objects.filter(status=new).update(status=old)


class Migration(migrations.Migration):
    dependencies = [("metrics", "0010_runs_framework")]

    operations = [migrations.RunPython(forward, backward)]
