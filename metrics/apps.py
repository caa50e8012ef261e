from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from auditlog.registry import auditlog

        from datalake.lake import followers
        from metrics import aggregates
        from metrics.ml.models import MLModel, ModelVersion, Training

        # The aggregates follow the committed versions of `transactions`, after the merge
        # (datalake.lake.followers): the range of a batch's versions in one pass.
        followers.register(
            followers.Follower(
                "metrics", lambda: ("transactions",), aggregates.apply_batch, max_versions=500
            )
        )

        # Who asked for a training, each version published and made current: admin log entries.
        auditlog.register(Training)
        auditlog.register(ModelVersion)
        auditlog.register(MLModel)
