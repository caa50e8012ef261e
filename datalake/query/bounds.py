"""The limits of every whole number and date the API accepts, in one place.

Python's dates end at 0001-01-01 and 9999-12-31, PostgreSQL's `bigint` at 2**63 - 1 and
DuckDB's at the same: a value at those edges, or one an offset pushes past them (a time
zone, "the end of the day", "`days` days before"), used to reach them as an
OverflowError or a database error, a 500. Every parser of a page number, a count or a
date goes through here and answers a 400 naming the parameter instead.
"""

from __future__ import annotations

import datetime as dt

from datalake.errors import Invalid

# A page number, a count, a size: PostgreSQL's `integer`. A page times a page size (at
# most LAKE_MAX_PAGE_SIZE) stays far inside `bigint`, so no OFFSET overflows.
MAX_WHOLE = 2**31 - 1
# One day inside the calendar at each end: room for a time zone and "until the end of
# the day" without leaving Python's dates.
FIRST_DAY = dt.date(1, 1, 2)
LAST_DAY = dt.date(9999, 12, 30)
FIRST_INSTANT = dt.datetime.combine(FIRST_DAY, dt.time.min, tzinfo=dt.UTC)
LAST_INSTANT = dt.datetime.combine(LAST_DAY, dt.time.max, tzinfo=dt.UTC)
RANGE_TEXT = f"between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}"


def whole_number(raw: str, name: str, *, minimum: int = 1, maximum: int = MAX_WHOLE) -> int:
    """`raw` as an int in [minimum, maximum]; else Invalid (a 400) naming `name`."""
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(maximum))
    if not digits or not minimum <= int(raw) <= maximum:
        raise Invalid(
            {name: [f"Must be a whole number from {minimum} to {maximum}, got {raw[:40]!r}."]}
        )
    return int(raw)


def check_day(day: dt.date) -> dt.date:
    """`day` itself; ValueError when it lies outside [FIRST_DAY, LAST_DAY]."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"Dates must be {RANGE_TEXT}.")
    return day


def check_instant(stamp: dt.datetime) -> dt.datetime:
    """`stamp` itself (aware); ValueError when it lies outside the supported range.

    Comparing aware datetimes converts them to UTC, which overflows for a time zone
    pushing 0001-01-01 or 9999-12-31 out of the calendar: that is a ValueError too.
    """
    try:
        inside = FIRST_INSTANT <= stamp <= LAST_INSTANT
    except OverflowError:
        inside = False
    if not inside:
        raise ValueError(f"Dates and timestamps must be {RANGE_TEXT} (UTC).")
    return stamp


def in_utc(stamp: dt.datetime) -> dt.datetime:
    """An aware `stamp` converted to UTC; ValueError when the conversion leaves the
    calendar (0001-01-01T00:00:00+14:00, 9999-12-31T23:59:59-12:00)."""
    try:
        return stamp.astimezone(dt.UTC)
    except OverflowError:
        message = f"Leaves the calendar in UTC: timestamps must be {RANGE_TEXT} (UTC)."
        raise ValueError(message) from None
