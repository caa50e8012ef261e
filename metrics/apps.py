from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from auditlog.registry import auditlog

        from datalake.lake import followers
        from metrics import aggregates, scopes
        from metrics.ml.models import MLModel, ModelVersion, Training

        # The aggregates follow the committed versions of `transactions`, after the merge
        # (datalake.lake.followers): the range of a batch's versions in one pass.
        # Scopes no grant needs any more are dropped in its housekeeping (metrics.scopes).
        followers.register(
            followers.Follower(
                "metrics",
                lambda: ("transactions",),
                aggregates.apply_batch,
                max_versions=500,
                housekeeping=scopes.prune,
            )
        )

        # Who asked for a training, each version published and made current: admin log entries.
        auditlog.register(Training)
        auditlog.register(ModelVersion)
        auditlog.register(MLModel)
