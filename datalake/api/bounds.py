"""The limits of `datalake.query.bounds` as DRF fields and serializer checks.

The limits themselves (and the plain checks the query grammar uses) live in
`datalake.query.bounds`; they are re-exported here for the API's serializers.
"""

from __future__ import annotations

import datetime as dt

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from datalake.query.bounds import (  # noqa: F401 (re-exported for the API layer)
    FIRST_DAY,
    FIRST_INSTANT,
    LAST_DAY,
    LAST_INSTANT,
    MAX_WHOLE,
    RANGE_TEXT,
    check_day,
    check_instant,
    in_utc,
    whole_number,
)


def days_before(day: dt.date, days: int, name: str) -> dt.date:
    """`day` minus `days`; a 400 naming `name` when that leaves the supported range."""
    try:
        return check_day(day - dt.timedelta(days=days))
    except (ValueError, OverflowError):
        raise ValidationError({name: [f"Reaches before {FIRST_DAY.isoformat()}."]}) from None


class BoundedDateField(serializers.DateField):
    """A date `FIRST_DAY`..`LAST_DAY`: arithmetic on it never leaves the calendar."""

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        try:
            return check_day(day)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class WholeNumberField(serializers.IntegerField):
    """An integer 1..MAX_WHOLE unless told otherwise (never unbounded)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_WHOLE)
        super().__init__(**kwargs)
