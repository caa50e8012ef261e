"""Redaction: a sealed request's body replaced by a marker, the chain still verifying.

For a body that must not be kept (personal data sent by mistake, a court order): the
body becomes `{"_redacted": {"at", "reason"}}` and nothing else of the request changes;
its seal keeps the digest of the former body, which the verification uses (and counts
in `redacted`). Only sealed requests can be redacted (the trigger of migration 0005
checks it, with `lineage.audit_redaction` on for the transaction). Each redaction is
signed (a record of kind `redaction`, checkpoints.py) before the body is replaced:
whoever replaces a body by a marker without the key is found.
"""

from __future__ import annotations

import contextlib
import unicodedata

import orjson
from django.db import connection, transaction
from django.utils import timezone

from datalake.errors import Conflict, Invalid, NotFound
from lineage.chain import checkpoints
from lineage.models import RequestLog, RequestSeal


def redact(log_id: int, reason: str) -> None:
    if not RequestLog.objects.filter(pk=log_id).exists():
        raise NotFound(f"No stored request {log_id}.")
    seal = RequestSeal.objects.filter(log_id=log_id).values_list("sequence", "body_hash").first()
    if seal is None:
        raise Conflict(f"Request {log_id} is not sealed yet: seal it first (seal_audit).")
    # control characters out (a NUL cannot be stored in jsonb), a reason required
    reason = "".join(c for c in reason if unicodedata.category(c) != "Cc").strip()[:500]
    if not reason:
        raise Invalid("Give the reason of the redaction.")
    marker = {"_redacted": {"at": timezone.now().isoformat(), "reason": reason}}
    # the signed record first (outside the database, with the key): a marker without one
    # is a body hidden by hand; one left by a failed update below is harmless
    sequence, digest = seal[0], bytes(seal[1])
    with contextlib.suppress(FileExistsError):  # redacted before: that record holds
        checkpoints.write("redaction", sequence, digest, count=1, first=sequence, previous=None)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lineage.audit_redaction', 'on', true)")
        cursor.execute(
            f"UPDATE {RequestLog._meta.db_table} SET body = %s::jsonb WHERE id = %s",
            [orjson.dumps(marker).decode(), log_id],
        )
