"""Per-user limits on the background jobs a request may queue (reports, trainings).

A loop of requests must not fill the workers: each kind of job has a limit of
unfinished jobs per user (a setting); past it the request answers 429 in the error
envelope. The count and the insert are one step: a per-(kind, user) advisory lock,
held until the caller's transaction ends, makes concurrent requests take turns.
"""

from __future__ import annotations

from django.db import connection

from datalake.errors import TooManyJobs


def refuse_too_many_running(user, unfinished, *, limit: int, what: str, code: str) -> None:
    """429 `code` when `user` already has `limit` jobs in `unfinished` (a queryset of
    that user's unfinished jobs). Call inside the transaction that creates the job."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s), %s)", [f"jobs:{what}", user.pk % 2**31]
        )
    running = unfinished.count()
    if running >= limit:
        raise TooManyJobs(
            f"You have {running} {what} queued or running (at most {limit}); wait for one to end.",
            code=code,
        )
