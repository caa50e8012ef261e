"""`GET /metrics`: Prometheus metrics of the web processes, ingestion and the pipeline.

- `datalake_http_request_duration_seconds{route,method,status}`: a histogram of the time
  every request spent in Django (request-log INSERT included), by URL route pattern
  (`/api/v1/resources/<name>/rows/`, never the raw path), method and status class (`2xx`).
  Observed by `lineage.middleware.RequestLogMiddleware`.
- `datalake_ingestion_runs{source,status}`, `datalake_ingestion_last_success_age_seconds`
  and `..._timestamp_seconds{source}`: read from the database at each scrape.
- `datalake_pipeline_consumer_lag{topic,partition}`: the topic's high watermark minus the
  next offset stored in the database (`PipelineOffset`), computed at scrape time with a
  short broker timeout and reused for LAG_CACHE_SECONDS; NaN with
  `datalake_pipeline_broker_up 0` while the broker does not answer.
- `datalake_audit_unsealed_requests`, `..._oldest_unsealed_age_seconds` (the seal lag
  to alert on), `datalake_audit_sealed_through` and `..._last_checkpoint_age_seconds`:
  the audit chain (lineage/chain/), from the database and the checkpoint folder.

Several gunicorn workers: with `PROMETHEUS_MULTIPROC_DIR` set (an empty folder at the
server's start), every worker writes its histogram there and any worker's `/metrics`
sums them all (prometheus_client's multiprocess mode). Without it, each process reports
its own requests only.

Access: with `Authorization: Bearer <METRICS_TOKEN>`, or from the networks of
`METRICS_ALLOWED_NETWORKS` (none by default: a reverse proxy makes every client look
private); 403 otherwise.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import math
import os
import re
import threading
import time

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the workers write their files there
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from accounts.access import serves_no_data

logger = logging.getLogger(__name__)

LAG_TIMEOUT_SECONDS = 2.0  # the broker's answer, at most, per scrape
LAG_CACHE_SECONDS = 10.0  # the lag (or the broker's absence) is reused this long

REQUEST_DURATION = Histogram(
    "datalake_http_request_duration_seconds",
    "Time spent serving a request, by URL route pattern, method and status class.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=None,  # put in each scrape's registry (see metrics_view)
)

# -- the request histogram (hot path: no I/O, a dict look-up and an observe) -------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)|<(?:\w+:)?(\w+)>")
_routes: dict[str, str] = {}


def _route_label(route: str) -> str:
    label = _routes.get(route)
    if label is None:
        label = "/" + _GROUP.sub(lambda m: f"<{m.group(1) or m.group(2)}>", route)
        label = label.replace("^", "").replace("$", "").replace("\\", "")
        _routes[route] = label  # bounded: one entry per URL pattern
    return label


def observe_request(request, status_code: int, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    route = _route_label(match.route) if match is not None else "<unmatched>"
    method = request.method if request.method in _METHODS else "other"
    REQUEST_DURATION.labels(route, method, f"{status_code // 100}xx").observe(seconds)


# -- ingestion, from the database ---------------------------------------------------------


def _ingestion_metrics():
    from django.db.models import Count, Max
    from django.utils import timezone

    from ingestion.models import IngestionRun, RunStatus

    runs = GaugeMetricFamily(
        "datalake_ingestion_runs",
        "Ingestion runs in the database, by source and status.",
        labels=["source", "status"],
    )
    counts: dict[str, dict[str, int]] = {}
    for source, status, n in (
        IngestionRun.objects.values_list("source", "status").annotate(n=Count("id")).order_by()
    ):
        counts.setdefault(source, dict.fromkeys(RunStatus.values, 0))[status] = n
    for source, by_status in sorted(counts.items()):
        for status, n in by_status.items():
            runs.add_metric([source, status], n)
    age = GaugeMetricFamily(
        "datalake_ingestion_last_success_age_seconds",
        "Seconds since the newest succeeded ingestion run of each source finished.",
        labels=["source"],
    )
    stamp = GaugeMetricFamily(
        "datalake_ingestion_last_success_timestamp_seconds",
        "When the newest succeeded ingestion run of each source finished (Unix time).",
        labels=["source"],
    )
    now = timezone.now()
    newest = (
        IngestionRun.objects.filter(status=RunStatus.SUCCEEDED, finished_at__isnull=False)
        .values_list("source")
        .annotate(at=Max("finished_at"))
        .order_by("source")
    )
    for source, at in newest:
        age.add_metric([source], max(0.0, (now - at).total_seconds()))
        stamp.add_metric([source], at.timestamp())
    return [runs, age, stamp]


# -- the pipeline's consumer lag: broker high watermarks minus the stored offsets ----------

_lag_cache: dict[tuple[str, str], tuple[float, dict[int, float], bool]] = {}
_lag_lock = threading.Lock()
_kafka_logger = logging.getLogger("datalake.platform.prometheus.kafka")


def _watermarks(servers: str, topic: str) -> dict[int, tuple[int, int]]:
    """(low, high) watermark per partition of the topic; raises when the broker is away."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    deadline = time.monotonic() + LAG_TIMEOUT_SECONDS
    timeout_ms = int(LAG_TIMEOUT_SECONDS * 1000)
    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": "datalake-metrics",  # never joined: watermarks need no membership
            "enable.auto.commit": False,
            "socket.timeout.ms": timeout_ms,
            "socket.connection.setup.timeout.ms": timeout_ms,
            "reconnect.backoff.max.ms": 500,
            "log.connection.close": False,
            "logger": _kafka_logger,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=LAG_TIMEOUT_SECONDS)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            return {}  # the broker answers but the topic does not exist (yet)
        marks = {}
        for partition in sorted(described.partitions):
            remaining = max(0.1, deadline - time.monotonic())
            marks[partition] = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=remaining, cached=False
            )
            if marks[partition] is None:
                raise KafkaException(f"no watermarks for {topic}[{partition}]")
        return marks
    finally:
        consumer.close()


