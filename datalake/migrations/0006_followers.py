"""Followers (datalake.lake.followers): their positions, and the search follower's file lines.

Until this migration every merge derived its version in its own transaction, so the search
entries and the metrics aggregates of an existing database are exactly at each resource's
current version: each follower starts there, keeping every derived row (starting at 0
would apply every version a second time). A new database has no resources yet: its
followers start at 0 as the first versions arrive.
"""

import django.db.models.deletion
from django.db import migrations, models

# What each follower followed when this migration was written (the search index's
# versioned tables, the metrics aggregates' source).
FOLLOWED = {
    "search": (
        "transactions", "sales", "retail_invoices", "retail_invoice_items",
        "retail_customers", "retail_stock_codes",
    ),
    "metrics": ("transactions",),
}  # fmt: skip

START_AT_CURRENT = """
INSERT INTO lake_follower_position (follower, resource_id, derived_through_version, derived_at)
SELECT %s, r.id, r.current_version, now() FROM datalake_resource r
WHERE r.name = ANY(%s) AND r.current_version > 0
ON CONFLICT (follower, resource_id) DO NOTHING
"""


def start_at_current(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        for follower, resources in FOLLOWED.items():
            cursor.execute(START_AT_CURRENT, [follower, list(resources)])


class Migration(migrations.Migration):

    dependencies = [
        ('datalake', '0005_data_stamps'),
    ]

    operations = [
        migrations.CreateModel(
            name='SearchLine',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('resource', models.CharField(max_length=100)),
                ('version', models.PositiveIntegerField()),
                ('key', models.CharField(max_length=200)),
                ('line', models.PositiveIntegerField()),
            ],
            options={
                'db_table': 'search_lines',
                'indexes': [models.Index(fields=['resource', 'version'], name='search_lines_version')],
            },
        ),
        migrations.CreateModel(
            name='FollowerPosition',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('follower', models.CharField(help_text='`search`, `metrics`, ...', max_length=40)),
                ('derived_through_version', models.PositiveIntegerField(default=0, help_text='Every version up to this one is derived.')),
                ('derived_at', models.DateTimeField(help_text='When the position last moved.', null=True)),
                ('resource', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='follower_positions', to='datalake.resource')),
            ],
            options={
                'db_table': 'lake_follower_position',
                'constraints': [models.UniqueConstraint(fields=('follower', 'resource'), name='follower_position_unique')],
            },
        ),
        migrations.RunPython(start_at_current, migrations.RunPython.noop),
    ]
