"""FilterSets generated from the catalog: one grammar for tables and raw files.

For a column `c` whose entry lists operator `op`, the filter is named `c` for
`eq` and `c__op` otherwise (`c__in` takes a comma-separated list). Each filter
parses and validates its value with a form field of the column's type, so a
value of the wrong type is a 400 naming the parameter.
"""

from __future__ import annotations

from functools import lru_cache

import django_filters as df
from django import forms

from datalake.catalog import Entry

LOOKUPS = {"eq": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte", "in": "in"}


class StrictBooleanField(forms.TypedChoiceField):
    def __init__(self, *args, **kwargs):
        kwargs.update(choices=[("true", "true"), ("false", "false")], coerce=lambda v: v == "true")
        super().__init__(*args, **kwargs)


class IntegerFilter(df.Filter):
    field_class = forms.IntegerField


class BooleanFilter(df.Filter):
    field_class = StrictBooleanField


class CharInFilter(df.BaseInFilter, df.CharFilter):
    pass


class IntegerInFilter(df.BaseInFilter, IntegerFilter):
    pass


class NumberInFilter(df.BaseInFilter, df.NumberFilter):
    pass


class DateInFilter(df.BaseInFilter, df.DateFilter):
    pass


class DateTimeInFilter(df.BaseInFilter, df.IsoDateTimeFilter):
    pass


FILTER_CLASSES = {
    "string": (df.CharFilter, CharInFilter),
    "integer": (IntegerFilter, IntegerInFilter),
    "decimal": (df.NumberFilter, NumberInFilter),
    "date": (df.DateFilter, DateInFilter),
    "timestamp": (df.IsoDateTimeFilter, DateTimeInFilter),
    "boolean": (BooleanFilter, None),
}


def param_name(column: str, op: str) -> str:
    return column if op == "eq" else f"{column}__{op}"


def _make_filter(column, op: str) -> df.Filter:
    single, multiple = FILTER_CLASSES[column.type]
    filter_class = multiple if op == "in" else single
    help_text = f"`{column.name}` {op} ({column.type})" + (
        ", comma-separated" if op == "in" else ""
    )
    return filter_class(
        field_name=column.name,
        lookup_expr=LOOKUPS[op],
        label=param_name(column.name, op),
        help_text=help_text,
    )


@lru_cache(maxsize=256)
def operators_of(entry: Entry) -> dict[str, tuple]:
    """Every filter parameter an entry accepts: name -> (column, column type, op)."""
    return {
        param_name(column.name, op): (column, op)
        for column in entry.columns
        for op in column.filters
    }


@lru_cache(maxsize=4096)
def filterset_for(entry: Entry, names: frozenset[str] | None = None) -> type[df.FilterSet]:
    """The FilterSet class of an entry, with only the filters `names` (default: all).

    A request builds the form of the filters it uses, not of the dozens a table
    accepts: that form costs more than the SQL of a page. `operators` maps each
    parameter to (column name, op).
    """
    operators = operators_of(entry)
    attrs = {"operators": {}}
    for name in sorted(operators if names is None else names):
        column, op = operators[name]
        attrs[name] = _make_filter(column, op)
        attrs["operators"][name] = (column.name, op)
    return type(f"{entry.name.title().replace('_', '')}FilterSet", (df.FilterSet,), attrs)
