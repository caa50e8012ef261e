"""Bodies of the machine-learning endpoints (trainings, models, predictions)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.reverse import reverse

from datalake.api.strict import StrictSerializer
from datalake.runs.models import RunStatus
from datalake.runs.serializers import RunStatusField, wire_words
from metrics.ml.models import ModelVersion, Training

# A training's status on the wire (API.md): the runs' own words; it is never skipped.
TRAINING_WORDS = {s: s for s in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED,
                                 RunStatus.FAILED)}  # fmt: skip
TRAINING_STATUSES = wire_words(TRAINING_WORDS)  # the OpenAPI enum (ENUM_NAME_OVERRIDES)


class TrainingCreateSerializer(StrictSerializer):
    model = serializers.CharField(help_text="A model name from `GET /api/v1/ml/models/`.")
    params = serializers.JSONField(
        default=dict, help_text="Its training parameters (the model's `params` JSON Schema)."
    )


class TrainingSerializer(serializers.ModelSerializer):
    status = RunStatusField(
        TRAINING_WORDS, help_text="`queued`, `running`, then `succeeded` or `failed`."
    )
    url = serializers.HyperlinkedIdentityField(
        view_name="ml-training-detail", help_text="This training, to poll its status."
    )
    model = serializers.CharField(
        source="model_name", read_only=True, help_text="The model trained."
    )
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    metrics = serializers.JSONField(
        read_only=True,
        help_text="On success: the `estimator` chosen (`boosted`, `seasonal-naive`, `mean`) "
        "and why (`estimator_reason`), `mae`, `rmse` of the model and `naive_mae`, "
        "`naive_rmse` of the naive forecast (yesterday's value) on the held-back days, "
        "`mae_vs_naive` (their ratio: under 1 beats it), `beats_naive`, and that window.",
    )
    promotion = serializers.JSONField(
        read_only=True,
        help_text="On success: `became_current` (whether its version replaced the current "
        "one: only if its `mae_vs_naive` is no higher), `previous_version`, "
        "`previous_mae_vs_naive`, `mae_vs_naive`. A version left aside can be promoted.",
    )
    model_version = serializers.IntegerField(
        read_only=True, help_text="The version this training published (on success)."
    )
    data_version = serializers.IntegerField(
        read_only=True, help_text="The version of the model's resource it learnt from."
    )

    class Meta:
        model = Training
        fields = [
            "id",
            "url",
            "model",
            "params",
            "status",
            "error",
            "metrics",
            "model_version",
            "promotion",
            "data_version",
            "requested_by",
            "created_at",
            "started_at",
            "finished_at",
            "attempts",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "The training's id."},
            "params": {"help_text": "The training parameters asked for."},
            "error": {"help_text": "Why it failed; empty otherwise."},
            "created_at": {"help_text": "When it was requested."},
            "started_at": {"help_text": "When a worker started it; null while queued."},
            "finished_at": {"help_text": "When it ended; null until then."},
            "attempts": {
                "help_text": "How many times a worker started it (a lost worker's "
                "training is started again)."
            },
        }


class ModelVersionSerializer(serializers.ModelSerializer):
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    training_id = serializers.IntegerField(read_only=True, help_text="The training that made it.")
    path = serializers.CharField(
        read_only=True, help_text="Its folder in the lake, relative to LAKE_ROOT."
    )
    current = serializers.SerializerMethodField(
        help_text="Whether `predict/` answers from this version now."
    )

    def get_current(self, obj) -> bool:
        return obj.model.current_version == obj.version

    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "trained_at",
            "data_version",
            "data_from",
            "data_until",
            "params",
            "metrics",
            "path",
            "current",
            "requested_by",
            "training_id",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "version": {"help_text": "The version number, 1 for the first, then +1."},
            "trained_at": {"help_text": "When its training ended."},
            "data_from": {"help_text": "The first day of the data it learnt from."},
            "data_until": {"help_text": "The last day of the data it learnt from."},
            "params": {"help_text": "The training parameters it was made with."},
            "metrics": {
                "help_text": "Its errors on the held-back days, beside the naive "
                "forecast's (as the training's `metrics`)."
            },
        }


class PromoteSerializer(StrictSerializer):
    version = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="The version to make current."
    )


class MLModelSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The model's name, as in its URLs.")
    description = serializers.CharField(help_text="What it predicts, and from what.")
    resource = serializers.CharField(help_text="The resource it learns from (`read` needed).")
    params = serializers.JSONField(help_text="Its training parameters, as a JSON Schema.")
    current_version = serializers.IntegerField(
        allow_null=True, help_text="The version `predict/` answers from; null before any."
    )
    versions_count = serializers.IntegerField(help_text="How many versions were trained.")
    versions = ModelVersionSerializer(many=True, help_text="The 10 newest versions.")
    url = serializers.SerializerMethodField(help_text="This model.")
    versions_url = serializers.SerializerMethodField(help_text="Every version, paginated.")
    predict_url = serializers.SerializerMethodField(help_text="`POST` here to predict.")

    def _link(self, obj, view: str) -> str:
        request = self.context["request"]
        return reverse(view, kwargs={"name": obj["name"]}, request=request)

    def get_url(self, obj) -> str:
        return self._link(obj, "ml-model-detail")

    def get_versions_url(self, obj) -> str:
        return self._link(obj, "ml-model-versions")

    def get_predict_url(self, obj) -> str:
        return self._link(obj, "ml-model-predict")


class PredictionSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The model that answered.")
    model_version = serializers.IntegerField(help_text="The version that answered.")
    product_id = serializers.CharField(help_text="The product asked about.")
    date = serializers.DateField(help_text="The day asked about.")
    prediction = serializers.FloatField(help_text="Expected units sold that day.")
    actual = serializers.IntegerField(
        allow_null=True, help_text="Units sold that day in the model's data (null past it)."
    )
    data_until = serializers.DateField(help_text="The last day of the model's data.")
    days_ahead = serializers.IntegerField(
        help_text="Days past the last day of data (0 inside it): forecasts fed back."
    )
