"""Reads of ingestion runs and their rejects, on the reader's terms.

A reject is data of the source's table: its parsed fields are shown as rows are (row
filter, column list, masks); its raw line only to an unrestricted reader of the
source's raw-file resource (`raw_<source>`), which holds that very line.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from accounts.access import Access, Restriction
from datalake.catalog import get_entry
from datalake.lake.merge import MAIN_TABLE
from ingestion.daily.services import in_landing_folder
from ingestion.models import IngestionRun, Reject, RepushRequest
from ingestion.sources import SOURCES

RUN_COUNTS = ("rows_read", "rows_loaded", "rows_rejected", "rows_added", "rows_changed")


def restricted_sources(access: Access) -> dict[str, Restriction]:
    """The user's restriction on each source's table, for the sources it is restricted
    on: a run's counts are over every row of a file (not shown under a row filter, as
    the catalog hides `row_count`), and its error may quote a value of any column."""
    if access.is_staff:
        return {}
    by_table = access.restrictions(MAIN_TABLE.values())  # one query, not one per table
    limits = {s: by_table[t] for s, t in MAIN_TABLE.items()}
    return {source: limit for source, limit in limits.items() if limit.restricted}


@dataclass(frozen=True)
class RejectShape:
    """How one reader sees the rejects of one run."""

    limit: Restriction
    columns: frozenset[str]  # the table's columns: a reject shows no other field
    raw: bool  # the raw line is shown
    reasons: bool  # the reason's sentence is shown (it may quote any field of the line)


def reject_shape(run: IngestionRun, access: Access) -> RejectShape:
    table = MAIN_TABLE[run.source]
    limit = access.restriction(table)
    entry = get_entry(table)
    columns = frozenset(entry.column_names if entry else ())
    raw_name = f"raw_{run.source}"
    raw = (
        in_landing_folder(run.source, run.path)
        and access.holds("read", raw_name)
        and not access.restriction(raw_name).restricted
    )
    whole = {n for n, _ in SOURCES[run.source].columns} <= columns
    return RejectShape(limit, columns, raw, raw or (whole and not limit.restricted))


def run_rejects(run: IngestionRun, shape: RejectShape) -> QuerySet:
    """The rejects the reader may see, in line order: under a row filter, only those
    whose fields pass it (a line whose fields could not be read never does)."""
    rejects = run.rejects.all()
    if shape.limit.rows is not None:
        allowed = Q(pk__in=[])
        for conditions in shape.limit.rows:
            allowed |= Q(**{f"fields__{n}__in": list(v) for n, v in conditions.items()})
        rejects = rejects.filter(allowed)
    return rejects


def reject_body(reject: Reject, shape: RejectShape) -> dict:
    """One reject as the reader sees it: fields dropped and masked as in rows."""
    limit = shape.limit
    fields = {
        k: v for k, v in (reject.fields or {}).items() if k in shape.columns and not limit.hides(k)
    }
    limit.mask_rows([fields])
    return {
        "line": reject.line,
        "raw": reject.raw if shape.raw else None,
        "fields": fields,
        "reason": reject.reason if shape.reasons else reject.reason.split(":", 1)[0],
    }


def repush_row(push: RepushRequest, fields: list[str], access: Access) -> dict | None:
    """The record a processed re-push stored, as the reader may read it: None outside the
    reader's row filter, hidden columns absent, masked ones as pseudonyms."""
    from datalake.models import Transaction
    from datalake.query.backends import row_filter_q

    limit = access.restriction(push.resource)
    current = Transaction.objects.filter(transaction_id=push.transaction_id, valid_to__isnull=True)
    if limit.rows is not None:
        current = current.filter(row_filter_q(limit.rows))
    row = current.values(*limit.visible(fields)).first()
    return limit.mask_rows([row])[0] if row is not None else None


def repush_shows_original(push: RepushRequest, access: Access) -> bool:
    """Whether the re-pushed record's stored timestamp may be shown to the reader: the
    column is visible in clear, and the record passes the reader's row filter."""
    from datalake.models import Transaction
    from datalake.query.backends import row_filter_q

    limit = access.restriction(push.resource)
    if limit.hides("timestamp") or "timestamp" in limit.masked:
        return False
    if limit.rows is None:
        return True
    current = Transaction.objects.filter(transaction_id=push.transaction_id, valid_to__isnull=True)
    return current.filter(row_filter_q(limit.rows)).exists()
