"""Moving a run through its states; every write is one conditional UPDATE.

`claim` takes a run for one attempt (a new claim token, `running`, `started_at`,
`heartbeat_at`, `attempts + 1`); `finish` (and `succeed`/`fail`/`skip`) records the
outcome only while that attempt still holds it; `release` gives it back (`queued`);
`Heartbeat` moves `heartbeat_at` from a thread while a body runs; `execute` does all of
it around a kind's body. `fail_stalled` and `requeue_stalled` are the stall policies.
"""

from __future__ import annotations

import logging
import secrets
import threading
import traceback
import uuid
from collections.abc import Callable

from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from datalake.platform import replicas
from datalake.runs.models import FINAL_STATES, Run, RunStatus

logger = logging.getLogger(__name__)


class RunBusy(Exception):
    """A live attempt elsewhere holds the run: try later (the task retries)."""


def _set(run: Run, fields: dict) -> None:
    for name, value in fields.items():
        if not hasattr(value, "resolve_expression"):
            setattr(run, name, value)


def claim(run: Run, task_id: str = "") -> bool:
    """Take `run` for this attempt, in one UPDATE: it is in one of its kind's `claimable`
    states and, if `running`, its heartbeat stopped (its attempt lost its worker). Two
    attempts never both take it; a finished run is never taken (a redelivered message
    is a no-op)."""
    model = type(run)
    now, token = timezone.now(), secrets.token_hex(8)
    fields = {"status": RunStatus.RUNNING, "started_at": now, "heartbeat_at": now,
              "task_id": task_id or run.task_id, "claim": token, "error": "",
              "attempts": F("attempts") + 1}  # fmt: skip
    waiting = [s for s in model.claimable if s != RunStatus.RUNNING]
    free = Q(status__in=waiting)
    if RunStatus.RUNNING in model.claimable:
        dead = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=model.stall_cutoff())
        free |= Q(status=RunStatus.RUNNING) & dead
    taken = model.objects.filter(free, pk=run.pk).update(**fields)
    if taken:
        _set(run, fields)
        run.attempts = (run.attempts or 0) + 1
    return bool(taken)


def held(run: Run) -> bool:
    """Whether this attempt still holds `run` (locks the row inside a transaction)."""
    locked = type(run).objects.select_for_update().filter(pk=run.pk).values("claim", "status")
    row = locked.first()
    return bool(row) and row["claim"] == run.claim and row["status"] == RunStatus.RUNNING


def update(run: Run, /, **fields) -> bool:
    """Write `fields` of a run this attempt holds (progress, counts); False if it lost it."""
    _set(run, fields)
    return bool(type(run).objects.filter(pk=run.pk, claim=run.claim).update(**fields))


def finish(run: Run, status: str, /, **fields) -> bool:
    """Record the outcome if this attempt still holds the run, still running (False:
    another attempt took it, or the outcome is already recorded)."""
    assert status in FINAL_STATES, status
    fields = {"status": status, "finished_at": timezone.now(), **fields}
    done = type(run).objects.filter(pk=run.pk, claim=run.claim, status=RunStatus.RUNNING)
    if not done.update(**fields):
        return False
    _set(run, fields)
    # Its requester's next reads see what it wrote (a replica that has replayed it, or
    # the primary: datalake.platform.replicas).
    replicas.wrote(getattr(run, "requested_by_id", None))
    return True


def succeed(run: Run, /, **fields) -> bool:
    return finish(run, RunStatus.SUCCEEDED, **fields)


def skip(run: Run, /, **fields) -> bool:
    return finish(run, RunStatus.SKIPPED, **fields)


def fail(run: Run, error: str, /, **fields) -> bool:
    return finish(run, RunStatus.FAILED, error=error[:4000], **fields)


def release(run: Run) -> None:
    """Give back a run this attempt took but will not execute (queued again)."""
    type(run).objects.filter(pk=run.pk, claim=run.claim).update(
        status=RunStatus.QUEUED, heartbeat_at=None, claim=""
    )


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:4000]


