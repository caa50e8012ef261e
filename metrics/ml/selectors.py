"""Reads of the models' state. Who sees which trainings and models: accounts.access.rules."""

from __future__ import annotations

from metrics.ml.models import MLModel
from metrics.ml.registry import ModelType


def model_state(model_type: type[ModelType]) -> tuple[MLModel | None, list, int]:
    """(its row or None before any training, its 10 newest versions, how many it has)."""
    model = MLModel.objects.filter(name=model_type.name).first()
    if model is None:
        return None, [], 0
    versions = model.versions.select_related("requested_by", "model")
    return model, list(versions[:10]), versions.count()
