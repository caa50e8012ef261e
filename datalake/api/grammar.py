"""The query grammar of `rows/`: parse and validate the parameters into a `RowQuery`.

One grammar for every resource. Anything the grammar does not know is a 400
naming it: an unknown parameter, an unknown column in `fields`/`ordering`, a
filter value of the wrong type, a bad page or cursor.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from types import SimpleNamespace

import orjson
from django.conf import settings
from rest_framework.exceptions import ValidationError

from datalake.catalog import Entry

from .filters import filterset_for, operators_of

NO_QUERYSET = SimpleNamespace(model=None)  # raw files: filters validate values, DuckDB applies
CONTROL_PARAMS = frozenset({"page", "page_size", "cursor", "fields", "ordering", "format"})


@dataclass
class RowQuery:
    """A validated request for rows: what to select, filter, order and which page."""

    entry: Entry
    fields: list[str]
    filterset: object
    filters: list[tuple[str, str, object]]
    ordering: list[tuple[str, bool]]
    page_size: int
    page: int = 1
    cursor: list | None = None
    params: dict = field(default_factory=dict)

    @property
    def ordering_names(self) -> list[str]:
        return [name for name, _desc in self.ordering]


def _positive_int(params, name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValidationError({name: [f"Must be a whole number of 1 or more, got {raw!r}."]})
    return int(raw)


def _columns(entry: Entry, raw: str, name: str) -> list[str]:
    names = [part.strip() for part in raw.split(",")]
    unknown = [n for n in names if entry.column(n.lstrip("-")) is None]
    if not raw or unknown or "" in names:
        shown = ", ".join(unknown) or repr(raw)
        raise ValidationError({name: [f"Unknown column(s): {shown}. Known: {entry.column_names}."]})
    return names


def _ordering(entry: Entry, raw: str | None) -> list[tuple[str, bool]]:
    """Requested columns, then the key columns not already there, as tie-breakers."""
    order = (
        [(n.lstrip("-"), n.startswith("-")) for n in _columns(entry, raw, "ordering")]
        if raw
        else []
    )
    named = {n for n, _ in order}
    if len(named) != len(order):
        raise ValidationError({"ordering": ["A column appears twice."]})
    if any(entry.column(n).type == "array" for n in named):
        raise ValidationError({"ordering": ["Array columns cannot be ordered on."]})
    return order + [(k, False) for k in entry.key if k not in named]


def _filters(entry: Entry, params) -> tuple[object, list]:
    data = {k: v for k, v in params.items() if k in operators_of(entry)}
    filterset_class = filterset_for(entry, frozenset(data))
    empty = [k for k, v in data.items() if v == ""]
    if empty:
        raise ValidationError(
            {k: ["An empty value filters nothing; remove it or give a value."] for k in empty}
        )
    # Parsing only: the table backend applies the filterset to its own queryset.
    queryset = entry.model._default_manager.none() if entry.model else NO_QUERYSET
    filterset = filterset_class(data=data, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    cleaned = filterset.form.cleaned_data
    filters = [(*filterset_class.operators[k], cleaned[k]) for k in data]
    return filterset, filters


def encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values, default=str)).decode().rstrip("=")


def decode_cursor(raw: str, size: int) -> list:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise ValidationError(
            {"cursor": ["Not a cursor of this query; use `next_cursor` as given."]}
        )
    return values


def parse_row_query(entry: Entry, params) -> RowQuery:
    """Validate `params` (a QueryDict) against the entry; raise ValidationError (400) if bad."""
    unknown = sorted(set(params) - CONTROL_PARAMS - set(operators_of(entry)))
    if unknown:
        raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
    if "page" in params and "cursor" in params:
        raise ValidationError({"cursor": ["Give either `page` or `cursor`, not both."]})
    fields = (
        _columns(entry, params["fields"], "fields") if "fields" in params else entry.column_names
    )
    if any(f.startswith("-") for f in fields):
        raise ValidationError({"fields": ["Column names only, no `-`."]})
    ordering = _ordering(entry, params.get("ordering"))
    filterset, filters = _filters(entry, params)
    size = min(
        _positive_int(params, "page_size", settings.LAKE_MAX_PAGE_SIZE), settings.LAKE_MAX_PAGE_SIZE
    )
    cursor = decode_cursor(params["cursor"], len(ordering)) if "cursor" in params else None
    return RowQuery(
        entry=entry,
        fields=list(dict.fromkeys(fields)),
        filterset=filterset,
        filters=filters,
        ordering=ordering,
        page_size=size,
        page=_positive_int(params, "page", 1),
        cursor=cursor,
        params=params,
    )
