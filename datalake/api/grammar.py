"""The query grammar of `rows/`: parse and validate the parameters into a `RowQuery`.

One grammar for every resource. Anything the grammar does not know is a 400
naming it: an unknown parameter, an unknown column in `fields`/`ordering`, a
filter value of the wrong type, a bad page or cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

import orjson
from django.conf import settings
from rest_framework.exceptions import ValidationError

from accounts.restrictions import UNRESTRICTED, Restriction
from datalake.catalog import Entry

from .bounds import whole_number
from .filters import filterset_for, operators_of

NO_QUERYSET = SimpleNamespace(model=None)  # raw files: filters validate values, DuckDB applies
PLAIN_FILE = re.compile(r"^[^/\\\x00]+$")  # a name inside the folder: no path, no NUL
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
    restriction: Restriction = UNRESTRICTED

    @property
    def sealed(self) -> bool:
        """The cursor holds values of hidden or masked columns: it must be opaque."""
        r = self.restriction
        return any(r.hides(n) or n in r.masked for n in self.ordering_names)

    @property
    def ordering_names(self) -> list[str]:
        return [name for name, _desc in self.ordering]


def _positive_int(params, name: str, default: int) -> int:
    raw = params.get(name)
    return default if raw is None else whole_number(raw, name)


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
    for key, (name, _op, value) in zip(data, filters, strict=True):
        values = value if isinstance(value, list | tuple) else [value]
        if name == "_file" and any(not PLAIN_FILE.match(str(v)) for v in values):
            raise ValidationError({key: ["A file name of the folder, without any path."]})
    return filterset, filters


def encode_cursor(values: list, sealed: bool = False) -> str:
    data = orjson.dumps(values, default=str)
    if sealed:
        return "s" + base64.urlsafe_b64encode(seal(data)).decode().rstrip("=")
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(raw: str, size: int) -> list:
    try:
        if raw.startswith("s"):  # base64 of "[" never starts with "s"
            data = unseal(base64.urlsafe_b64decode(raw[1:] + "=" * (-len(raw[1:]) % 4)))
        else:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        values = orjson.loads(data)
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise ValidationError(
            {"cursor": ["Not a cursor of this query; use `next_cursor` as given."]}
        )
    return values


def _sealing_keys() -> tuple[bytes, bytes]:
    secret = settings.SECRET_KEY.encode()
    return (
        hashlib.sha256(b"cursor-stream:" + secret).digest(),
        hashlib.sha256(b"cursor-mac:" + secret).digest(),
    )


def seal(data: bytes) -> bytes:
    """Encrypt-then-MAC with HMAC-SHA256 as the stream (CTR) and as the tag: a cursor
    over hidden columns reveals nothing of their values and cannot be forged."""
    stream_key, mac_key = _sealing_keys()
    nonce = secrets.token_bytes(12)
    stream = b"".join(
        hmac.new(stream_key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
        for i in range(len(data) // 32 + 1)
    )
    body = nonce + bytes(a ^ b for a, b in zip(data, stream, strict=False))
    return body + hmac.new(mac_key, body, hashlib.sha256).digest()[:16]


def unseal(token: bytes) -> bytes:
    stream_key, mac_key = _sealing_keys()
    body, tag = token[:-16], token[-16:]
    if len(token) < 29 or not hmac.compare_digest(
        hmac.new(mac_key, body, hashlib.sha256).digest()[:16], tag
    ):
        raise ValueError("not a sealed cursor")
    nonce, data = body[:12], body[12:]
    stream = b"".join(
        hmac.new(stream_key, nonce + i.to_bytes(4, "big"), hashlib.sha256).digest()
        for i in range(len(data) // 32 + 1)
    )
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


def parse_row_query(entry: Entry, params, restriction: Restriction = UNRESTRICTED) -> RowQuery:
    """Validate `params` (a QueryDict) against the entry; raise ValidationError (400) if bad.

    Under a restricted grant, the columns it hides are not selected by default, and
    naming one in `fields` (or a hidden or masked one in a filter or `ordering`) is a
    403 naming it. What does not depend on the page, the cursor or the caller is
    parsed once per process and reused (`_parsed`): clients ask the same query again
    and again, page after page.
    """
    parsed = _parsed(entry, _params_key(params))
    if "page" in params and "cursor" in params:
        raise ValidationError({"cursor": ["Give either `page` or `cursor`, not both."]})
    fields = (
        list(parsed.fields)
        if parsed.fields is not None
        else restriction.visible(entry.column_names)
    )
    if restriction.restricted:
        restriction.refuse_hidden(fields, "see", masked_too=False)
        restriction.refuse_hidden([name for name, _op, _v in parsed.filters], "filter on")
        restriction.refuse_hidden(parsed.requested_ordering, "order on")
    cursor = decode_cursor(params["cursor"], len(parsed.ordering)) if "cursor" in params else None
    return RowQuery(
        entry=entry,
        fields=fields,
        filterset=parsed.filterset,
        filters=parsed.filters,
        ordering=parsed.ordering,
        page_size=parsed.page_size,
        page=_positive_int(params, "page", 1),
        cursor=cursor,
        params=params,
        restriction=restriction,
    )


@dataclass(frozen=True)
class _Parsed:
    """What a query string says, independent of the page, the cursor and the caller."""

    fields: tuple[str, ...] | None  # None: every column the caller may see
    filterset: object
    filters: list
    ordering: list[tuple[str, bool]]
    requested_ordering: list[str]
    page_size: int


PER_PAGE_PARAMS = frozenset({"page", "cursor"})


def _params_key(params) -> tuple:
    getlist = getattr(params, "getlist", None)
    return tuple(
        sorted(
            (k, tuple(getlist(k)) if getlist else (params[k],))
            for k in params
            if k not in PER_PAGE_PARAMS
        )
    )


@lru_cache(maxsize=4096)
def _parsed(entry: Entry, key: tuple) -> _Parsed:
    """Parse the parameters of `key` (name, values); errors are raised, never cached."""
    params = {name: values[-1] for name, values in key}
    unknown = sorted(set(params) - CONTROL_PARAMS - set(operators_of(entry)))
    if unknown:
        raise ValidationError({name: ["Unknown query parameter."] for name in unknown})
    fields = _columns(entry, params["fields"], "fields") if "fields" in params else None
    if fields is not None and any(f.startswith("-") for f in fields):
        raise ValidationError({"fields": ["Column names only, no `-`."]})
    ordering = _ordering(entry, params.get("ordering"))
    filterset, filters = _filters(entry, params)
    requested = params.get("ordering")
    size = min(
        _positive_int(params, "page_size", settings.LAKE_MAX_PAGE_SIZE), settings.LAKE_MAX_PAGE_SIZE
    )
    return _Parsed(
        fields=tuple(dict.fromkeys(fields)) if fields is not None else None,
        filterset=filterset,
        filters=filters,
        ordering=ordering,
        requested_ordering=[n.strip().lstrip("-") for n in requested.split(",")]
        if requested
        else [],
        page_size=size,
    )
