"""Housekeeping of the shared files (beat: `sharing-drop-unreachable`)."""

from __future__ import annotations

from celery import shared_task

from accounts.access import serves_no_data
from datalake.models import Resource
from datalake.sharing import snapshots


@serves_no_data("removes shared files whose signed URLs have all expired; reads no data")
@shared_task(name="sharing.drop_unreachable")
def drop_unreachable() -> list[str]:
    current = dict(Resource.objects.filter(versioning=True).values_list("name", "current_version"))
    return snapshots.drop_unreachable(current)
