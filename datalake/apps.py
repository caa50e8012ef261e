from django.apps import AppConfig


class DatalakeConfig(AppConfig):
    name = "datalake"
    verbose_name = "Data lake catalog"

    def ready(self):
        from django.db.models.signals import post_migrate

        from datalake.catalog.sync import register_after_migrate
        from datalake.lake import followers, hooks
        from datalake.search import index as search_index

        post_migrate.connect(register_after_migrate, sender=self)
        # What reads need besides the rows follows the committed versions
        # (datalake.lake.followers): each version tells the followers it is there, or,
        # with FOLLOWERS_EAGER, the merge derives it itself.
        hooks.on_merged(followers.after_merge)
        # The search index: a file's merge keeps its rows' file lines for the follower;
        # the entries of the versioned tables follow; unversioned tables (no version to
        # follow) are indexed again in the transaction that replaces their rows.
        hooks.on_written(search_index.keep_lines)
        followers.register(
            followers.Follower("search", search_index.versioned_tables, search_index.apply_batch)
        )
        hooks.on_replaced(search_index.after_replace)
