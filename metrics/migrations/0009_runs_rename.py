from django.db import migrations


class Migration(migrations.Migration):
    """Runs as one framework (datalake/runs/): a report's `report_date` is its run's
    `created_at` (the API still calls it `report_date`)."""

    dependencies = [("metrics", "0008_training_promotion")]

    operations = [
        migrations.RenameField("report", "report_date", "created_at"),
    ]
