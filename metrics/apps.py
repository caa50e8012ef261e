from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "metrics"

    def ready(self):
        from auditlog.registry import auditlog

        from metrics.ml.models import MLModel, ModelVersion, Training

        # Who asked for a training, each version published and made current: admin log entries.
        auditlog.register(Training)
        auditlog.register(ModelVersion)
        auditlog.register(MLModel)
