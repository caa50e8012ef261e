"""A sealing round: every request committed since the last round gets its link.

One round at a time (a session advisory lock; a round that finds it taken does nothing),
in transactions of at most `AUDIT_SEAL_BATCH` requests: the queued ids (migration 0005)
in id order, their links computed from the last one, the seals written and the ids
dequeued in the same transaction. After the last commit, the round writes one signed
checkpoint of the chain's end. The chain continues from the last seal in the database,
unless the newest checkpoint is further on (seals were deleted): then it continues from
the checkpoint, which is trusted, and says so in the error log; verification reports
the lost stretch as `truncated`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lineage.chain import checkpoints, encoding, keys
from lineage.models import RequestLog, RequestSeal, SealQueue

logger = logging.getLogger(__name__)

LOCK = 0x6C696E6561676531  # pg advisory lock key: one sealer at a time
LOG = RequestLog._meta.db_table
SEALS = RequestSeal._meta.db_table
QUEUE = SealQueue._meta.db_table
NEXT = f"SELECT log_id FROM {QUEUE} ORDER BY log_id LIMIT %s"
ROWS = (  # a request sealed already (its id queued again by hand) is not sealed twice
    f"SELECT {', '.join(encoding.COLUMNS)}, {encoding.BODY} FROM {LOG} l "
    f"WHERE l.id = ANY(%s) AND NOT EXISTS (SELECT 1 FROM {SEALS} s WHERE s.log_id = l.id) "
    "ORDER BY l.id"
)


@dataclass(frozen=True)
class Round:
    sealed: int  # requests sealed
    through: int  # the chain's last sequence after the round
    checkpoint: str  # the checkpoint's file, '' if none was written
    skipped: bool = False  # another round held the lock


def seal(*, max_seconds: float | None = None) -> Round:
    """Seal what is queued (for at most `max_seconds`, then the next round goes on)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK])
        if not cursor.fetchone()[0]:
            return Round(0, 0, "", skipped=True)
    try:
        return _round(max_seconds if max_seconds is not None else settings.AUDIT_SEAL_SECONDS * 4)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK])


def _round(max_seconds: float) -> Round:
    deadline = time.monotonic() + max_seconds
    verifying = keys.verifying_keys()
    anchor = checkpoints.latest(verifying)
    sequence, last = _chain_end(anchor)
    first, sealed = sequence + 1, 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(NEXT, [settings.AUDIT_SEAL_BATCH])
                ids = [row[0] for row in cursor.fetchall()]
                if not ids:
                    break
                cursor.execute(ROWS, [ids])
                rows = cursor.fetchall()
                now = timezone.now()
                links = []
                for *columns, body in rows:
                    sequence += 1
                    body_digest = encoding.body_hash(body)
                    last = encoding.link(last, encoding.encode(sequence, columns, body_digest))
                    links.append((sequence, columns[0], body_digest, last, now))
                with cursor.copy(
                    f"COPY {SEALS} (sequence, log_id, body_hash, hash, sealed_at) FROM STDIN"
                ) as copy:
                    for row in links:
                        copy.write_row(row)
                cursor.execute(f"DELETE FROM {QUEUE} WHERE log_id = ANY(%s)", [ids])
                if len(rows) < len(ids):  # deleted before its seal, or queued again by hand
                    logger.error(
                        "Audit chain: %d queued requests were gone before their seal, or "
                        "sealed already",
                        len(ids) - len(rows),
                    )
            sealed += len(links)
        if len(ids) < settings.AUDIT_SEAL_BATCH or time.monotonic() > deadline:
            break
    covered = anchor.sequence if anchor else 0
    if not sealed and sequence <= covered:
        return Round(0, sequence, "")
    # also with nothing sealed when seals lie beyond the newest checkpoint (a round whose
    # checkpoint write failed): `count` and `first` are then what it newly covers
    written = checkpoints.write(
        "checkpoint", sequence, last, count=sealed or sequence - covered,
        first=first if sealed else covered + 1, previous=anchor.sequence if anchor else None,
    )  # fmt: skip
    return Round(sealed, sequence, str(written.path))


def _chain_end(anchor: checkpoints.Checkpoint | None) -> tuple[int, bytes]:
    """The sequence and link the next seal follows."""
    newest = RequestSeal.objects.order_by("-sequence").values_list("sequence", "hash").first()
    sequence, last = (newest[0], bytes(newest[1])) if newest else (0, encoding.GENESIS)
    if anchor is None or anchor.sequence < sequence:
        return sequence, last
    if (anchor.sequence > sequence and not (newest is None and anchor.kind == "cut")) or (
        anchor.sequence == sequence and anchor.hash != last
    ):
        logger.error(
            "Audit chain: the database ends at sequence %d but the checkpoint %s is at %d; "
            "sealing goes on from the checkpoint (verify_audit names what was lost)",
            sequence, anchor.path, anchor.sequence,
        )  # fmt: skip
    return anchor.sequence, anchor.hash
