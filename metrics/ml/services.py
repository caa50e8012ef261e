"""Trainings: start one, execute it with its requester's privileges, publish the version
(current only if it scores at least as well as the current one), promote a version;
predictions from the current version."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.access import Access
from datalake.errors import AccessDenied, Conflict, Invalid, NotFound
from datalake.platform.jobs import refuse_too_many_running
from datalake.runs import lifecycle
from metrics.ml import artifacts
from metrics.ml.models import FINAL_STATES, MLModel, ModelVersion, Training
from metrics.ml.registry import ModelType, PredictionError, Trained, TrainingError, get_model_type

logger = logging.getLogger(__name__)


def params_of(model_type: type[ModelType], params) -> dict:
    """The validated parameters (defaults filled in); unknown ones are a 400."""
    if not isinstance(params, dict):
        raise Invalid({"params": ["Must be an object."]})
    unknown = sorted(set(params) - set(model_type.Params().fields))
    if unknown:
        raise Invalid({"params": [f"Unknown parameter(s): {', '.join(unknown)}."]})
    data = model_type.Params(data=params)
    if not data.is_valid():
        raise Invalid({"params": data.errors})
    return data.validated_data


def check_trainer(user, model_type: type[ModelType], request=None) -> None:
    """AccessDenied unless `user` may read the model's data whole (a restricted grant may
    not) and write to it: a training costs a worker for minutes and its version may become
    what every reader's predictions come from, which is the data owners' call, not a
    reader's. `request`: the request being served (its `Access`), None in a task."""
    access = Access.of(request) if request is not None else Access(user)
    resource = model_type.resource
    if not (access.holds("read", resource) and access.holds("write", resource)):
        raise AccessDenied(
            f"The {model_type.name} model learns from {resource!r}; training it or choosing "
            "its current version needs `read` and `write` on it."
        )
    access.require_unrestricted(resource, "Models")


@transaction.atomic
def training_start(*, model: str, params: dict, requested_by, request=None) -> Training:
    """Validate and queue a training; the task reads data with the requester's privileges.
    At most TRAININGS_MAX_RUNNING_PER_USER unfinished per user (429)."""
    model_type = get_model_type(model)
    if model_type is None:
        raise Invalid({"model": [f"Unknown model {model!r}: see GET /api/v1/ml/models/."]})
    check_trainer(requested_by, model_type, request)
    params_of(model_type, params)
    _refuse_too_many_running(requested_by)
    training = Training.objects.create(model_name=model, params=params, requested_by=requested_by)
    from metrics.tasks import run_training

    transaction.on_commit(lambda: run_training.delay(training.pk))
    return training


def _refuse_too_many_running(user) -> None:
    """429 past TRAININGS_MAX_RUNNING_PER_USER unfinished trainings of `user`; one older than
    ML_TRAINING_TIMEOUT lost its worker or its task (a running one past it has been
    stopped) and counts no more."""
    since = timezone.now() - dt.timedelta(seconds=settings.ML_TRAINING_TIMEOUT + 60)
    unfinished = Training.objects.filter(requested_by=user, created_at__gte=since).exclude(
        status__in=FINAL_STATES
    )
    refuse_too_many_running(
        user, unfinished, limit=settings.TRAININGS_MAX_RUNNING_PER_USER, what="trainings",
        code="too_many_running_trainings",
    )  # fmt: skip


def training_execute(training_id: int, task_id: str = "") -> Training:
    """Train and publish; a finished training is left alone (a redelivered task is a no-op)
    and one whose worker died (`running`, its heartbeat stopped) is done again from the
    start. A TrainingError (the data or the parameters: the requester's to fix) is logged
    without a traceback."""
    return lifecycle.execute(
        Training, training_id, _train, task_id=task_id, error_text=_error_text,
        queryset=Training.objects.select_related("requested_by"), expected=(TrainingError,),
    )  # fmt: skip


def _train(training: Training) -> None:
    staging = None
    try:
        model_type = get_model_type(training.model_name)
        if model_type is None:
            raise TrainingError(f"Unknown model {training.model_name!r}.")
        try:
            check_trainer(training.requested_by, model_type)
        except AccessDenied as exc:
            raise TrainingError(f"The requester may no longer train it: {exc.detail}") from None
        trained = model_type().train(params_of(model_type, training.params))
        staging = artifacts.stage(model_type.name, trained.artifact)
        _publish(training, trained, staging)
    except BaseException:
        artifacts.discard(staging)
        raise


def _error_text(exc: Exception) -> str:
    if isinstance(exc, TrainingError):
        return str(exc)[:4000]
    if isinstance(exc, Invalid):
        return f"Invalid parameters: {exc.detail}"[:4000]
    return f"{type(exc).__name__}: {exc}"[:4000]


