"""Rankings over a range, computed once and kept until a day of the range changes.

A ranking over a range (`top-products`, `spent-per-user-type` with `since`/`until`)
adds up every group's day rows: ~630,000 groups for 7 days of 10,000,000
transactions, seconds of work that no index avoids. Its pages and repeats, though,
ask the same question again: the first ranks of the answer (KEEP[kind]) and the number
of groups are stored (RangeResult, RangeRow) under the range's *stamp*, the sum of the
`metrics_day_changes` counters of its days. Every merge that changes a day's completed
transactions adds 1 to that day's counter in its own transaction
(metrics.aggregates.apply_version), so the sum only grows: a stored ranking whose stamp
is the current one is exactly what summing again would give, and one over a day
that changed is never read again (the next request computes a new one).

Reading the stamp before computing keeps this safe under concurrent merges: the
ranking then sees at least the data the stamp counts, so at worst it is stored under
a stamp already out of date and never served.

What is stored is bounded: only a range whose edges fall on the granularity
(METRICS_RANGE_GRANULARITY_SECONDS; an inclusive `until` one microsecond short of it
counts as on it) is stored, so a caller varying `since` by a microsecond cannot store
a ranking per request; any other range is ranked for the page asked, exactly, and
nothing is kept. At most METRICS_RANGE_CACHE_MAX rankings are kept (the oldest go
first) besides those older than MAX_AGE.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection, transaction

TOP_PRODUCTS = "top-products"
SPENT_PER_USER_TYPE = "spent-per-user-type"
# Ranks kept per range: x's maximum for top products; 500 pages of 10 for the spend
# ranking (deeper pages sum every group again, uncached).
KEEP = {TOP_PRODUCTS: 1_000, SPENT_PER_USER_TYPE: 5_000}
# Rankings computed more than this long ago are dropped when a new one is stored.
MAX_AGE = dt.timedelta(days=1)
PRUNE_BATCH = 50
ATTEMPTS = 5


def days_of(split) -> tuple[dt.date, dt.date]:
    """The first and last day whose data the range reads (whole days and partial edges)."""
    first = split.first if split.first is not None else dt.date.min
    last = split.last if split.last is not None else dt.date.max
    if split.first is not None and split.first > (split.last or dt.date.max):
        first, last = dt.date.max, dt.date.min  # inside one day: the edges only
    for start, end in split.edges:
        first = min(first, start.astimezone(dt.UTC).date())
        last = max(last, (end - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date())
    return first, last


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)


def _on_grain(t: dt.datetime, grain: dt.timedelta) -> bool:
    """`t`, or `t` less one microsecond (the exclusive end of an inclusive `until` on the
    grain), is a multiple of `grain`: at most two keys per grain and edge."""
    return any((u - EPOCH) % grain == dt.timedelta(0) for u in (t, t - MICROSECOND))


def storable(split) -> bool:
    """Whether a ranking of `split` may be stored: every edge on the granularity."""
    grain = dt.timedelta(seconds=max(1, settings.METRICS_RANGE_GRANULARITY_SECONDS))
    return all(_on_grain(t, grain) for edge in split.edges for t in edge)


def range_key(split, scope: str = "all") -> str:
    """The range (and the scope of rows, metrics.scopes, when not every row) a kept
    ranking answers for."""
    edges = ";".join(f"{s.isoformat()}/{e.isoformat()}" for s, e in split.edges)
    return f"{split.first}|{split.last}|{edges}" + ("" if scope == "all" else f"@{scope}")


def ranked(
    kind: str, split, groups: str, params: list, order: str, scope: str = "all"
) -> tuple[int, int]:
    """(result id, number of groups) of the ranking of `kind` over `split`, stored first
    if no ranking of the current stamp is. `groups` is the query (with `params`) of every
    group of the range as (key, key2, total, transactions); `order` ranks them, ties
    included."""
    key = range_key(split, scope)
    first, last = days_of(split)
    with connection.cursor() as cursor:
        # Another request may store the same ranking meanwhile (the INSERT's conflict
        # waits for it, then its result is read), or drop it as stale right after (a
        # merge committed): then the stamp is read again.
        for _ in range(ATTEMPTS):
            cursor.execute(
                "SELECT s.stamp, r.id, r.row_count FROM (SELECT coalesce(sum(changes), 0) "
                "AS stamp FROM metrics_day_changes WHERE day >= %s AND day <= %s) s "
                "LEFT JOIN metrics_range_result r ON r.kind = %s AND r.range_key = %s "
                "AND r.stamp = s.stamp",
                [first, last, kind, key],
            )
            stamp, result, count = cursor.fetchone()
            if result is not None:
                return result, int(count)
            with transaction.atomic():
                cursor.execute(
                    "INSERT INTO metrics_range_result "
                    "(kind, range_key, stamp, row_count, created_at) "
                    "VALUES (%s, %s, %s, 0, now()) "
                    "ON CONFLICT (kind, range_key, stamp) DO NOTHING RETURNING id",
                    [kind, key, stamp],
                )
                created = cursor.fetchone()
                if created is not None:
                    _store(cursor, created[0], groups, params, order, KEEP[kind])
                    _prune(cursor, kind, key, stamp)
            found = _find(cursor, kind, key, stamp)
            if found:
                return found
    raise RuntimeError(f"the {kind} ranking of {key} changed {ATTEMPTS} times while read")


def ranked_page(
    kind: str,
    split,
    groups: str,
    params: list,
    order: str,
    offset: int,
    limit: int,
    scope: str = "all",
) -> tuple[list[tuple], int]:
    """(rows of ranks offset+1 .. offset+limit, number of groups). A ranking found stale
    and dropped by another request between finding it and reading its page (a merge
    committed meanwhile) is found or computed again, once."""
    if not storable(split):
        return _ranked_directly(groups, params, order, offset, limit)
    for _ in range(2):
        result, count = ranked(kind, split, groups, params, order, scope)
        rows = page(result, offset, limit)
        if len(rows) == max(0, min(limit, count - offset)):
            break
    return rows, count


def _ranked_directly(groups: str, params: list, order: str, offset: int, limit: int):
    """(rows of ranks offset+1 .. offset+limit, number of groups), summed now, not kept."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key, key2, total, transactions, count(*) OVER () AS groups "
            f"FROM ({groups}) g ORDER BY {order} LIMIT %s OFFSET %s",
            [*params, limit, offset],
        )
        rows = cursor.fetchall()
        if rows:
            return [r[:4] for r in rows], int(rows[0][4])
        cursor.execute(f"SELECT count(*) FROM ({groups}) g", params)
        return [], int(cursor.fetchone()[0])


