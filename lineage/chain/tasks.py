"""The audit chain's periodic jobs (beat: `audit-seal`, `audit-retention`), on a queue of
their own (`audit`, one worker) so that no long report or training delays a seal."""

from __future__ import annotations

from celery import shared_task

from accounts.access import serves_no_data
from lineage.chain import retention, sealer


@serves_no_data("seals stored requests in the audit chain; returns counts only")
@shared_task(name="audit.seal", ignore_result=True)
def seal() -> dict:
    done = sealer.seal()
    return {"sealed": done.sealed, "through": done.through, "skipped": done.skipped}


@serves_no_data("deletes sealed requests older than the retention; returns the cut")
@shared_task(name="audit.retention", ignore_result=True)
def apply_retention() -> int | None:
    return retention.apply()
