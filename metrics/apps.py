from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from auditlog.registry import auditlog

        from datalake.lake import hooks
        from metrics import aggregates
        from metrics.ml.models import MLModel, ModelVersion, Training

        # Every merge of `transactions` that changed rows moves the aggregates (same
        # transaction, once the version is recorded).
        hooks.on_merged(aggregates.after_merge)

        # Who asked for a training, each version published and made current: admin log entries.
        auditlog.register(Training)
        auditlog.register(ModelVersion)
        auditlog.register(MLModel)
