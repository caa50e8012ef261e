"""Machine learning as remote procedure calls: train a model in the background, follow the
training, list the models and their versions, ask the current version for a prediction."""

from __future__ import annotations

import django_filters as df
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.access import Access, data_path, readable_model_types
from accounts.access.permissions import ResourcePrivilege
from datalake.api.filtering import PAGING_PARAMS, reject_unknown_params
from metrics.ml import selectors, services
from metrics.ml.models import ModelVersion, Training
from metrics.ml.product_demand import ProductDemandInput
from metrics.ml.registry import get_model_type
from metrics.ml.serializers import (
    TRAINING_STATUSES,
    MLModelSerializer,
    ModelVersionSerializer,
    PredictionSerializer,
    PromoteSerializer,
    TrainingCreateSerializer,
    TrainingSerializer,
)
from metrics.reports.schema import params_json_schema

METRICS_EXAMPLE = {
    "estimator": "boosted",
    "estimator_reason": "70 days of sales: the boosted model needs 22 or more",
    "mae": 2.91,
    "rmse": 3.78,
    "naive_mae": 4.62,
    "naive_rmse": 5.93,
    "mae_vs_naive": 0.6299,
    "beats_naive": True,
    "holdout_days": 14,
    "holdout_from": "2026-11-07",
    "holdout_until": "2026-11-20",
    "holdout_rows": 84,
    "train_rows": 324,
}
TRAINING_EXAMPLE = {
    "id": 3,
    "url": "http://localhost:8000/api/v1/ml/trainings/3/",
    "model": "product-demand",
    "params": {"holdout_days": 14},
    "status": "succeeded",
    "error": "",
    "metrics": METRICS_EXAMPLE,
    "model_version": 2,
    "promotion": {
        "became_current": True,
        "previous_version": 1,
        "previous_mae_vs_naive": 0.7012,
        "mae_vs_naive": 0.6299,
    },
    "data_version": 41,
    "requested_by": "analyst",
    "created_at": "2026-11-23T10:00:00Z",
    "started_at": "2026-11-23T10:00:00.3Z",
    "finished_at": "2026-11-23T10:00:04Z",
    "attempts": 1,
}
VERSION_EXAMPLE = {
    "version": 2,
    "trained_at": "2026-11-23T10:00:04Z",
    "data_version": 41,
    "data_from": "2026-09-12",
    "data_until": "2026-11-20",
    "params": {"holdout_days": 14, "max_iter": 100, "until": "2026-11-22"},
    "metrics": METRICS_EXAMPLE,
    "path": "models/product-demand/v2",
    "current": True,
    "requested_by": "analyst",
    "training_id": 3,
}
MODEL_EXAMPLE = {
    "name": "product-demand",
    "description": "Units of a product sold on a day (completed transactions, sum of quantity).",
    "resource": "transactions",
    "params": {"type": "object", "properties": {"holdout_days": {"type": "integer"}}},
    "current_version": 2,
    "versions_count": 2,
    "versions": [VERSION_EXAMPLE],
    "url": "http://localhost:8000/api/v1/ml/models/product-demand/",
    "versions_url": "http://localhost:8000/api/v1/ml/models/product-demand/versions/",
    "predict_url": "http://localhost:8000/api/v1/ml/models/product-demand/predict/",
}
PREDICTION_EXAMPLE = {
    "model": "product-demand",
    "model_version": 2,
    "product_id": "P0007",
    "date": "2026-11-21",
    "prediction": 13.42,
    "actual": None,
    "data_until": "2026-11-20",
    "days_ahead": 1,
}
TRAINING_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="Training id."
)
MODEL_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="Model name, e.g. product-demand."
)


def page_of(results) -> dict:
    return {"count": len(results), "next": None, "previous": None, "results": results}


class TrainingFilter(df.FilterSet):
    model = df.CharFilter(field_name="model_name", help_text="Model name.")
    status = df.ChoiceFilter(
        choices=[(w, w) for w in TRAINING_STATUSES], help_text="Training status."
    )

    class Meta:
        model = Training
        fields = []


