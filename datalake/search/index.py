"""Keeping the search index current: what each table puts in it, and its follower.

The entries of the versioned tables follow their committed versions: the `search`
follower (datalake.lake.followers, registered in `DatalakeConfig.ready()`) takes the
versions in order and, for each, closes the entries of the rows it closed (or drops them,
when no file holds them) and gives the rows it wrote entries (`index_version`). A file's
merge keeps the file line of each row it wrote (`keep_lines`, the lake's `on_written`
hook, while the stage is there) for the follower's raw provenance. Rows of an unversioned
table written again are indexed again in that transaction (`on_replaced`,
`after_replace`). The index is therefore as current as the follower's position, for the
ingestion path, the pipeline batches and the re-pushes alike.
`rebuild()` recomputes the table entries from the current rows (first install, or a
change of what is indexed); entries carrying a file line are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

# ISO 3166 codes of the lake's countries and their English names, so that a search
# for "France" finds the transactions of FR (retail rows already carry the name).
COUNTRY_NAMES = {
    "AT": "Austria", "AU": "Australia", "BE": "Belgium", "BR": "Brazil", "CA": "Canada",
    "CH": "Switzerland", "CN": "China", "CY": "Cyprus", "CZ": "Czechia", "DE": "Germany",
    "DK": "Denmark", "EE": "Estonia", "ES": "Spain", "FI": "Finland", "FR": "France",
    "GB": "United Kingdom", "GR": "Greece", "HR": "Croatia", "HU": "Hungary", "IE": "Ireland",
    "IN": "India", "IS": "Iceland", "IT": "Italy", "JP": "Japan", "LT": "Lithuania",
    "LU": "Luxembourg", "LV": "Latvia", "MT": "Malta", "MX": "Mexico", "NL": "Netherlands",
    "NO": "Norway", "NZ": "New Zealand", "PL": "Poland", "PT": "Portugal", "RO": "Romania",
    "SE": "Sweden", "SG": "Singapore", "SI": "Slovenia", "SK": "Slovakia", "US": "United States",
    "ZA": "South Africa",
}  # fmt: skip


def _country_name(column: str) -> str:
    whens = " ".join(f"WHEN '{code}' THEN '{name}'" for code, name in COUNTRY_NAMES.items())
    return f"(CASE {column} {whens} END)"


TRANSACTION_IDS = ("t.transaction_id", "t.user_id", "t.product_id")
TRANSACTION_WORDS = (
    "t.country", _country_name("t.country"), "t.product_category", "t.transaction_type",
    "t.payment_method", "t.status", "t.currency",
)  # fmt: skip
# Identifiers are indexed whole (`lake_ids`: `simple` without the parts of compounds,
# migration 0004) and found whole or by their beginning; words are split as usual.
ID_CONFIG = "lake_ids"


def doc_sql(ids, words) -> str:
    """The tsvector of a record: its identifiers whole, its words parsed."""
    parts = []
    if ids:
        parts.append(f"to_tsvector('{ID_CONFIG}', concat_ws(' ', {', '.join(ids)}))")
    if words:
        parts.append(f"to_tsvector('simple', concat_ws(' ', {', '.join(words)}))")
    return " || ".join(parts) or "''::tsvector"


@dataclass(frozen=True)
class IndexSpec:
    """What one table puts in the index; SQL over the table's row aliased `t`."""

    table: str
    key: str  # the record's key as text
    at: str  # the record's date (timestamptz)
    words: tuple[str, ...]  # text expressions: words, split into lexemes
    ids: tuple[str, ...] = ()  # text expressions: identifiers, kept whole
    versioned: bool = True
    stage_key: tuple[str, str] | None = None  # (stage expr, table expr) joining a stage row
    stage_line: str | None = None  # the stage's file line of the row, for raw provenance

    def doc(self) -> str:
        return doc_sql(self.ids, self.words)


SPECS = {
    spec.table: spec
    for spec in (
        IndexSpec(
            "transactions",
            key="t.transaction_id",
            at="t.timestamp",
            words=TRANSACTION_WORDS,
            ids=TRANSACTION_IDS,
            stage_key=("s.transaction_id", "t.transaction_id"),
            stage_line="s.line",
        ),
        IndexSpec(
            "sales",
            key="t.sale_date::text || '/' || t.line",
            at="t.sale_date::timestamptz",
            words=("t.customer_id", "array_to_string(t.products, ' ')"),
            stage_key=("s.sale_date::text || '/' || s.line", "t.sale_date::text || '/' || t.line"),
            stage_line="s.line",
        ),
        IndexSpec(
            "retail_invoices",
            key="t.invoice_no",
            at="t.invoice_date",
            words=("t.invoice_no", "t.customer_id", "t.country"),
        ),
        IndexSpec(
            "retail_invoice_items",
            key="t.invoice_no || '/' || t.line",
            at="coalesce((SELECT min(i.invoice_date) FROM retail_invoices i "
            "WHERE i.invoice_no = t.invoice_no), now())",
            words=("t.invoice_no", "t.stock_code", "t.description"),
            stage_key=("s.invoice_no || '/' || s.line", "t.invoice_no || '/' || t.line"),
            stage_line="s.src_line",
        ),
        IndexSpec(
            "retail_customers",
            key="t.customer_id",
            at="now()",
            words=("t.customer_id", "t.country"),
        ),
        IndexSpec(
            "retail_stock_codes",
            key="t.stock_code",
            at="now()",
            words=("t.stock_code", "t.description"),
        ),
        IndexSpec(
            "exchange_rates",
            key="t.currency || '/' || t.date::text",
            at="t.date::timestamptz",
            words=("t.currency",),
            versioned=False,
        ),
        IndexSpec(
            "product_daily_sales",
            key="t.product_id || '/' || t.date::text",
            at="t.date::timestamptz",
            words=("t.product_id",),
            versioned=False,
        ),
    )
}