def _compute_lag(servers: str, topic: str) -> tuple[dict[int, float], bool]:
    from ingestion.models import PipelineOffset

    stored = dict(
        PipelineOffset.objects.filter(topic=topic).values_list("partition", "next_offset")
    )
    try:
        marks = _watermarks(servers, topic)
    except Exception as exc:  # the broker is down or slow: NaN, never a failed scrape
        logger.warning("metrics: no watermarks of %s from %s: %s", topic, servers, exc)
        return dict.fromkeys(stored, math.nan), False
    lag = {}
    for partition, (low, high) in marks.items():
        next_offset = max(stored.get(partition, low), low)  # below `low`: expired, skipped
        lag[partition] = float(max(0, high - next_offset))
    return lag, True


def consumer_lag(servers: str, topic: str) -> tuple[dict[int, float], bool]:
    """{partition: lag} and whether the broker answered; reused for LAG_CACHE_SECONDS."""
    key = (servers, topic)
    with _lag_lock:
        cached = _lag_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        lag, up = _compute_lag(servers, topic)
        _lag_cache[key] = (time.monotonic() + LAG_CACHE_SECONDS, lag, up)
        return lag, up


def _lag_metrics():
    topic = settings.PIPELINE_TOPIC
    lag, up = consumer_lag(settings.KAFKA_BOOTSTRAP_SERVERS, topic)
    broker = GaugeMetricFamily(
        "datalake_pipeline_broker_up",
        "1 when the broker answered the last lag query (reused for 10 s), else 0.",
    )
    broker.add_metric([], 1 if up else 0)
    gauge = GaugeMetricFamily(
        "datalake_pipeline_consumer_lag",
        "Messages of the pipeline topic not merged yet: the partition's high watermark "
        "minus the next offset stored in the database (NaN while the broker is down).",
        labels=["topic", "partition"],
    )
    for partition, value in sorted(lag.items()):
        gauge.add_metric([topic, str(partition)], value)
    return [broker, gauge]


# -- the audit chain: what waits for its seal, and the newest checkpoint -------------------


