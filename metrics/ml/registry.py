"""The model types: adding a model is adding one class (no URL changes), as for reports."""

from __future__ import annotations

from dataclasses import dataclass, field

from rest_framework import serializers

REGISTRY: dict[str, type[ModelType]] = {}


class TrainingError(Exception):
    """A training that cannot be done with this data or these parameters: its message is
    the `error` the requester reads."""


class PredictionError(Exception):
    """A prediction request the current version cannot answer; `field` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class Trained:
    """What `train` returns: the object to store, and what is known of it."""

    artifact: object
    metrics: dict
    params: dict
    data_version: int | None
    data_from: object = None
    data_until: object = None
    details: dict = field(default_factory=dict)  # more metadata, e.g. counts and features


class ModelType:
    """Subclass, set `name`, `description`, `resource` (read with the requester's
    privileges), `Params` and `PredictInput` (serializers), and implement `train(params)`
    and `predict(artifact, data)`."""

    name: str = ""
    description: str = ""
    resource: str = "transactions"
    Params: type[serializers.Serializer] = serializers.Serializer
    PredictInput: type[serializers.Serializer] = serializers.Serializer

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name:
            REGISTRY[cls.name] = cls

    def train(self, params: dict) -> Trained:
        raise NotImplementedError

    def predict(self, artifact, data: dict) -> dict:
        raise NotImplementedError


def get_model_type(name: str) -> type[ModelType] | None:
    from metrics.ml import product_demand  # noqa: F401  (registers the built-in model)

    return REGISTRY.get(name)


def model_types() -> list[type[ModelType]]:
    from metrics.ml import product_demand  # noqa: F401

    return [REGISTRY[name] for name in sorted(REGISTRY)]
