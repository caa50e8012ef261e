"""Cheaper aggregate updates: each merge upserts thousands of these rows.

- metrics_product_total: its unique `product_id` becomes a constraint, which drops the
  LIKE (pattern ops) index that `unique=True` built beside it; no query used it.
- The day and minute tables keep a fifth of each page free, so that an update of a
  row's sums (no indexed column changes) stays on its page: a HOT update, no index
  written. The totals cannot: their rank index holds the sum.
"""

from django.db import migrations, models

HOT = ("metrics_product_day", "metrics_user_type_day", "metrics_minute")


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0006_range_results'),
    ]

    operations = [
        migrations.AlterField(
            model_name='producttotal',
            name='product_id',
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name='producttotal',
            constraint=models.UniqueConstraint(fields=('product_id',), name='mpt_key'),
        ),
        migrations.RunSQL(
            [f"ALTER TABLE {table} SET (fillfactor = 80)" for table in HOT],
            [f"ALTER TABLE {table} RESET (fillfactor)" for table in HOT],
        ),
    ]
