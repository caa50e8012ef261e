"""The request id of each stored request (X-Request-ID), indexed for `?request_id=`.

Adding the column is instant (PostgreSQL stores a constant default in the catalog);
the index is built CONCURRENTLY, so a large log stays writable meanwhile, hence a
non-atomic migration. The append-only trigger (0002) is untouched.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("lineage", "0003_version")]

    operations = [
        migrations.AddField(
            model_name="requestlog",
            name="request_id",
            field=models.CharField(blank=True, db_default="", max_length=64),
        ),
        AddIndexConcurrently(
            model_name="requestlog",
            index=models.Index(fields=["request_id"], name="reqlog_request_id"),
        ),
    ]
