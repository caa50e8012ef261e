"""Redaction: a sealed request's body replaced by a marker, the chain still verifying.

For a body that must not be kept (personal data sent by mistake, a court order): the
body becomes `{"_redacted": {"at", "reason"}}` and nothing else of the request changes;
its seal keeps the digest of the former body, which the verification uses (and counts
in `redacted`). Only sealed requests can be redacted (the trigger of migration 0005
checks it, with `lineage.audit_redaction` on for the transaction).
"""

from __future__ import annotations

import unicodedata

import orjson
from django.db import connection, transaction
from django.utils import timezone

from datalake.errors import Conflict, Invalid, NotFound
from lineage.models import RequestLog, RequestSeal


def redact(log_id: int, reason: str) -> None:
    if not RequestLog.objects.filter(pk=log_id).exists():
        raise NotFound(f"No stored request {log_id}.")
    if not RequestSeal.objects.filter(log_id=log_id).exists():
        raise Conflict(f"Request {log_id} is not sealed yet: seal it first (seal_audit).")
    # control characters out (a NUL cannot be stored in jsonb), a reason required
    reason = "".join(c for c in reason if unicodedata.category(c) != "Cc").strip()[:500]
    if not reason:
        raise Invalid("Give the reason of the redaction.")
    marker = {"_redacted": {"at": timezone.now().isoformat(), "reason": reason}}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lineage.audit_redaction', 'on', true)")
        cursor.execute(
            f"UPDATE {RequestLog._meta.db_table} SET body = %s::jsonb WHERE id = %s",
            [orjson.dumps(marker).decode(), log_id],
        )
