"""Answering a search: the caller's readable resources, one plan by the text's frequency.

The text is never parsed as tsquery syntax: PostgreSQL's own parser splits it into
lexemes (`to_tsvector('lake_ids', q)`: compounds such as `HX-9f3a-0001` stay
whole), and the query is built from those, each quoted; all must match. A lexeme
of four characters or more with a digit (an id, a stock code, the beginning of
one) also matches as a prefix, so `HX-9f3a-0001` finds `HX-9f3a-000123`; a prefix
that begins more than `SEARCH_PREFIX_MAX_MATCHES` of the records searched is refused
(`TooBroad`: the API answers 400 `query_too_broad`), judged on what the caller sees.

Every statement is bounded: at most 10 records per resource leave PostgreSQL, and
counts stop at `COUNT_CAP` + 1 (an API request's statements also have a time limit,
`datalake.platform.statement_timeout`). Nothing reads every match into the web process.

Two plans, chosen from the planner's statistics of the index (`pg_stats`):
- rare text (an id, a code, an unusual word): the GIN index gives every match
  (a bitmap scan, forced so that a misestimate cannot turn it into a walk of the
  whole table), then PostgreSQL groups them by resource, counts them and keeps the
  10 first of each (one statement: window functions);
- frequent text (a country, a status...): per resource, its current entries are
  walked newest first through `(resource, at)` until 10 matches are found, and
  the matches are counted up to `COUNT_CAP` (`matches_capped` says when there are
  more).

Ranking inside a resource: an exact match of the record's key first, then newest
first. Under a grant that hides or masks a resource's date, `since` does not apply
to it and its hits are ordered by a keyed hash of their key: the date is never told.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from accounts.access.masking import column_key, hmac_pads
from datalake.platform import replicas
from datalake.search.index import ID_CONFIG, SPECS, doc_sql

PER_RESOURCE = 10
COUNT_CAP = 1000
RARE_BELOW = 0.002  # a lexeme in fewer than this share of the entries is "rare"
_STATS_TTL = 60.0
_stats: dict = {"at": 0.0, "freq": {}, "floor": 0.0}


@dataclass
class Hit:
    resource: str
    key: str
    at: dt.datetime
    raw_file: str | None = None
    raw_line: int | None = None


@dataclass
class ResourceMatches:
    resource: str
    matches: int = 0
    capped: bool = False
    hits: list[Hit] = field(default_factory=list)


def lexemes(q: str) -> list[str]:
    """The text's lexemes, compounds whole (`HX-9f3a-0001`, not its parts): an id is
    indexed whole, and a compound word of a text is indexed whole too."""
    with replicas.reads().cursor() as cursor:
        cursor.execute(f"SELECT lexeme FROM unnest(to_tsvector('{ID_CONFIG}', %s))", [q])
        return [row[0] for row in cursor.fetchall()]


class TooBroad(Exception):
    """A prefix term begins the words of more records than a search may go through."""

    def __init__(self, term: str, limit: int):
        super().__init__(term)
        self.term, self.limit = term, limit


def is_prefix(word: str) -> bool:
    """An id-like lexeme (4+ characters, a digit) also matches as the beginning of one."""
    return len(word) >= 4 and any(c.isdigit() for c in word)


def tsquery(words: list[str]) -> str:
    terms = []
    for word in words:
        quoted = "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"
        terms.append(quoted + (":*" if is_prefix(word) else ""))
    return " & ".join(terms)


def _force_bitmap(cursor) -> None:
    """Inside a transaction: the GIN index, never a walk of the table nor of an index."""
    cursor.execute("SET LOCAL enable_seqscan = off")
    cursor.execute("SET LOCAL enable_indexscan = off")


def check_prefixes(words: list[str], matching) -> None:
    """Raise `TooBroad` when a prefix term alone matches more than
    `SEARCH_PREFIX_MAX_MATCHES` records; `matching(tsquery)` gives the FROM/WHERE SQL (and
    its params) of the records searched, so the judgement covers only what the caller
    may see. Each probe stops at the limit + 1 (a LIMIT)."""
    limit = settings.SEARCH_PREFIX_MAX_MATCHES
    for word in filter(is_prefix, words):
        sql, params = matching(tsquery([word]))
        with transaction.atomic(using=replicas.read_alias()), replicas.reads().cursor() as cursor:
            _force_bitmap(cursor)
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 {sql} LIMIT %s) m", [*params, limit + 1]
            )
            if cursor.fetchone()[0] > limit:
                raise TooBroad(word, limit)


def _frequencies() -> tuple[dict[str, float], float]:
    """The index's most common lexemes and their share of entries (cached a minute)."""
    now = time.monotonic()
    if now - _stats["at"] > _STATS_TTL:
        with replicas.reads().cursor() as cursor:
            cursor.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
                "WHERE tablename = 'search_entries' AND attname = 'doc'"
            )
            row = cursor.fetchone()
        freq = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
        _stats.update(at=now, freq=freq, floor=min(freq.values(), default=0.0))
    return _stats["freq"], _stats["floor"]