class Heartbeat:
    """While a body executes, a thread (its own connection) moves the `heartbeat_at` of the
    runs held (`hold`) every `heartbeat_seconds()` of their kind: a run whose heartbeat
    stops lost its worker. The database down a moment: the next beat.

    Inside a transaction (the claim not committed, so no other connection sees it) there
    is nothing to beat for: no thread."""

    def __init__(self, model: type[Run]):
        self.model = model
        self.held: list[tuple[int, str]] = []  # (run, claim) taken by this attempt
        self.stopped = threading.Event()
        self.thread = None
        if not connection.in_atomic_block:
            self.thread = threading.Thread(
                target=self._beat, daemon=True, name=f"{model._meta.model_name}-heartbeat"
            )

    def hold(self, run: Run) -> None:
        self.held.append((run.pk, run.claim))

    def __enter__(self):
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        if self.thread is not None:
            self.thread.join(10)

    def _beat(self) -> None:
        from django.db import connection as own  # this thread's connection

        try:
            while not self.stopped.wait(self.model.heartbeat_seconds()):
                held = Q()
                for pk, token in list(self.held):
                    held |= Q(pk=pk, claim=token)
                if not held:
                    continue
                try:
                    self.model.objects.filter(held, status=RunStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("%s heartbeat not stored (database unavailable)", self.model)
                    own.close()
        finally:
            own.close()


def execute(
    model: type[Run],
    run_id: int,
    body: Callable[[Run], None],
    *,
    task_id: str = "",
    queryset=None,
    error_text: Callable[[BaseException], str] = error_text,
    expected: tuple[type[BaseException], ...] = (),
) -> Run:
    """Claim the run, execute `body(run)` with a heartbeat, record the outcome.

    The body records its own outcome (`succeed`, `skip`, `fail`, in the transaction of
    its last writes) or returns, and the run succeeds. An exception fails it (logged with
    its traceback unless one of `expected`: the requester's data or parameters). A run
    that cannot be claimed (finished, or held by a live attempt) is returned as it is:
    a redelivered message does nothing twice."""
    run = (queryset or model.objects).get(pk=run_id)
    if not claim(run, task_id):
        return run
    with Heartbeat(model) as heartbeat:
        heartbeat.hold(run)
        try:
            body(run)
        except Exception as exc:
            if isinstance(exc, expected):
                logger.warning("%s %s failed: %s", model.run_label, run.pk, exc)
            else:
                logger.exception("%s %s failed", model.run_label, run.pk)
            fail(run, error_text(exc))
        else:
            succeed(run)  # no-op if the body recorded the outcome (status no more running)
    run.refresh_from_db()
    return run


def fail_stalled(model: type[Run]) -> list[int]:
    """Stall policy FAIL: every stalled run of the kind fails with the kind's reason.
    Nothing stalled (the usual case, asked on every report listing): one query."""
    if not model.stalled().exists():
        return []
    with transaction.atomic():
        stalled = model.stalled().order_by("pk").select_for_update(skip_locked=True)
        ids = list(stalled.values_list("pk", flat=True))
        if ids:
            model.objects.filter(pk__in=ids).update(
                status=RunStatus.FAILED, error=model.stall_error(), finished_at=timezone.now(),
                claim="",
            )  # fmt: skip
    if ids:
        logger.warning("%s %s had lost their worker: failed", model.run_label, ids)
    return ids


def requeue_stalled(model: type[Run]) -> list[int]:
    """Stall policy REQUEUE: each stalled run queued again with a new task (`task_name`,
    its id as argument); one past `max_attempts` fails instead."""
    with transaction.atomic():
        stalled = list(model.stalled().order_by("pk").select_for_update(skip_locked=True))
        for run in stalled:
            if run.attempts >= model.max_attempts:
                model.objects.filter(pk=run.pk).update(
                    status=RunStatus.FAILED, finished_at=timezone.now(), claim="",
                    error=f"{model.stall_error()} {run.attempts} attempts: given up.",
                )  # fmt: skip
                continue
            task_id = str(uuid.uuid4())
            model.objects.filter(pk=run.pk).update(
                status=RunStatus.QUEUED, task_id=task_id, claim="", heartbeat_at=None
            )
            transaction.on_commit(lambda pk=run.pk, task_id=task_id: _send(model, pk, task_id))
    ids = [run.pk for run in stalled]
    if ids:
        logger.warning("%s %s had lost their worker: queued again", model.run_label, ids)
    return ids


def _send(model: type[Run], pk: int, task_id: str) -> None:
    from celery import current_app

    task = current_app.tasks.get(model.task_name)
    if task is not None:  # registered here: eager mode applies
        task.apply_async([pk], task_id=task_id)
    else:
        current_app.send_task(model.task_name, [pk], task_id=task_id)


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()
