"""Trainings of machine-learning models and the versions they publish in the lake.

A training is a row that moves queued -> running -> succeeded | failed. A succeeded
training publishes one `ModelVersion` (its artifact under `LAKE_ROOT/models/<name>/v<N>/`)
and makes it the current version of its `MLModel` if it scores at least as well as the
current one (`Training.promotion` says), in one transaction that holds the `MLModel` row
locked: version numbers are unique and gapless per model.
"""

from django.db import models

from datalake.runs.models import FINAL_STATES, ReadableRunQuerySet, Run, RunStatus, StallPolicy

TrainingStatus = RunStatus  # a training is never skipped
__all__ = ["FINAL_STATES", "TrainingStatus"]


class MLModel(models.Model):
    """A model of the registry (`metrics.ml.registry`) and the version `predict/` answers
    from. Its row is the lock under which versions are numbered."""

    name = models.SlugField(max_length=100, unique=True)
    current_version = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "ml_models"
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} (v{self.current_version or '-'})"


class Training(Run):
    """One training requested through the API: its parameters, state, metrics and the
    version it published. It reads data with its requester's privileges. One whose
    worker died (heartbeat stopped) is queued again, up to `max_attempts` attempts."""

    model_name = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(null=True, blank=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    promotion = models.JSONField(
        null=True, blank=True, help_text="On success: whether its version became current."
    )
    data_version = models.PositiveIntegerField(null=True, blank=True)
    requested_by = models.ForeignKey(
        "auth.User", null=True, on_delete=models.SET_NULL, related_name="trainings"
    )

    run_label = "training"
    label_fields = ("model_name",)
    stall_policy = StallPolicy.REQUEUE
    task_name = "ml.train"

    objects = ReadableRunQuerySet.as_manager()  # .readable_by(user): accounts.access.rules

    class Meta:
        db_table = "ml_trainings"
        ordering = ["-id"]


class ModelVersion(models.Model):
    """A trained model stored in the lake; never changed once published."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    path = models.CharField(max_length=500, help_text="Its folder, relative to LAKE_ROOT.")
    params = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    data_version = models.PositiveIntegerField(
        null=True, help_text="The version of the resource it learnt from."
    )
    data_from = models.DateField(null=True)
    data_until = models.DateField(null=True)
    training = models.OneToOneField(
        Training, null=True, on_delete=models.SET_NULL, related_name="published"
    )
    requested_by = models.ForeignKey(
        "auth.User", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    trained_at = models.DateTimeField()

    class Meta:
        db_table = "ml_model_versions"
        ordering = ["model", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="ml_version_unique")
        ]

    def __str__(self):
        return f"{self.model.name} v{self.version}"