def is_frequent(words: list[str]) -> bool:
    """True when every lexeme is among the index's frequent ones (an AND is as rare as
    its rarest term, so one rare lexeme makes the whole text rare)."""
    freq, _floor = _frequencies()
    if not freq:
        return False
    return all(freq.get(w, 0.0) >= RARE_BELOW for w in words)


def _scopes(tables: list[str], folders: list[str]) -> list[tuple[str, str, str]]:
    """(resource name, SQL condition, param) of each place searched."""
    scopes = [(t, "e.resource = %s AND e.valid_to IS NULL", t) for t in tables if t in SPECS]
    scopes += [(f"raw_{f}", "e.raw_source = %s AND e.raw_file IS NOT NULL", f) for f in folders]
    return scopes


def search(
    q: str, since: dt.date, tables: list[str], folders: list[str]
) -> tuple[list[ResourceMatches], bool]:
    """The matches of `q` since `since` in the given tables and landing folders.

    Returns the resources with at least one match, and whether the text had any
    searchable word at all. Raises `TooBroad` for a prefix of too many records.
    """
    words = lexemes(q)
    scopes = _scopes(tables, folders)
    if not words or not scopes:
        return [], bool(words)
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    check_prefixes(words, lambda tq: _matching(scopes, tq, start))
    query = tsquery(words)
    if is_frequent(words):
        found = [_walk(name, cond, param, query, start, q) for name, cond, param in scopes]
    else:
        found = _bitmap(scopes, query, start, q)
    return [r for r in found if r.matches], True


def _matching(scopes, query: str, start: dt.datetime, join="", join_params=()) -> tuple:
    """FROM/WHERE (and params) of the entries of any of `scopes` matching `query` since
    `start`, found through the GIN index only: the text's condition alone inside a
    fence (`OFFSET 0`: nothing else is pushed into it), the others filter its rows.
    Without it, on missing or stale statistics, the planner's bitmap took the
    `(resource, at)` index and tested the text on every entry of the resource."""
    where = " OR ".join(f"({cond})" for _name, cond, _param in scopes)
    sql = f"FROM ({_GIN_ONLY}) e {join} WHERE e.at >= %s AND ({where})"
    return sql, [query, *join_params, start, *(param for _n, _c, param in scopes)]


_GIN_ONLY = "SELECT * FROM search_entries WHERE doc @@ %s::tsquery OFFSET 0"


# Each entry once per scope it belongs to (a table's entry naming a file line is in both).
_IN_SCOPE = (
    "JOIN (VALUES {values}) s(name, raw, param) ON (CASE WHEN s.raw THEN e.raw_source = s.param "
    "AND e.raw_file IS NOT NULL ELSE e.resource = s.param AND e.valid_to IS NULL END)"
)


