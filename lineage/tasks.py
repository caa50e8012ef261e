"""Celery finds the request log's tasks here (autodiscover); they live in lineage/chain/."""

from lineage.chain.tasks import apply_retention, seal  # noqa: F401
