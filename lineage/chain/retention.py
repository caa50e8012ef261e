"""Retention: whole sealed ranges older than `AUDIT_RETENTION_DAYS` are deleted.

The cut is a checkpoint older than the retention (the newest such): a signed `cut`
checkpoint at its sequence and link is written first, then the seals and their
requests up to it are deleted in batches (the append-only triggers let them through
only with `lineage.audit_retention` set to the cut, migration 0005). Verification starts
from the newest cut: what lies before it is expected to be gone, and a deletion that
stopped halfway is finished by the next run. 0 days (the default) keeps everything.
The range is verified before it is cut: with a finding, nothing more is cut (deleting
it would delete the evidence) and the error log says so, until the finding is dealt with.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lineage.chain import checkpoints, keys, verify
from lineage.models import RequestLog, RequestSeal

logger = logging.getLogger(__name__)
BATCH = 50_000


def apply(*, now: dt.datetime | None = None, days: int | None = None) -> int | None:
    """Cut and delete what the retention allows; the cut's sequence, or None."""
    days = settings.AUDIT_RETENTION_DAYS if days is None else days
    if days <= 0:
        return None
    limit = (now or timezone.now()) - dt.timedelta(days=days)
    marks, cuts, _bad = checkpoints.scan(keys.verifying_keys(), until=limit)
    current = cuts[-1].sequence if cuts else 0
    older = [m for m in marks if m.at < limit and m.sequence > current]
    if older:
        mark = older[-1]
        found = _verify(cuts, [m for m in marks if m.sequence <= mark.sequence], mark.sequence)
        if not found.ok:  # deleting the range would delete the evidence: kept, and said
            logger.error(
                "Audit retention: no cut at sequence %d, verification of the range found %d "
                "problems (first: %s); run verify_audit", mark.sequence, found.findings_total,
                found.findings[0].detail if found.findings else "",
            )  # fmt: skip
            if current:
                delete_through(current)  # a former cut's deletion cut short still ends
            return current or None
        checkpoints.write("cut", mark.sequence, mark.hash, count=mark.sequence - current,
                          first=current + 1, previous=mark.sequence)  # fmt: skip
        current = mark.sequence
    if current:
        delete_through(current)
    return current or None


def _verify(cuts: list, marks: list, end: int) -> verify.Report:
    """The range from the current start to the cut to come, verified before it goes."""
    report = verify.Report()
    start, link = verify.start_of(cuts)
    redactions, _bad = checkpoints.redactions(keys.verifying_keys())
    with verify.snapshot() as cursor:
        verify.check(verify.stream(cursor, start, end), start, link, marks, report, redactions)
    return report


def delete_through(cut: int) -> int:
    """Delete the seals up to `cut` and their requests, a batch a transaction."""
    deleted = 0
    seals, log = RequestSeal._meta.db_table, RequestLog._meta.db_table
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lineage.audit_retention', %s, true)", [str(cut)])
            cursor.execute(
                f"SELECT sequence, log_id FROM {seals} WHERE sequence <= %s "
                "ORDER BY sequence LIMIT %s",
                [cut, BATCH],
            )
            batch = cursor.fetchall()
            if not batch:
                return deleted
            cursor.execute(f"DELETE FROM {log} WHERE id = ANY(%s)", [[b[1] for b in batch]])
            cursor.execute(f"DELETE FROM {seals} WHERE sequence = ANY(%s)", [[b[0] for b in batch]])
            deleted += len(batch)
        logger.info("Audit retention: %d sealed requests deleted up to sequence %d", deleted, cut)