COLUMNS = "resource, key, at, valid_from, valid_to, raw_source, raw_file, raw_line, doc"


def _execute(sql: str, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


def landing_file(path: str | None) -> tuple[str, str] | None:
    """(folder, file name) when `path` is a file of a landing folder of the lake."""
    if not path:
        return None
    file = Path(path)
    root = Path(settings.LAKE_ROOT).resolve()
    if file.is_absolute():
        if not file.resolve().is_relative_to(root):
            return None
        file = file.resolve().relative_to(root)
    parts = file.parts
    if len(parts) == 3 and parts[0] == "landing":
        return parts[1], parts[2]
    return None


def file_of(source: str) -> tuple[str, str] | None:
    """The landed file a merge's `source` (`ingestion:<run id>`) loaded, if any."""
    if not source.startswith("ingestion:"):
        return None
    from ingestion.models import IngestionRun

    run = IngestionRun.objects.filter(pk=source.removeprefix("ingestion:")).only("path").first()
    return landing_file(run.path) if run else None


def enabled() -> bool:
    """SEARCH_INDEX_ENABLED=false skips the index at merges (a bulk backfill: then run
    `rebuild_search_index`). On by default."""
    return settings.SEARCH_INDEX_ENABLED


def versioned_tables() -> tuple[str, ...]:
    """The resources the `search` follower follows."""
    return tuple(name for name, spec in SPECS.items() if spec.versioned)


def keep_lines(merge) -> None:
    """The lake's `on_written` hook: a file's merge keeps its rows' lines for the follower
    (the stage holding them is dropped at the end of the merge)."""
    analyze_if_stale(merge.table)  # autovacuum may be off, or behind a bulk load
    spec = SPECS.get(merge.table)
    if not (merge.made and spec and spec.versioned and spec.stage_line and enabled()):
        return
    if not file_of(merge.source):
        return
    _execute(
        f"INSERT INTO search_lines (resource, version, key, line) "
        f"SELECT %(r)s, %(v)s, {spec.key}, {spec.stage_line} FROM {merge.table} t "
        f'JOIN "{merge.stage}" s ON {spec.stage_key[0]} = {spec.stage_key[1]} '
        "WHERE t.valid_from = %(v)s",
        {"r": merge.table, "v": merge.version},
    )


def apply_batch(batch) -> None:
    """The `search` follower's step: each version of the batch, in order."""
    for row in batch.versions:
        index_version(batch.resource, row.version, source=row.source)


def index_version(table: str, version: int, *, source: str) -> None:
    """Bring the entries of `table` from the version before `version` to `version`
    (in version order; later versions may already have closed some of its rows: they
    are closed again when those versions are applied)."""
    spec = SPECS.get(table)
    if spec is None or not spec.versioned or not enabled():
        return
    params = {"r": table, "v": version}
    # The keys the version closed, as one array computed first: the entries are then
    # found through their key index whatever the planner believes of the table's size
    # (with `IN (subquery)` and statistics from when the index was small, it walked
    # every entry of the resource, a cost growing with the lake).
    closed = f"ARRAY(SELECT {spec.key} FROM {table} t WHERE t.valid_to = %(v)s)"
    # Entries of a file's line stay (the file still says it); the others go.
    _execute(
        f"DELETE FROM search_entries e WHERE e.key = ANY({closed}) AND e.resource = %(r)s "
        "AND e.valid_to IS NULL AND e.raw_file IS NULL",
        params,
    )
    _execute(
        f"UPDATE search_entries e SET valid_to = %(v)s WHERE e.key = ANY({closed}) "
        "AND e.resource = %(r)s AND e.valid_to IS NULL",
        params,
    )
    analyze_if_stale("search_entries", table)
    landed = file_of(source) if spec.stage_line else None
    if landed:
        params.update(folder=landed[0], file=landed[1])
        raw = (
            "CASE WHEN l.line IS NOT NULL THEN %(folder)s END, "
            "CASE WHEN l.line IS NOT NULL THEN %(file)s END, l.line"
        )
        join = (
            f"LEFT JOIN search_lines l ON l.resource = %(r)s AND l.version = %(v)s "
            f"AND l.key = {spec.key}"
        )
    else:
        raw, join = "NULL, NULL, NULL", ""
    _execute(
        f"INSERT INTO search_entries ({COLUMNS}) SELECT %(r)s, {spec.key}, {spec.at}, "
        f"t.valid_from, NULL, {raw}, {spec.doc()} FROM {table} t {join} "
        f"WHERE t.valid_from = %(v)s",
        params,
    )
    if landed:
        _execute("DELETE FROM search_lines WHERE resource = %(r)s AND version = %(v)s", params)


def after_replace(event) -> None:
    """The lake's `on_replaced` hook: the entries of rows of an unversioned table."""
    if event.table not in SPECS:
        return
    if event.days is not None:
        drop_days(event.table, event.days)
    index_rows(event.table, event.where)


def analyze_if_stale(*tables: str) -> None:
    """ANALYZE a table whose rows changed by as many as it had at its last statistics
    (inside the merge's transaction). A bulk load outruns autovacuum; a plan made on the
    statistics of an empty index walks millions of entries to close a handful. Growth
    alone needs no more: the planner scales the counted rows by the table's pages; so
    a table growing from empty is analysed at 10,000 rows, then each time it doubles."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname = ANY(%s) "
            "AND s.n_mod_since_analyze > greatest(10000, c.reltuples)",
            [list(tables)],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'ANALYZE (SKIP_LOCKED) "{name}"')  # not behind a VACUUM


def index_rows(table: str, where: str, params: dict | None = None) -> None:
    """Replace the entries of the rows of an unversioned `table` matching `where`."""
    if not enabled():
        return
    spec = SPECS[table]
    _execute(
        f"DELETE FROM search_entries e WHERE e.key = ANY(ARRAY(SELECT {spec.key} FROM {table} t "
        f"WHERE {where})) AND e.resource = %(r)s",
        {"r": table, **(params or {})},
    )
    _execute(
        f"INSERT INTO search_entries ({COLUMNS}) SELECT %(r)s, {spec.key}, {spec.at}, "
        f"NULL, NULL, NULL, NULL, NULL, {spec.doc()} FROM {table} t WHERE {where}",
        {"r": table, **(params or {})},
    )


def drop_days(table: str, days_sql: str) -> None:
    """Drop the entries of an unversioned `table` dated on the days of `days_sql`."""
    if not enabled():
        return
    _execute(
        f"DELETE FROM search_entries e WHERE e.resource = %(r)s AND e.valid_to IS NULL "
        f"AND e.at::date IN ({days_sql})",
        {"r": table},
    )


def rebuild(*, move_follower: bool = True) -> int:
    """Recompute the entries of every table's current rows; file-line entries are kept.
    The search follower then stands at each table's current version (in the caller's
    transaction; its positions locked first). `move_follower=False`: a migration from
    before the followers existed."""
    from datalake.lake import followers

    tables = versioned_tables() if move_follower else ()
    for table in tables:
        followers.locked_position("search", table)
    if tables:  # merges of these tables wait (as for rebuild_metrics): rows = versions
        _execute(
            "SELECT 1 FROM datalake_resource WHERE name = ANY(%(t)s) ORDER BY id FOR UPDATE",
            {"t": list(tables)},
        )
    _execute("DELETE FROM search_entries WHERE raw_file IS NULL")
    _execute("UPDATE search_entries SET valid_to = 0 WHERE valid_to IS NULL")
    total = 0
    for spec in SPECS.values():
        current = "t.valid_to IS NULL" if spec.versioned else "true"
        # A current file-line entry of the same record is current again, not duplicated.
        if spec.versioned:
            _execute(
                f"UPDATE search_entries e SET valid_to = NULL FROM {spec.table} t "
                f"WHERE e.resource = %(r)s AND e.valid_to = 0 AND e.key = {spec.key} "
                f"AND e.valid_from = t.valid_from AND t.valid_to IS NULL",
                {"r": spec.table},
            )
        total += _execute(
            f"INSERT INTO search_entries ({COLUMNS}) SELECT %(r)s, {spec.key}, {spec.at}, "
            f"{'t.valid_from' if spec.versioned else 'NULL'}, NULL, NULL, NULL, NULL, "
            f"{spec.doc()} FROM {spec.table} t WHERE {current} AND NOT EXISTS "
            f"(SELECT 1 FROM search_entries e WHERE e.resource = %(r)s AND e.key = {spec.key} "
            f"AND e.valid_to IS NULL)",
            {"r": spec.table},
        )
    for table in tables:
        position = followers.move_to("search", table)
        _execute(  # lines of the versions the rebuild made current
            "DELETE FROM search_lines WHERE resource = %(r)s AND version <= %(v)s",
            {"r": table, "v": position},
        )
    return total
