"""Metrics over the rows a restricted grant lets through: scopes.

A caller whose `read` grant on `transactions` carries a row filter gets every metric
computed over the rows it may see. Summing those rows at each request would read millions
of them; instead each distinct row filter (the union of the caller's grants, as the access
layer combines them) is a *scope* (`metrics.models.Scope`) whose five aggregates the
metrics follower keeps beside the plain ones, from the same batches of versions
(`metrics.aggregates.apply_versions`). A scope is built on its first request, from the
table's rows at the follower's position, while that position is locked (the follower
waits, then carries it on); it is dropped when no live grant needs it (`prune`, in the
follower's housekeeping).

Columns: a metric needs some columns (`NEEDS`); one the caller's grant hides is a 403
naming it; a masked key (`user_id`, `product_id`) is answered with its pseudonyms; a
masked measure or filter column (amounts, quantities, timestamps, the status) is refused
like a hidden one (a sum of masked values, or a range over masked dates, would reveal them).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.access.restrictions import Restriction
from datalake.errors import AccessDenied
from datalake.lake import followers
from metrics.selectors import EVERY_ROW, MetricScope, visible_as_of

# The columns each metric reads; the keys may be masked (pseudonyms), the others not.
NEEDS = {
    "spent-last-minutes": ("timestamp", "amount_eur", "status"),
    "spent-per-user-type": ("user_id", "transaction_type", "timestamp", "amount_eur", "status"),
    "top-products": ("product_id", "quantity", "timestamp", "status"),
}
KEYS = frozenset({"user_id", "product_id", "transaction_type"})
logger = logging.getLogger(__name__)
TOUCH_EVERY = dt.timedelta(minutes=1)


def rows_key(rows) -> str:
    """The row filter's fingerprint: the same rows whatever the order of grants and values."""
    filters = sorted(
        json.dumps({k: sorted({str(v) for v in values}) for k, values in f.items()}, sort_keys=True)
        for f in rows
    )
    return hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:32]


def filter_sql(rows) -> str:
    """The row filter as literal SQL over `transactions`' columns, compiled by the same
    Q the rows endpoint filters with (`datalake.query.backends.row_filter_q`), its values
    quoted by psycopg. Its `%` are doubled: every statement it goes into is run with
    parameters (a list, maybe empty), which turns them back into one."""
    from datalake.models import Transaction
    from datalake.query.backends import row_filter_q

    query = Transaction.objects.filter(row_filter_q(rows)).query
    compiler = query.get_compiler(connection=connection)
    sql, params = compiler.compile(query.where)
    return connection.ops.compose_sql(sql, params).replace("%", "%%")


def check_columns(restriction: Restriction, metric: str, *, key_filtered: bool = False) -> None:
    """403 naming the columns `metric` needs that the grant hides (or masks, but a key)."""
    needed = NEEDS[metric]
    restriction.refuse_hidden(needed, f"compute {metric} over", masked_too=False)
    blocked = [n for n in needed if n in restriction.masked and (n not in KEYS or key_filtered)]
    if blocked:
        raise AccessDenied(
            f"Your grant masks column(s) {', '.join(sorted(blocked))}, which {metric} "
            "sums, filters or orders by.",
            code="column_hidden",
        )


def scope_for(restriction: Restriction) -> MetricScope:
    """The aggregates that answer for this restriction's rows (built on first use)."""
    if restriction.rows is None:
        return EVERY_ROW
    from metrics.models import Scope

    key = rows_key(restriction.rows)
    found = Scope.objects.filter(key=key).values_list("pk", "last_used_at").first()
    if found is None:
        found = _build(restriction.rows, key)
    elif timezone.now() - found[1] > TOUCH_EVERY:
        Scope.objects.filter(pk=found[0]).update(last_used_at=timezone.now())
    return MetricScope(found[0], filter_sql(restriction.rows), key)


def _build(rows, key: str) -> tuple[int, dt.datetime]:
    """Make the scope's aggregates from the rows at the metrics follower's position, with
    that position locked: the follower's next batch (or a build racing this one) waits.

    The rows the filter lets through are read once, into a temporary table the five
    upserts share. It reads a share of the whole table (seconds on 10M rows, once per
    row filter), so it runs under METRICS_SCOPE_BUILD_TIMEOUT_MS rather than the API's
    statement time limit."""
    from metrics.aggregates import AGGREGATES, DELTA_COLUMNS, scoped_table, scoped_upsert_sql
    from metrics.models import Scope

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                [str(settings.METRICS_SCOPE_BUILD_TIMEOUT_MS)],
            )
        position = followers.locked_position("metrics", "transactions")
        existing = Scope.objects.filter(key=key).values_list("pk", "last_used_at").first()
        if existing is not None:  # built while this request waited for the lock
            return existing
        now = timezone.now()
        scope = Scope.objects.create(
            key=key,
            row_filter=[{k: list(v) for k, v in f.items()} for f in rows],
            built_at_version=position,
            last_used_at=now,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE metrics_scope_rows ON COMMIT DROP AS "
                f"SELECT {DELTA_COLUMNS}, 1 AS sign "
                f"FROM {visible_as_of(position, filter_sql(rows))}",
                [],
            )
            for spec in AGGREGATES:
                cursor.execute(
                    scoped_upsert_sql(spec, scope.pk, "SELECT * FROM metrics_scope_rows")
                )
            cursor.execute("DROP TABLE metrics_scope_rows")
            # Statistics at once (autovacuum comes later): the rankings' counts are the
            # planner's estimates above LAKE_EXACT_COUNT_LIMIT, as for the plain aggregates.
            for spec in AGGREGATES:
                cursor.execute(f"ANALYZE {scoped_table(spec[0])}")
        logger.info("metrics: scope %s built at version %s", scope.pk, position)
        return scope.pk, now


def needed_keys() -> set[str]:
    """The row filters that `read` grants of `transactions` make (each holder's union of
    grants, as its requests see it): those of users holding a filtered grant directly
    or through a group. Expired grants count until they are deleted (a scope kept a little
    longer costs only its upkeep)."""
    from accounts.access import Access, row_filter_holders

    holders = row_filter_holders("transactions")
    keys = set()
    for user in holders:
        rows = Access(user).restriction("transactions").rows
        if rows is not None:
            keys.add(rows_key(rows))
    return keys


def prune() -> int:
    """Drop the scopes no live grant needs any more (their aggregates go with them)."""
    from metrics.models import Scope

    return Scope.objects.exclude(key__in=needed_keys()).delete()[0]
