"""Who sees which trainings and models."""

from __future__ import annotations

from accounts.access.grants import resources_with
from accounts.access.restrictions import restriction_for
from metrics.ml.models import MLModel, Training
from metrics.ml.registry import ModelType, model_types


def visible_trainings(user):
    """Only the requester and staff see a training."""
    qs = Training.objects.select_related("requested_by")
    return qs if user.is_staff else qs.filter(requested_by=user)


def readable_trainings(user):
    """The visible trainings whose metrics the user may still read: those of models whose
    resource it reads unrestricted now (a grant revoked or restricted after the training
    ran counts from the next request, as for reports); staff: all."""
    qs = visible_trainings(user)
    if user.is_staff:
        return qs
    return qs.filter(model_name__in=[m.name for m in readable_model_types(user)])


def readable_model_types(user) -> list[type[ModelType]]:
    """The models whose data the user may read whole (staff: all), by name."""
    readable = resources_with(user, "read")  # None: every resource (staff)
    return [
        m
        for m in model_types()
        if readable is None
        or (m.resource in readable and not restriction_for(user, m.resource).restricted)
    ]


def model_state(model_type: type[ModelType]) -> tuple[MLModel | None, list, int]:
    """(its row or None before any training, its 10 newest versions, how many it has)."""
    model = MLModel.objects.filter(name=model_type.name).first()
    if model is None:
        return None, [], 0
    versions = model.versions.select_related("requested_by", "model")
    return model, list(versions[:10]), versions.count()