def _hit(resource: str, row) -> Hit:
    return Hit(resource, row[0], row[1], row[2], row[3])


def _bitmap(scopes, query: str, start: dt.datetime, q: str) -> list[ResourceMatches]:
    """Every match through the GIN index, grouped, counted and ranked by PostgreSQL: at
    most `PER_RESOURCE` rows per scope reach Python (the count of each scope is exact;
    above `COUNT_CAP` it is reported as capped)."""
    join = _IN_SCOPE.format(values=", ".join(["(%s, %s, %s)"] * len(scopes)))
    kinds = [v for name, _c, param in scopes for v in (name, name.startswith("raw_"), param)]
    matching, params = _matching(scopes, query, start, join, kinds)
    sql = (
        "SELECT name, key, at, raw_file, raw_line, n FROM (SELECT s.name, e.key, e.at, "
        "e.raw_file, e.raw_line, count(*) OVER (PARTITION BY s.name) AS n, row_number() OVER "
        "(PARTITION BY s.name ORDER BY e.key = %s DESC, e.at DESC, e.key) AS rank "
        f"{matching}) m WHERE rank <= %s ORDER BY name, rank LIMIT %s"
    )
    with transaction.atomic(using=replicas.read_alias()), replicas.reads().cursor() as cursor:
        _force_bitmap(cursor)
        cursor.execute(sql, [q, *params, PER_RESOURCE, PER_RESOURCE * len(scopes)])
        rows = cursor.fetchall()
    found = {name: ResourceMatches(name) for name, _c, _p in scopes}
    for name, *hit, n in rows:
        found[name].matches, found[name].capped = min(n, COUNT_CAP), n > COUNT_CAP
        found[name].hits.append(_hit(name, hit))
    return list(found.values())


def _walk(name: str, cond: str, param: str, query: str, start, q: str) -> ResourceMatches:
    with transaction.atomic(using=replicas.read_alias()), replicas.reads().cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            "SELECT e.key, e.at, e.raw_file, e.raw_line FROM search_entries e "
            f"WHERE {cond} AND e.at >= %s AND e.doc @@ %s::tsquery "
            "ORDER BY e.at DESC LIMIT %s",
            [param, start, query, PER_RESOURCE],
        )
        rows = cursor.fetchall()
        if not rows:
            return ResourceMatches(name)
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM search_entries e "
            f"WHERE {cond} AND e.at >= %s AND e.doc @@ %s::tsquery LIMIT %s) m",
            [param, start, query, COUNT_CAP + 1],
        )
        count = cursor.fetchone()[0]
    rows.sort(key=lambda r: (r[0] != q, -r[1].timestamp()))
    hits = [_hit(name, r) for r in rows]
    return ResourceMatches(name, min(count, COUNT_CAP), count > COUNT_CAP, hits)


# -- under a restricted grant -----------------------------------------------------------

_COLUMN = re.compile(r"\bt\.(\w+)")


def visible_words(spec, restriction, expressions=None) -> list[str]:
    """The spec's word (or id) expressions that read only columns the user sees in clear."""
    expressions = spec.words if expressions is None else expressions
    hidden = restriction.masked | (
        frozenset() if restriction.columns is None else frozenset(_COLUMN.findall(" ".join(
            (*spec.words, *spec.ids)))) - restriction.columns
    )  # fmt: skip
    return [w for w in expressions if not set(_COLUMN.findall(w)) & hidden]


def row_filter_sql(restriction) -> tuple[str, list]:
    if restriction.rows is None:
        return "TRUE", []
    parts, params = [], []
    for conditions in restriction.rows:
        ands = []
        for name, values in conditions.items():
            ands.append(f't."{name}" = ANY(%s)')
            params.append(list(values))
        parts.append("(" + " AND ".join(ands) + ")")
    return "(" + " OR ".join(parts) + ")", params