def _publish(training: Training, trained: Trained, staging) -> ModelVersion | None:
    """Number the version under the model's lock, put its folder in place, make it current."""
    name = training.model_name
    MLModel.objects.get_or_create(name=name)
    with transaction.atomic():
        if not lifecycle.held(training):  # another delivery of the task took it or ended it
            artifacts.discard(staging)
            return None
        model = MLModel.objects.select_for_update().get(name=name)
        version = (model.versions.aggregate(n=Max("version"))["n"] or 0) + 1
        trained_at = timezone.now()
        metadata = _metadata(training, trained, version, trained_at)
        final = artifacts.publish(staging, name, version, metadata)
        try:
            published = ModelVersion.objects.create(
                model=model, version=version, path=artifacts.relative(final),
                params=trained.params, metrics=trained.metrics, data_version=trained.data_version,
                data_from=trained.data_from, data_until=trained.data_until, training=training,
                requested_by=training.requested_by, trained_at=trained_at,
            )  # fmt: skip
            promotion = _promotion(model, trained.metrics)
            if promotion["became_current"]:
                model.current_version = version
                model.save(update_fields=["current_version", "updated_at"])
            lifecycle.succeed(
                training, metrics=trained.metrics, model_version=version,
                data_version=trained.data_version, promotion=promotion,
            )  # fmt: skip
        except Exception:
            artifacts.discard(final)  # still under the lock: nobody else numbered this version
            raise
    return published


def mae_vs_naive(metrics: dict) -> float | None:
    """The model's MAE over the naive forecast's on its held-back days (lower is better;
    under 1 beats the naive forecast): comparable between versions measured on different
    days, whose absolute errors are not. None when the naive forecast made no error."""
    if metrics.get("mae_vs_naive") is not None or "mae" not in metrics:
        return metrics.get("mae_vs_naive")
    naive = metrics.get("naive_mae")
    return round(metrics["mae"] / naive, 4) if naive else None


def _promotion(model: MLModel, metrics: dict) -> dict:
    """Whether a new version replaces the current one: if it scores at least as well
    (`mae_vs_naive` no higher; a tie goes to the newer data), or if there is none.
    Without a score on either side (a naive forecast without error), by `mae`."""
    previous = model.versions.filter(version=model.current_version).first()
    new_score = mae_vs_naive(metrics)
    if previous is None:
        better = True
        old_score = None
    else:
        old_score = mae_vs_naive(previous.metrics)
        if new_score is not None and old_score is not None:
            better = new_score <= old_score
        else:
            better = metrics.get("mae", 0) <= previous.metrics.get("mae", float("inf"))
    return {
        "became_current": better,
        "previous_version": previous.version if previous else None,
        "previous_mae_vs_naive": old_score,
        "mae_vs_naive": new_score,
    }


def model_promote(*, model_type: type[ModelType], version: int, by, request=None) -> MLModel:
    """Make `version` the current one (its `predict/` answers), whatever its score: the
    explicit choice of a user who may train the model. 404 for a version it does not have."""
    check_trainer(by, model_type, request)
    with transaction.atomic():
        model = MLModel.objects.select_for_update().filter(name=model_type.name).first()
        if model is None or not model.versions.filter(version=version).exists():
            raise NotFound(f"The {model_type.name} model has no version {version}.")
        if model.current_version != version:
            model.current_version = version
            model.save(update_fields=["current_version", "updated_at"])
    logger.info("%s made version %s of %s current", by.username, version, model_type.name)
    return model


def _metadata(training: Training, trained: Trained, version: int, trained_at) -> dict:
    import numpy
    import sklearn

    user = training.requested_by
    return {
        "model": training.model_name,
        "version": version,
        "params": trained.params,
        "data": {
            "resource": get_model_type(training.model_name).resource,
            "version": trained.data_version,
            "from": trained.data_from,
            "until": trained.data_until,
            **trained.details,
        },
        "metrics": trained.metrics,
        "trained_at": trained_at,
        "requested_by": user.username if user else None,
        "training_id": training.pk,
        "files": {"model": artifacts.MODEL_FILE},
        "libraries": {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__},
    }


def model_predict(*, model_type: type[ModelType], data: dict) -> dict:
    """A prediction of the current version; 409 `model_not_trained` before any."""
    model = MLModel.objects.filter(name=model_type.name).first()
    if model is None or model.current_version is None:
        raise Conflict(
            f"The {model_type.name} model has not been trained yet: POST /api/v1/ml/trainings/ "
            f'{{"model": "{model_type.name}"}} and wait for it to succeed.',
            code="model_not_trained",
        )
    version = model.versions.get(version=model.current_version)
    try:
        artifact = artifacts.load(model_type.name, version.path)
    except FileNotFoundError:
        raise Conflict(
            f"Version {version.version} is missing from the lake ({version.path}); train again.",
            code="model_artifact_missing",
        ) from None
    try:
        result = model_type().predict(artifact, data)
    except PredictionError as exc:
        raise Invalid({exc.field: [str(exc)]}) from None
    return {"model": model_type.name, "model_version": version.version, **data, **result}
