"""Where an ingestion run's Spark job ran: the master and its executors (issue 23)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ingestion", "0010_runs_statuses"),
    ]

    operations = [
        migrations.AddField(
            model_name="ingestionrun",
            name="spark_executors",
            field=models.PositiveIntegerField(
                blank=True, help_text="The executors its job had; 1 in local mode.", null=True
            ),
        ),
        migrations.AddField(
            model_name="ingestionrun",
            name="spark_master",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The Spark master its job ran on (`local[*]`, `spark://host:7077`).",
                max_length=200,
            ),
        ),
    ]
