from django.apps import AppConfig


class DatalakeConfig(AppConfig):
    name = "datalake"
    verbose_name = "Data lake catalog"

    def ready(self):
        from django.db.models.signals import post_migrate

        from datalake.catalog.sync import register_after_migrate
        from datalake.lake import hooks
        from datalake.search import index as search_index

        post_migrate.connect(register_after_migrate, sender=self)
        # The search index follows every merge, in its transaction.
        hooks.on_written(search_index.after_write)
        hooks.on_replaced(search_index.after_replace)
