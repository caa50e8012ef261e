"""Filtering helpers shared by the list endpoints: strict params and since/until."""

from __future__ import annotations

import datetime as dt

import django_filters as df
from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from datalake.api.bounds import RANGE_TEXT, check_day, check_instant

PAGING_PARAMS = frozenset({"page", "page_size", "format"})


def reject_unknown_params(request, known) -> None:
    """400 naming every query parameter not in `known`."""
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise ValidationError({name: ["Unknown query parameter."] for name in unknown})


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter, but an unknown query parameter is a 400 naming it, never ignored."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        known = set(filterset_class.base_filters) if filterset_class else set()
        reject_unknown_params(request, known | PAGING_PARAMS)
        return super().filter_queryset(request, queryset, view)


def parse_instant(value: str, *, end: bool) -> dt.datetime:
    """A date or an ISO timestamp; a date covers its whole UTC day (inclusive bounds).

    ValueError when `value` is neither, or lies outside the supported range (bounds.py):
    what a caller does with the instant (a day more or less) stays inside the calendar.
    """
    stamp = parse_datetime(value) if "T" in value or " " in value else None
    if stamp is not None:
        aware = stamp if timezone.is_aware(stamp) else timezone.make_aware(stamp, dt.UTC)
        return check_instant(aware)
    day = parse_date(value)
    if day is None:
        raise ValueError(value)
    start = dt.datetime.combine(check_day(day), dt.time.min, tzinfo=dt.UTC)
    return start + dt.timedelta(days=1) - dt.timedelta(microseconds=1) if end else start


class InstantField(forms.CharField):
    def __init__(self, *args, end: bool = False, **kwargs):
        self.end = end
        super().__init__(*args, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            return parse_instant(value, end=self.end)
        except ValueError:
            raise forms.ValidationError(
                f"Give a date (YYYY-MM-DD) or an ISO 8601 timestamp, {RANGE_TEXT}."
            ) from None


class SinceFilter(df.Filter):
    """`field >= since`; a date means from its start."""

    field_class = InstantField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("lookup_expr", "gte")
        super().__init__(*args, **kwargs)


class UntilFilter(df.Filter):
    """`field <= until`, inclusive; a date means to its end."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("lookup_expr", "lte")
        super().__init__(*args, **kwargs)

    @property
    def field(self):
        if not hasattr(self, "_field"):
            self._field = InstantField(end=True, required=False, label=self.label)
        return self._field