@extend_schema_view(
    list=extend_schema(
        description="Your trainings (staff: all), newest first: only those of models whose "
        "resource you still read unrestricted.",
        examples=[
            OpenApiExample("Trainings", value=page_of([TRAINING_EXAMPLE]), response_only=True)
        ],
        tags=["machine learning"],
    ),
    retrieve=extend_schema(
        description="A training's state: `queued`, `running`, `succeeded` (with `metrics` and "
        "the `model_version` it published) or `failed` (with `error`). Only its requester "
        "and staff see it; a requester no longer holding an unrestricted `read` on the "
        "model's resource: 403.",
        parameters=[TRAINING_ID],
        examples=[OpenApiExample("Succeeded", value=TRAINING_EXAMPLE, response_only=True)],
        tags=["machine learning"],
    ),
)
@data_path(
    "the requester's own trainings; the model's resource (`read` unrestricted; `write` to train)"
)
class TrainingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = TrainingSerializer
    queryset = Training.objects.none()
    filterset_class = TrainingFilter

    def get_queryset(self):
        # A list shows only those whose model's resource is still readable; a detail
        # any of one's own (refused below when it no longer is).
        action = "list" if self.action == "list" else "view"
        return Training.objects.readable_by(self.request.user, action)

    def retrieve(self, request, *args, **kwargs):
        training = self.get_object()
        model_type = get_model_type(training.model_name)
        if not request.user.is_staff and model_type is not None:
            # Its metrics are figures over the whole resource: checked at read time.
            access = Access.of(request)
            message = "This training read {resource!r}; you no longer hold `read` on it."
            access.require("read", model_type.resource, message)
            access.require_unrestricted(model_type.resource, "Trainings")
        return Response(self.get_serializer(training).data)

    @extend_schema(
        description="Train a model in the background (a Celery task); 202 with the training's "
        "`url` to poll. Needs `read` (unrestricted) and `write` on the model's resource, "
        "checked now and again when it runs. It holds back the last `holdout_days` days to "
        "measure it against the naive forecast and stores the model in the lake under "
        "`models/<name>/v<N>/`. product-demand trains the estimator its data supports "
        "(`params.estimator` `auto`: the boosted model from 22 days of sales, else the "
        "seasonal-naive forecast, else the mean; 2 days at least) and says which in "
        "`metrics.estimator`. The new version becomes current only if its `mae_vs_naive` "
        "is no higher than the current version's (`promotion` says; else "
        "`POST ml/models/{name}/promote/`). At most `TRAININGS_MAX_RUNNING_PER_USER` unfinished "
        "trainings per user: one more is a 429 `too_many_running_trainings`. Unknown model or bad "
        "params: 400; without `read` and `write` on its resource: 403.",
        request=TrainingCreateSerializer,
        responses={202: TrainingSerializer},
        examples=[
            OpenApiExample(
                "Train product-demand",
                value={"model": "product-demand", "params": {"holdout_days": 14}},
                request_only=True,
            ),
            OpenApiExample(
                "Queued",
                value={
                    **TRAINING_EXAMPLE,
                    "status": "queued",
                    "metrics": None,
                    "model_version": None,
                    "data_version": None,
                    "started_at": None,
                    "finished_at": None,
                    "attempts": 0,
                },
                response_only=True,
                status_codes=["202"],
            ),
        ],
        tags=["machine learning"],
    )
    def create(self, request):
        data = TrainingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        training = services.training_start(
            requested_by=request.user, request=request, **data.validated_data
        )
        body = TrainingSerializer(training, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(
        description="The models whose data you may read (staff: all), with their current "
        "version and newest versions (each: metrics on its held-back days, data version, "
        "parameters, folder in the lake). Paginated.",
        responses=MLModelSerializer(many=True),
        examples=[OpenApiExample("Models", value=page_of([MODEL_EXAMPLE]), response_only=True)],
        tags=["machine learning"],
    ),
    retrieve=extend_schema(
        description="One model (needs `read` on its resource). Unknown model: 404.",
        parameters=[MODEL_NAME],
        responses=MLModelSerializer,
        examples=[OpenApiExample("product-demand", value=MODEL_EXAMPLE, response_only=True)],
        tags=["machine learning"],
    ),
)
@data_path("the model's resource (`read` unrestricted; `write` to promote)")
class MLModelViewSet(viewsets.GenericViewSet):
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_\-]+"
    permission_classes = [ResourcePrivilege]
    required_privileges = {
        "retrieve": "read", "versions": "read", "predict": "read", "promote": "write",
    }  # fmt: skip
    serializer_class = MLModelSerializer
    queryset = ModelVersion.objects.none()
    filter_backends = []

    def model_type(self):
        model_type = get_model_type(self.kwargs.get("name", ""))
        if model_type is None:
            raise NotFound(f"No model named {self.kwargs.get('name')!r}.")
        return model_type

    def get_resource_name(self) -> str:
        return self.model_type().resource

    def check_permissions(self, request):
        super().check_permissions(request)
        if self.action in self.required_privileges:  # figures over the whole resource
            Access.of(request).require_unrestricted(self.get_resource_name(), "Models")

    def _body(self, model_type) -> dict:
        model, versions, count = selectors.model_state(model_type)
        return {
            "name": model_type.name, "description": model_type.description,
            "resource": model_type.resource, "params": params_json_schema(model_type.Params),
            "current_version": model.current_version if model else None,
            "versions_count": count, "versions": versions,
        }  # fmt: skip

    def list(self, request):
        reject_unknown_params(request, PAGING_PARAMS)
        page = self.paginate_queryset(readable_model_types(request.user))
        bodies = [self._body(m) for m in page]
        data = MLModelSerializer(bodies, many=True, context={"request": request}).data
        return self.get_paginated_response(data)

    def retrieve(self, request, name=None):
        reject_unknown_params(request, {"format"})
        body = self._body(self.model_type())
        return Response(MLModelSerializer(body, context={"request": request}).data)

    @extend_schema(
        description="Every version of the model, newest first, paginated (needs `read` on "
        "its resource).",
        parameters=[MODEL_NAME],
        responses=ModelVersionSerializer(many=True),
        examples=[OpenApiExample("Versions", value=page_of([VERSION_EXAMPLE]), response_only=True)],
        tags=["machine learning"],
    )
    @action(detail=True, methods=["get"])
    def versions(self, request, name=None):
        reject_unknown_params(request, PAGING_PARAMS)
        versions = ModelVersion.objects.filter(model__name=self.model_type().name)
        versions = versions.select_related("requested_by", "model").order_by("-version")
        page = self.paginate_queryset(versions)
        data = ModelVersionSerializer(page, many=True).data
        return self.get_paginated_response(data)

    @extend_schema(
        description="A prediction of the current version: for product-demand, the units of "
        "`product_id` expected to sell on `date` (a day inside the model's data, or up to "
        "its `horizon_days` after the last one, forecast day by day). Needs `read` on the "
        "model's resource. Never trained: 409 `model_not_trained`. Unknown model: 404. A "
        "malformed date, a date out of range or a product absent from the data: 400.",
        parameters=[MODEL_NAME],
        request=ProductDemandInput,
        responses={200: PredictionSerializer},
        examples=[
            OpenApiExample(
                "A day after the data",
                value={"product_id": "P0007", "date": "2026-11-21"},
                request_only=True,
            ),
            OpenApiExample("Prediction", value=PREDICTION_EXAMPLE, response_only=True),
        ],
        tags=["machine learning"],
    )
    @action(detail=True, methods=["post"])
    def predict(self, request, name=None):
        model_type = self.model_type()
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        unknown = sorted(set(request.data) - set(model_type.PredictInput().fields))
        if unknown:
            raise ValidationError({k: ["Unknown field."] for k in unknown})
        data = model_type.PredictInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.model_predict(model_type=model_type, data=data.validated_data)
        return Response(PredictionSerializer(result).data)

    @extend_schema(
        description="Make a version the current one, the one `predict/` answers from, "
        "whatever its score: a new version only replaces the current one by itself when "
        "its `mae_vs_naive` is no higher. Needs `read` (unrestricted) and `write` on the "
        "model's resource. Answers the model. A version the model does not have: 404.",
        parameters=[MODEL_NAME],
        request=PromoteSerializer,
        responses={200: MLModelSerializer},
        examples=[
            OpenApiExample("Promote version 2", value={"version": 2}, request_only=True),
            OpenApiExample("Model", value=MODEL_EXAMPLE, response_only=True),
        ],
        tags=["machine learning"],
    )
    @action(detail=True, methods=["post"])
    def promote(self, request, name=None):
        model_type = self.model_type()
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        data = PromoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.model_promote(
            model_type=model_type, version=data.validated_data["version"], by=request.user,
            request=request,
        )  # fmt: skip
        body = self._body(model_type)
        return Response(MLModelSerializer(body, context={"request": request}).data)