def search_restricted(
    name: str, table: str, restriction, q: str, since: dt.date, raw_source: str | None = None
) -> ResourceMatches:
    """One resource read under a restricted grant: only its visible rows, matched on its
    visible columns only (a match on a hidden value would reveal it). At most
    `PER_RESOURCE` rows are read, the count stops at `COUNT_CAP` + 1; raises `TooBroad`
    for a prefix of too many of the records this reader may see."""
    spec = SPECS[table]
    words_sql = visible_words(spec, restriction)
    ids_sql = visible_words(spec, restriction, spec.ids)
    words = lexemes(q)
    if not words or not (words_sql or ids_sql):
        return ResourceMatches(name)
    # A date the grant hides or masks is neither filtered on nor ordered by: `since`
    # would tell it to the day (asked day after day), and the order would rank it.
    dated = not concealed(restriction, _COLUMN.findall(spec.at))
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC) if dated else None

    visible = doc_sql(ids_sql, words_sql)

    def matching(query: str, gin_only: bool = False) -> tuple[str, list]:
        return _restricted_matching(spec, restriction, raw_source, start, visible, query, gin_only)

    check_prefixes(words, lambda query: matching(query, gin_only=True))
    sql, params = matching(tsquery(words))
    if dated:
        order, order_params = "e.at DESC", []
    else:  # exact key first, then an order that says nothing of the record (keyed hash)
        outer, inner = hmac_pads(column_key(name, "\0search order"))
        order = "e.key = %s DESC, sha256(%s || sha256(%s || convert_to(e.key, 'UTF8')))"
        order_params = [q, outer, inner]
    with replicas.reads().cursor() as cursor:
        cursor.execute(
            f"SELECT e.key, e.at, e.raw_file, e.raw_line {sql} ORDER BY {order} LIMIT %s",
            [*params, *order_params, PER_RESOURCE],
        )
        rows = cursor.fetchall()
        if not rows:
            return ResourceMatches(name)
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 {sql} LIMIT %s) m", [*params, COUNT_CAP + 1]
        )
        count = cursor.fetchone()[0]
    if dated:
        rows.sort(key=lambda r: (r[0] != q, -r[1].timestamp()))
    hits = [_hit(name, r) for r in rows]
    return ResourceMatches(name, min(count, COUNT_CAP), count > COUNT_CAP, hits)


def concealed(restriction, names) -> bool:
    """Whether the grant hides or masks any of these columns."""
    return any(n in restriction.masked or restriction.hides(n) for n in names)


def _restricted_matching(
    spec, restriction, raw_source, start, visible_doc: str, query: str, gin_only: bool = False
):
    """FROM/WHERE of the entries of `spec`'s table (or of its raw folder) matching `query`
    on both the whole record and its visible part, in the rows the reader may see
    (`gin_only`: the entries found through the GIN index only, as in `_matching`), dated
    on or after `start` unless it is None (a date the grant conceals)."""
    table = spec.table
    allowed, allowed_params = row_filter_sql(restriction)
    version = "AND t.valid_from = e.valid_from" if spec.versioned else ""
    if raw_source:
        scope, param = "e.raw_source = %s AND e.raw_file IS NOT NULL", raw_source
    else:
        scope, param = "e.resource = %s AND e.valid_to IS NULL", table
    entries = f"({_GIN_ONLY}) e" if gin_only else "search_entries e"
    since = "" if start is None else "AND e.at >= %s"
    sql = (
        f"FROM {entries} JOIN {table} t ON {spec.key} = e.key {version} "
        f"WHERE {scope} AND e.resource = %s {since} AND e.doc @@ %s::tsquery "
        f"AND {visible_doc} @@ %s::tsquery AND {allowed}"
    )
    dated = [] if start is None else [start]
    params = [param, table, *dated, query, query, *allowed_params]
    return sql, [query, *params] if gin_only else params