def _store(cursor, result: int, groups: str, params: list, order: str, keep: int) -> None:
    """The first `keep` ranks of `groups` into metrics_range_row, and how many groups the
    range has into the result's row_count, in one statement."""
    cursor.execute(
        f"WITH top AS (SELECT *, count(*) OVER () AS groups FROM ({groups}) g "
        f"ORDER BY {order} LIMIT %s), "
        "kept AS (INSERT INTO metrics_range_row (result_id, rank, key, key2, total, transactions) "
        f"SELECT %s, row_number() OVER (ORDER BY {order}), key, key2, total, transactions "
        "FROM top) "
        "UPDATE metrics_range_result SET row_count = coalesce((SELECT max(groups) FROM top), 0) "
        "WHERE id = %s",
        [*params, keep, result, result],
    )


def page(result_id: int, offset: int, limit: int) -> list[tuple]:
    """(key, key2, total, transactions) of ranks offset+1 .. offset+limit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key, key2, total, transactions FROM metrics_range_row "
            "WHERE result_id = %s AND rank > %s AND rank <= %s ORDER BY rank",
            [result_id, offset, offset + limit],
        )
        return cursor.fetchall()


def _find(cursor, kind: str, key: str, stamp: int) -> tuple[int, int] | None:
    cursor.execute(
        "SELECT id, row_count FROM metrics_range_result "
        "WHERE kind = %s AND range_key = %s AND stamp = %s",
        [kind, key, stamp],
    )
    row = cursor.fetchone()
    return (row[0], int(row[1])) if row else None


def _prune(cursor, kind: str, key: str, stamp: int) -> None:
    """Drop the same range's stale rankings, a batch of old ones of any range, and the
    oldest beyond METRICS_RANGE_CACHE_MAX."""
    cursor.execute(
        "SELECT id FROM metrics_range_result WHERE (kind = %s AND range_key = %s "
        "AND stamp < %s) OR created_at < now() - %s ORDER BY id LIMIT %s",
        [kind, key, stamp, MAX_AGE, PRUNE_BATCH],
    )
    stale = [r[0] for r in cursor.fetchall()]
    cursor.execute(
        "SELECT id FROM metrics_range_result ORDER BY id DESC OFFSET %s LIMIT %s",
        [max(1, settings.METRICS_RANGE_CACHE_MAX), PRUNE_BATCH],
    )
    stale += [r[0] for r in cursor.fetchall()]
    if stale:
        cursor.execute("DELETE FROM metrics_range_row WHERE result_id = ANY(%s)", [stale])
        cursor.execute("DELETE FROM metrics_range_result WHERE id = ANY(%s)", [stale])
