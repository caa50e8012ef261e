from django.db import migrations


class Migration(migrations.Migration):
    """Runs as one framework (datalake/runs/): a re-push's `processed_at` is its run's
    `finished_at` (the API still calls it `processed_at`)."""

    dependencies = [("ingestion", "0007_reject_fields")]

    operations = [
        migrations.RenameField("repushrequest", "processed_at", "finished_at"),
    ]
