"""`GET /healthz`: 200 when PostgreSQL, Redis and the pipeline broker answer, else 503.

Open to anyone (load balancers, compose): it answers names and states only. Why a check
failed (exception texts carry hosts, users, broker addresses) goes to the log. `spark`:
where ingestion jobs run, local mode or a cluster's state (datalake/platform/spark.py).
"""

from __future__ import annotations

import logging

import redis
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from accounts.access import serves_no_data
from datalake.platform import spark

logger = logging.getLogger(__name__)


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check_broker() -> None:
    admin = AdminClient(
        {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "socket.timeout.ms": 2000}
    )
    admin.list_topics(timeout=3)


CHECKS = {"database": check_database, "redis": check_redis, "broker": check_broker}


def follower_lags() -> dict:
    """{follower: {resource: {lag_versions, lag_seconds}}}: how far behind each is."""
    from datalake.lake import followers

    out: dict = {}
    for state in followers.states():
        out.setdefault(state.follower, {})[state.resource] = {
            "lag_versions": state.lag_versions,
            "lag_seconds": round(state.lag_seconds, 3),
        }
    return out


@serves_no_data("health of the database, Redis and the broker: up or down; followers' lag")
def healthz(request):
    """Each dependency's state, `ok` or `error`; the errors themselves are logged only.

    `followers`: how far behind the committed versions each follower is (in versions and
    seconds); `replicas`: each read replica's state and lag. Open to anyone, so lags
    only: the version numbers are in the catalog entry (`derived_through_version`) and the
    Prometheus gauges. A follower behind is no outage: reads answer at its position and
    say so."""
    checks, failing = {}, []
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception:  # any failure of a dependency is a 503, never a 500
            logger.warning("healthz: %s is failing", name, exc_info=True)
            checks[name] = "error"
            failing.append(name)
    lags = None
    if "database" not in failing:
        try:
            lags = follower_lags()
        except Exception:
            logger.warning("healthz: the followers' positions could not be read", exc_info=True)
    extra = {"followers": lags, **replica_states(), "spark": spark.health(request)}
    if failing:
        body = {"status": "unavailable", "failing": failing, "checks": checks, **extra}
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": checks, **extra})


def replica_states() -> dict:
    """`replicas` (when DATABASE_REPLICA_URLS names any): each one's `up`, `standby`,
    `lag_seconds`, `replay_paused` and whether reads may go to it now (`usable`); never
    the database's error text. A replica down or behind is no outage: the primary
    answers its reads."""
    from datalake.platform import replicas

    return {"replicas": replicas.health()} if replicas.aliases() else {}
