from django.apps import AppConfig


class DatalakeConfig(AppConfig):
    name = "datalake"
    verbose_name = "Data lake catalog"

    def ready(self):
        from django.db.models.signals import post_migrate

        from datalake.catalog.sync import register_after_migrate

        post_migrate.connect(register_after_migrate, sender=self)
