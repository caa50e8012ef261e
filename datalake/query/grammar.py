"""The query grammar of `rows/`: parse and validate the parameters into a `RowQuery`.

One grammar for every resource. Anything the grammar does not know is a 400
naming it: an unknown parameter, an unknown column in `fields`/`ordering`, a
filter value of the wrong type, a bad page or cursor.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

from django.conf import settings

from accounts.access.masking import key_fingerprint
from accounts.access.restrictions import UNRESTRICTED, Restriction
from datalake.catalog import Entry
from datalake.catalog.columns import Column
from datalake.errors import Invalid
from datalake.query.bounds import in_utc, whole_number
from datalake.query.cursors import seal, unseal
from datalake.query.filters import filterset_for, operators_of

NO_QUERYSET = SimpleNamespace(model=None)  # raw files: filters validate values, DuckDB applies
PLAIN_FILE = re.compile(r"^[^/\\\x00]+$")  # a name inside the folder: no path, no NUL
CONTROL_PARAMS = frozenset(
    {"page", "page_size", "cursor", "fields", "ordering", "format", "cost_guard"}
)
COST_GUARD = {"on": True, "off": False}  # `cost_guard=off`: staff only (the view checks)
# The name, in an ordering, of the keyed hash of a hidden or masked key column: no catalog
# column has it (no model field has a `:`; a raw folder's names never start with `_`).
KEYHASH = "_keyhash:"


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
    owner: object = None  # the caller (a user's pk) its cursors are sealed for
    walk: list | None = None  # the snapshot a cursor's walk reads (`DataVersion.sealed()`)
    cost_guard: bool = True  # refuse the query if its estimated cost is above the limit

    @property
    def ordering_names(self) -> list[str]:
        return [name for name, _desc in self.ordering]

    @property
    def hashed(self) -> dict[str, str]:
        """Keyed-hash names of the ordering -> the hidden or masked column each hashes."""
        return {n: n.removeprefix(KEYHASH) for n in self.ordering_names if n.startswith(KEYHASH)}

    def column(self, name: str) -> Column | None:
        """A column of the entry, or the integer keyed hash of one (`KEYHASH` names)."""
        if name.startswith(KEYHASH):
            hashed = self.entry.column(name.removeprefix(KEYHASH))
            return Column(name, "integer", (), "", hashed.nullable)
        return self.entry.column(name)

    @property
    def order_key(self) -> tuple:
        """The order the rows come in; a keyed order names the masking key it uses."""
        return (tuple(self.ordering), key_fingerprint() if self.hashed else None)

    @property
    def cursor_context(self) -> bytes:
        """What a cursor is bound to: this resource walked in this order, by this caller
        under this restriction (a foreign cursor, or one from before a grant changed,
        is refused rather than walked under another reader's terms)."""
        reader = (self.owner, self.restriction.fingerprint(keyed=False))
        return repr((self.entry.name, self.order_key, reader)).encode()

    def encode_cursor(self, values: list, walk: list) -> str:
        """The cursor after `values` for a walk of the snapshot `walk`."""
        return seal(values, self.cursor_context, walk)


def _positive_int(params, name: str, default: int) -> int:
    raw = params.get(name)
    return default if raw is None else whole_number(raw, name)


def _columns(entry: Entry, raw: str, name: str) -> list[str]:
    names = [part.strip() for part in raw.split(",")]
    # One leading `-` (descending) at most: `--amount` names no column.
    unknown = [n for n in names if entry.column(n.removeprefix("-")) is None]
    if not raw or unknown or "" in names:
        shown = ", ".join(unknown) or repr(raw)
        raise Invalid({name: [f"Unknown column(s): {shown}. Known: {entry.column_names}."]})
    return names


def _ordering(entry: Entry, raw: str | None) -> list[tuple[str, bool]]:
    """Requested columns, then the key columns not already there, as tie-breakers."""
    order = (
        [(n.removeprefix("-"), n.startswith("-")) for n in _columns(entry, raw, "ordering")]
        if raw
        else []
    )
    named = {n for n, _ in order}
    if len(named) != len(order):
        raise Invalid({"ordering": ["A column appears twice."]})
    if any(entry.column(n).type == "array" for n in named):
        raise Invalid({"ordering": ["Array columns cannot be ordered on."]})
    return order + [(k, False) for k in entry.key if k not in named]


def _filters(entry: Entry, params) -> tuple[object, list]:
    data = {k: v for k, v in params.items() if k in operators_of(entry)}
    filterset_class = filterset_for(entry, frozenset(data))
    empty = [k for k, v in data.items() if v == ""]
    if empty:
        raise Invalid(
            {k: ["An empty value filters nothing; remove it or give a value."] for k in empty}
        )
    # Parsing only: the table backend applies the filterset to its own queryset.
    queryset = entry.model._default_manager.none() if entry.model else NO_QUERYSET
    filterset = filterset_class(data=data, queryset=queryset)
    if not filterset.is_valid():
        raise Invalid(filterset.errors)
    cleaned = filterset.form.cleaned_data
    filters = [(*filterset_class.operators[k], cleaned[k]) for k in data]
    for key, (name, _op, value) in zip(data, filters, strict=True):
        values = value if isinstance(value, list | tuple) else [value]
        if name == "_file" and any(not PLAIN_FILE.match(str(v)) for v in values):
            raise Invalid({key: ["A file name of the folder, without any path."]})
        if entry.model is None:  # raw files compare in naive UTC (backends._naive_utc)
            stamps = [v for v in values if isinstance(v, dt.datetime) and v.tzinfo]
            try:
                for stamp in stamps:
                    in_utc(stamp)
            except ValueError as exc:
                raise Invalid({key: [str(exc)]}) from None
    return filterset, filters


def keyed_ordering(ordering: list[tuple[str, bool]], restriction: Restriction) -> list:
    """The order with each hidden or masked column after its keyed hash.

    Only the key's tie-breakers can be hidden or masked here (naming one in `ordering`
    is a 403): rows then come in the order of the key's pseudonyms, which reveals
    nothing of the real values; the real key after it only breaks ties of the 60-bit
    hash, so the order stays total and keyset pages exact.
    """
    if not restriction.restricted:
        return ordering
    keyed = []
    for name, desc in ordering:
        if restriction.hides(name) or name in restriction.masked:
            keyed.append((KEYHASH + name, desc))
        keyed.append((name, desc))
    return keyed


def parse_row_query(
    entry: Entry, params, restriction: Restriction = UNRESTRICTED, owner=None
) -> RowQuery:
    """Validate `params` (a QueryDict) against the entry; raise Invalid (a 400) if bad.

    Under a restricted grant, the columns it hides are not selected by default, and
    naming one in `fields` (or a hidden or masked one in a filter or `ordering`) is a
    403 naming it. What does not depend on the page, the cursor or the caller is
    parsed once per process and reused (`_parsed`): clients ask the same query again
    and again, page after page.
    """
    parsed = _parsed(entry, _params_key(params))
    if "page" in params and "cursor" in params:
        raise Invalid({"cursor": ["Give either `page` or `cursor`, not both."]})
    fields = (
        list(parsed.fields)
        if parsed.fields is not None
        else restriction.visible(entry.column_names)
    )
    if restriction.restricted:
        restriction.refuse_hidden(fields, "see", masked_too=False)
        restriction.refuse_hidden([name for name, _op, _v in parsed.filters], "filter on")
        restriction.refuse_hidden(parsed.requested_ordering, "order on")
    query = RowQuery(
        entry=entry,
        fields=fields,
        filterset=parsed.filterset,
        filters=parsed.filters,
        ordering=keyed_ordering(parsed.ordering, restriction),
        page_size=parsed.page_size,
        page=_positive_int(params, "page", 1),
        params=params,
        restriction=restriction,
        owner=owner,
        cost_guard=parsed.cost_guard,
    )
    if "cursor" in params:
        query.cursor, query.walk = unseal(
            params["cursor"], len(query.ordering), query.cursor_context
        )
    return query


@dataclass(frozen=True)
class _Parsed:
    """What a query string says, independent of the page, the cursor and the caller."""

    fields: tuple[str, ...] | None  # None: every column the caller may see
    filterset: object
    filters: list
    ordering: list[tuple[str, bool]]
    requested_ordering: list[str]
    page_size: int
    cost_guard: bool


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
        raise Invalid({name: ["Unknown query parameter."] for name in unknown})
    fields = _columns(entry, params["fields"], "fields") if "fields" in params else None
    if fields is not None and any(f.startswith("-") for f in fields):
        raise Invalid({"fields": ["Column names only, no `-`."]})
    ordering = _ordering(entry, params.get("ordering"))
    filterset, filters = _filters(entry, params)
    requested = params.get("ordering")
    guard = params.get("cost_guard", "on")
    if guard not in COST_GUARD:
        raise Invalid({"cost_guard": ["`on` (the default) or `off` (staff only)."]})
    size = min(
        _positive_int(params, "page_size", settings.LAKE_MAX_PAGE_SIZE), settings.LAKE_MAX_PAGE_SIZE
    )
    return _Parsed(
        fields=tuple(dict.fromkeys(fields)) if fields is not None else None,
        filterset=filterset,
        filters=filters,
        ordering=ordering,
        requested_ordering=[n.strip().removeprefix("-") for n in requested.split(",")]
        if requested
        else [],
        page_size=size,
        cost_guard=COST_GUARD[guard],
    )
