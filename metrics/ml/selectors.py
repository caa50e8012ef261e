"""Who sees which trainings and models."""

from __future__ import annotations

from accounts.access import Access
from metrics.ml.models import MLModel, Training
from metrics.ml.registry import ModelType, model_types


def visible_trainings(access: Access):
    """Only the requester and staff see a training."""
    return access.own(Training.objects.select_related("requested_by"))


def readable_trainings(access: Access):
    """The visible trainings whose metrics the user may still read: those of models whose
    resource it reads unrestricted now (a grant revoked or restricted after the training
    ran counts from the next request, as for reports); staff: all."""
    qs = visible_trainings(access)
    if access.is_staff:
        return qs
    return qs.filter(model_name__in=[m.name for m in readable_model_types(access)])


def readable_model_types(access: Access) -> list[type[ModelType]]:
    """The models whose data the user may read whole (staff: all), by name."""
    readable = access.resources_with("read")  # None: every resource (staff)
    if readable is None:
        return list(model_types())
    candidates = [m for m in model_types() if m.resource in readable]
    limits = access.restrictions({m.resource for m in candidates})
    return [m for m in candidates if not limits[m.resource].restricted]


def model_state(model_type: type[ModelType]) -> tuple[MLModel | None, list, int]:
    """(its row or None before any training, its 10 newest versions, how many it has)."""
    model = MLModel.objects.filter(name=model_type.name).first()
    if model is None:
        return None, [], 0
    versions = model.versions.select_related("requested_by", "model")
    return model, list(versions[:10]), versions.count()