def _audit_metrics():
    from django.utils import timezone

    from lineage.chain import checkpoints, keys, verify
    from lineage.models import RequestSeal

    now = timezone.now()
    waiting = verify.unsealed()
    unsealed = GaugeMetricFamily(
        "datalake_audit_unsealed_requests", "Stored requests not sealed in the audit chain yet."
    )
    unsealed.add_metric([], waiting["count"])
    oldest = GaugeMetricFamily(
        "datalake_audit_oldest_unsealed_age_seconds",
        "How long the oldest stored request not sealed yet has waited (0 if none).",
    )
    at = waiting["oldest_at"]
    oldest.add_metric([], max(0.0, (now - at).total_seconds()) if at else 0.0)
    through = GaugeMetricFamily(
        "datalake_audit_sealed_through", "The audit chain's last sequence in the database."
    )
    newest = RequestSeal.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    through.add_metric([], newest or 0)
    mark = checkpoints.latest(keys.verifying_keys())
    age = GaugeMetricFamily(
        "datalake_audit_last_checkpoint_age_seconds",
        "Seconds since the newest well-signed checkpoint was written (absent: none yet).",
    )
    if mark is not None:
        age.add_metric([], max(0.0, (now - mark.at).total_seconds()))
    return [unsealed, oldest, through, age]


# -- the followers: how far behind the committed versions each one is ----------------------


def _follower_metrics():
    from datalake.lake import followers

    versions = GaugeMetricFamily(
        "datalake_follower_lag_versions",
        "Versions of a resource committed but not yet derived by a follower.",
        labels=["follower", "resource"],
    )
    seconds = GaugeMetricFamily(
        "datalake_follower_lag_seconds",
        "Seconds since the oldest version a follower has not derived yet was made (0: none).",
        labels=["follower", "resource"],
    )
    through = GaugeMetricFamily(
        "datalake_follower_derived_through_version",
        "The last version of a resource a follower has derived (its position).",
        labels=["follower", "resource"],
    )
    for state in followers.states():
        labels = [state.follower, state.resource]
        versions.add_metric(labels, state.lag_versions)
        seconds.add_metric(labels, state.lag_seconds)
        through.add_metric(labels, state.derived_through_version)
    return [versions, seconds, through]


def _replica_metrics():
    """Each read replica (DATABASE_REPLICA_URLS): up, and its replay lag."""
    from datalake.platform import replicas

    up = GaugeMetricFamily(
        "datalake_replica_up",
        "1 when a read replica answers as a standby, else 0 (its reads go to the primary).",
        labels=["replica"],
    )
    lag = GaugeMetricFamily(
        "datalake_replica_lag_seconds",
        "A read replica's replay lag (0: it replayed all it received); past "
        "DATABASE_REPLICA_MAX_LAG_SECONDS its reads go to the primary.",
        labels=["replica"],
    )
    for alias in replicas.aliases():
        state = replicas.state(alias, fresh=True)
        up.add_metric([alias], 1 if state.up and state.standby else 0)
        if state.lag_seconds is not None:
            lag.add_metric([alias], state.lag_seconds)
    return [up, lag]


class LakeCollector:
    """What the database and the broker say, at scrape time."""

    def collect(self):
        failed = []
        for part, metrics in (
            ("ingestion", _ingestion_metrics),
            ("pipeline", _lag_metrics),
            ("audit", _audit_metrics),
            ("followers", _follower_metrics),
            ("replicas", _replica_metrics),
        ):
            try:
                yield from metrics()
            except Exception:  # e.g. the database is down: the other metrics still go out
                logger.exception("metrics: the %s metrics failed", part)
                failed.append(part)
        if failed:
            family = GaugeMetricFamily(
                "datalake_metrics_collector_failed",
                "1 when a group of metrics could not be collected in this scrape.",
                labels=["collector"],
            )
            for part in failed:
                family.add_metric([part], 1)
            yield family


# -- the view -------------------------------------------------------------------------------


@functools.cache
def _networks(cidrs: tuple[str, ...]):
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "")
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


@serves_no_data("counters of requests, runs and consumer lag for the monitoring network")
@require_safe
def metrics_view(request):
    if not allowed(request):
        return JsonResponse(
            {"detail": "Metrics are served to allowed networks or with the metrics token."},
            status=403,
        )
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # the histograms of every worker, summed
    else:
        for collector in (REQUEST_DURATION, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    registry.register(LakeCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
