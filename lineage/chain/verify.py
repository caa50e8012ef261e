"""Verification: the chain recomputed from a trusted start, against its seals and the
signed checkpoints.

The start is the genesis, or the newest well-signed retention cut. From there every
seal is read in sequence order with its request, and:
- a sequence that does not follow the one before: `missing` (seals deleted);
- a seal whose request is gone: `missing` (a run of them is one finding);
- a request whose link, recomputed from the previous seal's link, differs from its
  seal's: `hash_mismatch` (its body, status, user... was changed), and the chain goes
  on from the stored link, so one changed request is one finding;
- a checkpoint whose link differs from the seal at its sequence: `hash_mismatch` (the
  requests since the checkpoint before were changed and their links recomputed);
- checkpoints beyond the last seal: `truncated` (the newest seals were deleted);
- a checkpoint file that is unreadable, or signed by another key: `bad_checkpoint`.

A body replaced by the redaction procedure is checked by its kept digest, and counted;
one replaced by a marker without the procedure's signed record is a `hash_mismatch`.
The same code reads the database or an export (export.py), so an export is verified
on another machine with the public keys only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction

from lineage.chain import checkpoints, encoding
from lineage.models import RequestLog, RequestSeal, SealQueue

MAX_FINDINGS = 1000  # listed; `findings_total` counts them all
FETCH = 20_000
REQUEST_ID = encoding.COLUMNS.index("l.request_id")


@dataclass
class Finding:
    kind: str
    sequence: int | None
    request_id: str | None
    detail: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "sequence": self.sequence, "request_id": self.request_id,
                "detail": self.detail}  # fmt: skip


@dataclass
class Report:
    start: int = 0  # the trusted link's sequence the verification began after
    verified_through: int = 0
    rows: int = 0
    checkpoints: int = 0
    anchored_through: int = 0  # the last checkpoint that matched
    redacted: int = 0
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    complete: bool = True  # False: a limit stopped the walk before the range's end

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    def add(self, kind: str, sequence: int | None, detail: str, request_id: str | None = None):
        self.findings_total += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(kind, sequence, request_id, detail))

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "complete": self.complete,
            "verified_through": self.verified_through,
            "checkpoints": self.checkpoints,
            "findings": [f.as_dict() for f in self.findings],
            "findings_total": self.findings_total,
            "start": self.start,
            "anchored_through": self.anchored_through,
            "rows": self.rows,
            "redacted": self.redacted,
        }


# A seal with its request: (sequence, log_id, body_hash, hash, columns or None, body).
Sealed = tuple[int, int, bytes, bytes, tuple | None, str | None]


def check(rows: Iterable[Sealed], start: int, start_link: bytes,
          marks: list[checkpoints.Checkpoint], report: Report,
          redactions: dict[int, checkpoints.Checkpoint]) -> Report:  # fmt: skip
    """Walk `rows` (by sequence, after `start`) against `marks` (checkpoints after
    `start`, by sequence) and `redactions` (the signed records, by sequence)."""
    report.start = report.verified_through = start
    expected, previous = start + 1, start_link
    marks = [m for m in marks if m.sequence > start]
    pending = iter(marks)
    mark = next(pending, None)
    clean = True  # no finding yet: verified_through follows
    gone: list[int] = []  # a run of seals whose requests are gone

    def close_gone():
        if gone:
            report.add("missing", gone[0], _gone_text(gone[0], gone[-1]))
            gone.clear()

    for sequence, log_id, body_digest, stored, columns, body in rows:
        # a NULL (the column's constraint dropped by hand) is a digest that matches nothing
        body_digest = b"" if body_digest is None else bytes(body_digest)
        stored = b"" if stored is None else bytes(stored)
        report.rows += 1
        bridged = sequence == expected
        if not bridged:
            close_gone()
            clean = False
            detail = _missing_text(expected, sequence - 1)
            while mark is not None and mark.sequence < sequence:  # fell in the gap
                if mark.sequence == sequence - 1:  # its link: the next row is checkable
                    previous, bridged = mark.hash, True
                report.checkpoints += 1
                mark = next(pending, None)
            if not bridged:
                detail += f"; sequence {sequence} after it could not be checked (no link before it)"
            report.add("missing", expected, detail)
        if not bridged:
            pass
        elif columns is None:
            if gone and gone[-1] != sequence - 1:
                close_gone()
            gone.append(sequence)
            clean = False
        else:
            close_gone()
            actual = encoding.body_hash(body)
            digest_changed = actual != body_digest
            unsigned = False
            if digest_changed and encoding.is_redacted(body):
                report.redacted += 1
                actual, digest_changed = body_digest, False
                record = redactions.get(sequence)
                unsigned = record is None or record.hash != body_digest
            link = encoding.link(previous, encoding.encode(sequence, columns, actual))
            if link != stored:
                clean = False
                report.add(
                    "hash_mismatch", sequence,
                    f"request {log_id} differs from what was sealed (its columns or body "
                    f"were changed)", columns[REQUEST_ID] or None,
                )  # fmt: skip
            elif unsigned:  # a marker put in by hand: the body is hidden, not redacted
                clean = False
                report.add(
                    "hash_mismatch", sequence,
                    f"the body of request {log_id} was replaced by a redaction marker without "
                    "a signed redaction record (not by redact_audit_body)",
                    columns[REQUEST_ID] or None,
                )  # fmt: skip
            elif digest_changed:  # the link holds: the seal's kept digest was changed
                clean = False
                report.add(
                    "hash_mismatch", sequence,
                    f"the seal of request {log_id} keeps another body digest than its body's "
                    "(changed in the seal: a redaction would be checked against it)",
                    columns[REQUEST_ID] or None,
                )  # fmt: skip
        previous, expected = stored, sequence + 1
        while mark is not None and mark.sequence <= sequence:
            if mark.sequence == sequence:
                if mark.hash != stored:
                    clean = False
                    previous = mark.hash  # the trusted link goes on (as the sealer does)
                    report.add(
                        "hash_mismatch", sequence,
                        f"the seal differs from the checkpoint {mark.path.name} of "
                        f"{mark.at:%Y-%m-%d %H:%M:%S}Z: requests up to it were changed or "
                        "removed and the chain recomputed",
                    )  # fmt: skip
                elif clean:
                    report.anchored_through = sequence
                report.checkpoints += 1
            else:  # a checkpoint at a sequence that was skipped: already reported missing
                report.checkpoints += 1
            mark = next(pending, None)
        if clean:
            report.verified_through = sequence
    close_gone()
    if mark is not None:
        beyond = [mark, *pending]
        report.checkpoints += len(beyond)
        report.add(
            "truncated", expected,
            f"sequences {expected} to {beyond[-1].sequence} are gone: the checkpoint "
            f"{beyond[-1].path.name} of {beyond[-1].at:%Y-%m-%d %H:%M:%S}Z covers them",
        )  # fmt: skip
    return report


def _missing_text(first: int, last: int) -> str:
    which = f"sequence {first}" if first == last else f"sequences {first} to {last}"
    return f"{which}: no seal (deleted from the chain)"


def _gone_text(first: int, last: int) -> str:
    which = f"sequence {first}" if first == last else f"sequences {first} to {last}"
    return f"{which}: the sealed requests are gone (their seals remain)"


def bad_files(found: list[checkpoints.Unreadable], report: Report) -> None:
    for bad in found:
        report.add("bad_checkpoint", bad.sequence, bad.detail)


def start_of(cuts: list[checkpoints.Checkpoint]) -> tuple[int, bytes]:
    """The trusted start: the newest retention cut, else the genesis."""
    return (cuts[-1].sequence, cuts[-1].hash) if cuts else (0, encoding.GENESIS)


# -- the database ------------------------------------------------------------------------

SELECT = (
    f"SELECT s.sequence, s.log_id, s.body_hash, s.hash, "
    f"l.id IS NOT NULL, {', '.join(encoding.COLUMNS)}, {encoding.BODY} "
    f"FROM {RequestSeal._meta.db_table} s "
    f"LEFT JOIN {RequestLog._meta.db_table} l ON l.id = s.log_id "
    "WHERE s.sequence > %s AND s.sequence <= %s ORDER BY s.sequence"
)


def database(*, since: dt.datetime | None = None, until: dt.datetime | None = None,
             verifying: dict, max_rows: int | None = None) -> Report:  # fmt: skip
    """Verify the stored chain (between the checkpoints around `since` and `until`; at
    most `max_rows` seals, then `complete` is False)."""
    report = Report()
    with snapshot() as cursor:
        # the day folders before the snapshot (a checkpoint is written after its seals
        # commit: all it covers is seen), the cuts after (a cut is written before its
        # deletions: any deletion seen has its cut)
        # Only the names of the files, and only the files of the range are read: a year
        # of checkpoints is millions of files.
        entries = checkpoints.files()
        cursor.execute("SELECT 1")  # the snapshot is taken
        _marks, cuts, bad_cuts = checkpoints.scan(verifying, days=False)
        redactions, bad_records = checkpoints.redactions(verifying)  # written before theirs
        _walk(cursor, report, entries, cuts, redactions, bad_cuts + bad_records,
              verifying=verifying, since=since, until=until, max_rows=max_rows)  # fmt: skip
    return report


def _walk(cursor, report: Report, entries: list, cuts: list, redactions: dict, bad: list, *,
          verifying: dict, since, until, max_rows) -> None:  # fmt: skip
    start, link = start_of(cuts)
    first_day = None
    if since is not None:  # from the newest checkpoint before `since` that the chain holds
        mark = checkpoints.newest_at_or_before(entries, verifying, since, after=start)
        if mark is not None:
            start, link, first_day = mark.sequence, mark.hash, mark.at.date()
    end = 2**63 - 1
    if until is not None:
        mark = checkpoints.first_at_or_after(entries, verifying, until, after=start)
        if mark is not None:
            end = mark.sequence
    if max_rows is not None:
        cursor.execute(
            f"SELECT sequence FROM {RequestSeal._meta.db_table} WHERE sequence > %s "
            "AND sequence <= %s ORDER BY sequence OFFSET %s LIMIT 1",
            [start, end, max_rows],
        )
        beyond = cursor.fetchone()
        if beyond:  # stop before it; the checkpoints after are for the next call
            end, report.complete = beyond[0] - 1, False
    marks, unreadable = checkpoints.read_range(
        entries, verifying, after=start, through=end, first_day=first_day
    )
    bad_files(bad + unreadable, report)
    walked: list[int] = []  # the lowest and highest request id the walk read
    check(_ids(stream(cursor, start, end), walked), start, link, marks, report, redactions)
    whole = since is None and until is None and report.complete
    unchained(cursor, None if whole else (min(walked), max(walked)) if walked else (1, 0),
              report)  # fmt: skip


def _ids(rows: Iterator[Sealed], walked: list[int]) -> Iterator[Sealed]:
    low = high = None
    for row in rows:
        low = row[1] if low is None or row[1] < low else low
        high = row[1] if high is None or row[1] > high else high
        yield row
    if low is not None:
        walked += [low, high]


UNCHAINED = (
    f"SELECT count(*), min(l.id) FROM {RequestLog._meta.db_table} l "
    f"WHERE NOT EXISTS (SELECT 1 FROM {RequestSeal._meta.db_table} s WHERE s.log_id = l.id) "
    f"AND NOT EXISTS (SELECT 1 FROM {SealQueue._meta.db_table} q WHERE q.log_id = l.id)"
)


def unchained(cursor, ids: tuple[int, int] | None, report: Report) -> None:
    """Stored requests neither sealed nor queued (in the snapshot, every committed
    request is one or the other: its queue entry comes in its transaction and goes in
    its seal's): their queue entries were deleted, and they could be changed at will.
    `ids`: only between these request ids (a walk of part of the chain)."""
    if ids is None:
        cursor.execute(UNCHAINED)
    else:
        cursor.execute(UNCHAINED + " AND l.id BETWEEN %s AND %s", list(ids))
    count, first = cursor.fetchone()
    if count:
        cursor.execute(f"SELECT request_id FROM {RequestLog._meta.db_table} WHERE id = %s", [first])
        report.add(
            "missing", None,
            f"{count} requests stored but neither sealed nor queued for sealing, from request "
            f"{first} (their queue entries were deleted: they are outside the chain)",
            cursor.fetchone()[0] or None,
        )  # fmt: skip


@contextlib.contextmanager
def snapshot():
    """A cursor in one read-only snapshot for a whole walk: a round sealing meanwhile is
    not half seen (inside a caller's transaction, that transaction's)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield cursor


def stream(cursor, start: int, end: int) -> Iterator[Sealed]:
    raw = cursor.connection.cursor(name="audit_verify")
    raw.itersize = FETCH
    raw.execute(SELECT, [start, end])
    for sequence, log_id, body_digest, stored, present, *columns, body in raw:
        yield sequence, log_id, body_digest, stored, tuple(columns) if present else None, body
    raw.close()


def unsealed() -> dict:
    """The requests not sealed yet: how many, and how long the oldest has waited."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), min(l.at) FROM {SealQueue._meta.db_table} q "
            f"LEFT JOIN {RequestLog._meta.db_table} l ON l.id = q.log_id"
        )
        count, oldest = cursor.fetchone()
    return {"count": count, "oldest_at": oldest}
