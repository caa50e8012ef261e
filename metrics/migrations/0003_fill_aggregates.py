"""Fill the aggregates from the transactions already stored (merges keep them after)."""

from django.db import migrations


def fill(apps, schema_editor):
    from metrics.aggregates import rebuild

    rebuild(tables=("metrics_product_day", "metrics_user_type_day", "metrics_minute"))


class Migration(migrations.Migration):
    dependencies = [("metrics", "0002_reports"), ("datalake", "0002_transaction_tx_valid_from_transaction_tx_valid_to")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
