"""The abstract run: one status vocabulary, its times, attempts, error and claim.

A run moves `queued` -> `running` -> `succeeded` | `failed` (| `skipped`: nothing to do,
e.g. an ingestion run whose file was already loaded). An attempt takes it with a claim
(`lifecycle.claim`: one UPDATE, so two deliveries of one message never both execute it),
moves `heartbeat_at` while it works, and records the outcome only while it still holds
the claim. A run whose heartbeat stopped lost its worker: the beat job
`runs.recover_stalled` applies its kind's `stall_policy` (queue it again, fail it, or the
kind's own recovery).

A kind declares, as class attributes: `run_label` (what it is called), `label_fields`
(the kind-specific label shown in the admin), `claimable` (the states an attempt may
take it from), `stall_policy`, and may override `stalled()` and `recover_stalled()`.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.access.querysets import ReadableQuerySet


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


FINAL_STATES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED)
ACTIVE_STATES = (RunStatus.QUEUED, RunStatus.RUNNING)


class StallPolicy(models.TextChoices):
    """What the beat job does with a run whose worker died."""

    REQUEUE = "requeue", "queued again (a new task), failed past max_attempts"
    FAIL = "fail", "failed, with the reason"
    OWN = "own", "the kind's own recover_stalled()"


class RunQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATES)

    def finished(self):
        return self.filter(status__in=FINAL_STATES)


class ReadableRunQuerySet(ReadableQuerySet, RunQuerySet):
    """A run kind's manager: listed through the access layer (`readable_by`, a rule in
    accounts/access/rules.py) with the runs' own filters (`active()`...)."""


class Run(models.Model):
    status = models.CharField(
        max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Moved every few seconds while an attempt runs."
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Attempts started.")
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    claim = models.CharField(
        max_length=32, blank=True, help_text="The attempt executing it (a new one per start)."
    )

    objects = RunQuerySet.as_manager()

    # -- the kind's policies (class attributes, overridden per kind) ----------------------
    run_label = "run"
    label_fields: tuple[str, ...] = ()  # the admin's kind-specific label
    claimable = ACTIVE_STATES  # a running one only when its heartbeat stopped
    stall_policy = StallPolicy.FAIL
    max_attempts = 3  # REQUEUE: past it, failed
    task_name = ""  # REQUEUE: the Celery task that executes one run (its id as argument)

    class Meta:
        abstract = True

    def __str__(self):
        label = self.label()
        return f"{self.run_label} {self.pk} {label + ' ' if label else ''}({self.status})"

    def label(self) -> str:
        return " ".join(str(getattr(self, name)) for name in self.label_fields)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATES

    @classmethod
    def heartbeat_seconds(cls) -> float:
        return settings.RUN_HEARTBEAT_SECONDS

    @classmethod
    def stall_seconds(cls) -> float:
        return settings.RUN_STALL_SECONDS

    @classmethod
    def stall_cutoff(cls) -> dt.datetime:
        return timezone.now() - dt.timedelta(seconds=cls.stall_seconds())

    @classmethod
    def stalled(cls) -> models.QuerySet:
        """Runs whose attempt lost its worker: `running`, the heartbeat older than the cutoff."""
        return cls.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cls.stall_cutoff())

    @classmethod
    def stall_error(cls) -> str:
        return f"The worker stopped (no heartbeat for {cls.stall_seconds():g} s)."

    @classmethod
    def recover_stalled(cls) -> list[int]:
        """Apply the kind's stall policy to its stalled runs; their ids."""
        from datalake.runs import lifecycle

        if cls.stall_policy == StallPolicy.REQUEUE:
            return lifecycle.requeue_stalled(cls)
        return lifecycle.fail_stalled(cls)


def run_models() -> list[type[Run]]:
    """Every concrete run kind of the installed apps."""
    from django.apps import apps

    return [m for m in apps.get_models() if issubclass(m, Run)]
