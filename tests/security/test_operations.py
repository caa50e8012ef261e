"""Operations: request ids in responses, logs and the request log; JSON logs; /metrics."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from datalake.platform.logging import JsonFormatter, request_id_var
from ingestion.models import IngestionRun, PipelineOffset
from ingestion.stream.kafka import ensure_topics
from lineage.models import RequestLog
from tests.support.factories import client_for, give
from tests.support.net import free_port
from tests.support.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
ROWS = "/api/v1/resources/transactions/rows/"
HEX_ID = re.compile(r"[0-9a-f]{32}")


def last() -> RequestLog:
    return RequestLog.objects.order_by("-id").first()


# -- the request id ----------------------------------------------------------------------


def test_an_incoming_request_id_is_echoed_and_stored(alice):
    give(alice, "transactions")
    response = client_for(alice).get(ROWS, HTTP_X_REQUEST_ID="abc-123.DEF_9")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "abc-123.DEF_9"
    assert last().request_id == "abc-123.DEF_9" and last().path == ROWS


@pytest.mark.parametrize(
    "header", [None, "", "x" * 65, "has space", "semi;colon", "évil", "a\\b", "<script>"]
)
def test_a_request_id_is_generated_when_absent_or_insane(alice, header):
    extra = {} if header is None else {"HTTP_X_REQUEST_ID": header}
    response = client_for(alice).get("/api/v1/resources/", **extra)
    generated = response["X-Request-ID"]
    assert HEX_ID.fullmatch(generated) and generated != header
    assert last().request_id == generated
    again = client_for(alice).get("/api/v1/resources/", **extra)["X-Request-ID"]
    assert again != generated  # one per request


def test_the_longest_sane_id_is_kept_and_refused_requests_have_one_too(db):
    sane = "A" * 64
    response = APIClient().get(ROWS, HTTP_X_REQUEST_ID=sane)
    assert response.status_code == 401 and response["X-Request-ID"] == sane
    assert (last().status_code, last().request_id) == (401, sane)


def test_paths_outside_the_api_get_an_id_but_no_log_row(db):
    before = RequestLog.objects.count()
    response = APIClient().get("/metrics", HTTP_X_REQUEST_ID="scrape-1")
    assert response["X-Request-ID"] == "scrape-1"
    assert RequestLog.objects.count() == before


def test_staff_find_a_request_by_its_id(staff, alice):
    api = client_for(alice)
    wanted = api.get("/api/v1/resources/")["X-Request-ID"]
    api.get("/api/v1/resources/")
    admin = client_for(staff)
    body = admin.get("/api/v1/audit/requests/", {"request_id": wanted}).json()
    assert body["count"] == 1
    assert body["results"][0]["request_id"] == wanted
    assert body["results"][0]["user"] == "alice"
    entry = admin.get(f"/api/v1/audit/requests/{body['results'][0]['id']}/").json()
    assert entry["request_id"] == wanted
    assert admin.get("/api/v1/audit/requests/", {"request_id": "nope"}).json()["count"] == 0


# -- JSON logs -----------------------------------------------------------------------------


@pytest.fixture
def log_lines():
    """What the configured console handler (settings.LOGGING) writes, line by line."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert handlers, "settings.LOGGING puts a JSON handler on the root logger"
    handler = handlers[0]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    lines: list[dict] = []

    def read() -> list[dict]:
        lines[:] = [json.loads(line) for line in stream.getvalue().splitlines()]
        return lines

    yield read
    handler.setStream(previous)


def test_log_lines_are_json_and_carry_the_request_id(db, log_lines):
    response = APIClient().get("/api/v1/resources/", HTTP_X_REQUEST_ID="trace-me-1")
    assert response.status_code == 401
    logging.getLogger("tests.after").warning("after the request")
    lines = log_lines()
    # Django's "Unauthorized: ..." is written after the middleware has returned.
    refused = next(e for e in lines if e["logger"] == "django.request")
    assert refused["level"] == "WARNING"
    assert refused["message"] == "Unauthorized: /api/v1/resources/"
    assert refused["request_id"] == "trace-me-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", refused["time"])
    after = next(e for e in lines if e["logger"] == "tests.after")
    assert "request_id" not in after and request_id_var.get() is None


@pytest.mark.urls("tests.support.urls_boom")
def test_a_failed_request_logs_its_traceback_with_its_id(alice, log_lines):
    client = client_for(alice)
    client.raise_request_exception = False
    response = client.post("/api/v1/boom/", {"a": 1}, format="json")
    assert response.status_code == 500
    entry = next(e for e in log_lines() if e["level"] == "ERROR")
    assert entry["request_id"] == response["X-Request-ID"] == last().request_id
    assert entry["message"] == "Internal Server Error: /api/v1/boom/"
    assert "Traceback" in entry["exception"] and "RuntimeError: boom" in entry["exception"]


def test_extra_fields_and_odd_values_stay_one_json_line(log_lines):
    logging.getLogger("tests.extra").info(
        "run %s done", 7, extra={"run_id": 7, "at": dt.date(2026, 11, 23), "odd": {1: object()}}
    )
    (entry,) = [e for e in log_lines() if e["logger"] == "tests.extra"]
    assert entry["message"] == "run 7 done"
    assert entry["run_id"] == 7 and entry["at"] == "2026-11-23" and "1" in entry["odd"]


def test_a_celery_task_logs_with_its_task_id(log_lines):
    from datalake.celery import app

    @app.task(name="tests.operations.log_something")
    def log_something():
        logging.getLogger("tests.task").info("inside the task")

    result = log_something.apply()
    (entry,) = [e for e in log_lines() if e["logger"] == "tests.task"]
    assert entry["task_id"] == result.id
    assert entry["task_name"] == "tests.operations.log_something"


def _run(code: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "datalake.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_celery_worker_and_beat_logging_is_settings_logging():
    """Celery's logging set-up (what `celery worker` and `beat` run) keeps the JSON lines."""
    code = (
        "from datalake.celery import app; import django; django.setup();"
        "app.log.setup_logging_subsystem(loglevel='INFO');"
        "import logging; logging.getLogger('celery.worker').info('ready');"
        "from celery.utils.log import get_task_logger; get_task_logger('t').warning('task line')"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert [
        (e["logger"], e["message"]) for e in lines if e["logger"] in ("celery.worker", "t")
    ] == [
        ("celery.worker", "ready"),
        ("t", "task line"),
    ]
    text = _run(code, LOG_FORMAT="text")
    assert text.returncode == 0, text.stderr
    assert re.search(r"^\S+ \S+ INFO celery\.worker ready$", text.stderr, re.MULTILINE)


def test_python_warnings_are_log_lines_too():
    done = _run("import django; django.setup(); import warnings; warnings.warn('careful')")
    assert done.returncode == 0, done.stderr
    (entry,) = [json.loads(line) for line in done.stderr.splitlines()]
    assert entry["logger"] == "py.warnings" and "UserWarning: careful" in entry["message"]


# -- /metrics ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _scrapes_from_loopback(settings):
    """The test client scrapes from 127.0.0.1: allowed here explicitly (no network is by
    default: tests/security/test_hardening.py)."""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]


def scrape(client=None, **extra) -> dict:
    """{(name, sorted labels): value} of every sample /metrics shows."""
    response = (client or APIClient()).get("/metrics", **extra)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def duration_count(samples: dict, route: str, method: str = "GET", status: str = "2xx") -> float:
    key = ("datalake_http_request_duration_seconds_count",
           (("method", method), ("route", route), ("status", status)))  # fmt: skip
    return samples.get(key, 0.0)


def test_the_latency_histogram_is_per_route_pattern(alice):
    give(alice, "transactions")
    route = "/api/v1/resources/<name>/rows/"
    before = duration_count(scrape(), route)
    api = client_for(alice)
    assert api.get(ROWS).status_code == 200
    assert api.get(ROWS, {"country": "FR"}).status_code == 200
    assert api.get("/api/v1/resources/nope/rows/").status_code == 404
    samples = scrape()
    assert duration_count(samples, route) == before + 2
    assert duration_count(samples, route, status="4xx") >= 1
    assert not any("transactions" in dict(labels).get("route", "") for _, labels in samples)
    bucket = dict(samples)[
        (
            "datalake_http_request_duration_seconds_bucket",
            (("le", "+Inf"), ("method", "GET"), ("route", route), ("status", "2xx")),
        )
    ]
    assert bucket == before + 2


def test_unmatched_paths_share_one_label(db):
    APIClient().get(f"/api/v1/{uuid.uuid4().hex}/")
    APIClient().generic("BREW", "/api/v1/resources/")
    samples = scrape()
    assert duration_count(samples, "<unmatched>", status="4xx") >= 1
    assert duration_count(samples, "/api/v1/resources/", method="other", status="4xx") >= 1


def test_ingestion_runs_by_status_and_age_of_the_newest_success(db):
    now = timezone.now()
    for source, status, finished in (
        ("transactions", "succeeded", now - dt.timedelta(seconds=120)),
        ("transactions", "succeeded", now - dt.timedelta(days=2)),
        ("transactions", "failed", now - dt.timedelta(seconds=10)),
        ("rates", "running", None),
    ):
        IngestionRun.objects.create(
            source=source, path=f"landing/{source}/x.json", status=status, finished_at=finished
        )
    samples = scrape()

    def runs(source, status):
        return samples[("datalake_ingestion_runs", (("source", source), ("status", status)))]

    assert runs("transactions", "succeeded") == 2 and runs("transactions", "failed") == 1
    assert runs("transactions", "queued") == 0 and runs("rates", "running") == 1
    age = samples[("datalake_ingestion_last_success_age_seconds", (("source", "transactions"),))]
    assert 119 <= age < 180
    stamp = ("datalake_ingestion_last_success_timestamp_seconds", (("source", "transactions"),))
    assert samples[stamp] == pytest.approx((now - dt.timedelta(seconds=120)).timestamp(), abs=1)
    assert ("datalake_ingestion_last_success_age_seconds", (("source", "rates"),)) not in samples


def test_a_runs_spark_master_is_shown_to_staff_only(alice, staff):
    """Where a run's job ran: a cluster's host and port are for operators, as /healthz."""
    give(alice, "transactions", "read")
    runs = [
        IngestionRun.objects.create(
            source="transactions",
            path="landing/transactions/x.jsonl",
            status="succeeded",
            spark_master=master,
            spark_executors=executors,
        )
        for master, executors in (("spark://spark-master.internal:7077", 4), ("local[*]", 1))
    ]
    for user, shown in ((alice, "spark://"), (staff, "spark://spark-master.internal:7077")):
        api = client_for(user)
        one = api.get(f"/api/v1/ingestion/runs/{runs[0].pk}/").json()
        assert (one["spark_master"], one["spark_executors"]) == (shown, 4)
        listed = api.get("/api/v1/ingestion/runs/", {"source": "transactions"}).json()
        masters = sorted(r["spark_master"] for r in listed["results"])
        assert masters == ["local[*]", shown]


def lag_of(samples: dict, topic: str) -> dict[int, float]:
    return {
        int(dict(labels)["partition"]): value
        for (name, labels), value in samples.items()
        if name == "datalake_pipeline_consumer_lag" and dict(labels)["topic"] == topic
    }


@pytest.mark.slow
def test_consumer_lag_per_partition_with_the_broker(db, broker, topic):
    ensure_topics()  # 3 partitions
    producer = Producer({"bootstrap.servers": broker})
    for partition, count in ((0, 5), (1, 3)):
        for i in range(count):
            producer.produce(topic, value=f"m{i}".encode(), partition=partition)
            # One record per batch: the test broker (Tansu) reports the high watermark as
            # the last batch's base offset + 1 (Apache Kafka: the last record's + 1).
            assert producer.flush(15) == 0
    PipelineOffset.objects.create(topic=topic, partition=0, next_offset=2)
    PipelineOffset.objects.create(topic=topic, partition=1, next_offset=3)
    samples = scrape()
    assert samples[("datalake_pipeline_broker_up", ())] == 1
    assert lag_of(samples, topic) == {0: 3.0, 1: 0.0, 2: 0.0}
    # Reused for a few seconds: a scrape storm does not become a broker storm.
    PipelineOffset.objects.filter(topic=topic, partition=0).update(next_offset=5)
    assert lag_of(scrape(), topic)[0] == 3.0


@pytest.mark.slow
def test_no_broker_means_nan_lag_not_a_500(db, settings):
    topic = f"transactions.raw.{uuid.uuid4().hex[:8]}"
    settings.PIPELINE_TOPIC = topic
    settings.KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{free_port()}"  # nothing listens there
    PipelineOffset.objects.create(topic=topic, partition=0, next_offset=7)
    samples = scrape()
    assert samples[("datalake_pipeline_broker_up", ())] == 0
    assert math.isnan(lag_of(samples, topic)[0])
    assert ("datalake_metrics_collector_failed", (("collector", "pipeline"),)) not in samples
    # The broker's absence is remembered too: the next scrape answers from memory (the
    # same entry), it does not wait for the broker again.
    from datalake.platform import prometheus

    key = (settings.KAFKA_BOOTSTRAP_SERVERS, topic)
    remembered = prometheus._lag_cache[key]
    assert remembered[2] is False and remembered[0] > time.monotonic()
    scrape()
    assert prometheus._lag_cache[key] is remembered


# -- who may read /metrics -------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.7", "172.20.0.4", "::1"])
def test_the_networks_the_operator_names_read_the_metrics(db, settings, address):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                                         "192.168.0.0/16"]  # fmt: skip
    assert APIClient().get("/metrics", REMOTE_ADDR=address).status_code == 200


@pytest.mark.parametrize("address", ["203.0.113.9", "8.8.8.8", "2001:db8::1", "not-an-ip"])
def test_other_addresses_are_refused_without_the_token(db, settings, address):
    settings.METRICS_TOKEN = "metrics-s3cret"
    client = APIClient()
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 403
    wrong = client.get("/metrics", REMOTE_ADDR=address, HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403
    assert "datalake_" not in wrong.content.decode()
    good = client.get("/metrics", REMOTE_ADDR=address, HTTP_AUTHORIZATION="Bearer metrics-s3cret")
    assert good.status_code == 200 and b"datalake_http_request_duration_seconds" in good.content


def test_no_token_configured_means_no_bearer_access(db, settings):
    settings.METRICS_TOKEN = ""
    response = APIClient().get("/metrics", REMOTE_ADDR="8.8.8.8", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 403


def test_the_allowed_networks_are_a_setting(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert APIClient().get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert APIClient().get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_metrics_is_read_only(db):
    assert APIClient().post("/metrics").status_code == 405


# -- the real server: gunicorn with 2 workers, multiprocess metrics, JSON lines ----------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_workers_share_the_metrics_and_log_json(tmp_path):
    db = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "datalake.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "LOG_FORMAT": "json",
        "METRICS_ALLOWED_NETWORKS": "127.0.0.1/32",  # no network is trusted by default
    }
    log = tmp_path / "gunicorn.log"
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "datalake.wsgi", "--workers", "2",
        "--bind", f"127.0.0.1:{port}", "--access-logfile", "-",
        "--logger-class", "datalake.platform.logging.GunicornLogger",
    ]  # fmt: skip
    import urllib.error
    import urllib.request

    def get(path, **headers):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def serving() -> bool:
            assert server.poll() is None, log.read_text()
            try:
                get("/metrics")
            except OSError:
                return False
            return True

        wait_until(serving, timeout=30, what="gunicorn to serve", interval=0.2)
        for i in range(40):  # two workers: both serve some of them
            status, headers, _ = get("/api/v1/resources/", **{"X-Request-ID": f"live-{i}"})
            assert status == 401 and headers["X-Request-ID"] == f"live-{i}"
        scraped = {}
        for _ in range(4):  # whichever worker answers, it reports both workers' requests
            _, _, body = get("/metrics")
            for family in text_string_to_metric_families(body.decode()):
                for s in family.samples:
                    if s.name == "datalake_http_request_duration_seconds_count":
                        scraped[tuple(sorted(s.labels.items()))] = s.value
            key = (("method", "GET"), ("route", "/api/v1/resources/"), ("status", "4xx"))
            assert scraped[key] == 40
        assert len(list((tmp_path / "prom").glob("histogram_*.db"))) == 2
    finally:
        server.terminate()
        server.wait(20)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    access = [e for e in lines if e["logger"] == "gunicorn.access"]
    assert {e["request_id"] for e in access} >= {f"live-{i}" for i in range(40)}
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in lines)
    refused = [e for e in lines if e["logger"] == "django.request"]
    assert {e["request_id"] for e in refused} == {f"live-{i}" for i in range(40)}
    assert RequestLog.objects.filter(request_id__startswith="live-").count() == 40


@pytest.mark.django_db(transaction=True)
def test_the_database_unreachable_is_a_clean_503_and_then_it_recovers(alice, log_lines):
    """PostgreSQL restarting: every request fails with 503 `database_unavailable` and
    Retry-After (not a 500), and the next request once it is back succeeds. The log has
    one traceback for the outage, then a warning line per request."""
    (outage,) = [f for f in logging.getLogger("django.request").filters if hasattr(f, "window")]
    assert outage in logging.getLogger("lineage.middleware").filters  # one window for both
    outage.last_traceback = float("-inf")
    give(alice, "transactions", "read")
    api = client_for(alice)
    rows = "/api/v1/resources/transactions/rows/"
    assert api.get(rows).status_code == 200
    real = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there
    api.raise_request_exception = False
    try:
        for path in (rows, "/api/v1/metrics/top-products/", "/api/v1/search/?q=FR"):
            down = api.get(path)
            assert down.status_code == 503, (path, down.status_code, down.content[:200])
            assert down.json()["code"] == "database_unavailable" and down["Retry-After"]
        for _ in range(2):  # a write's request log entry is stored at once: it fails too
            down = api.post("/api/v1/pipeline/repush/", {"transaction_id": "T1"}, format="json")
            assert down.status_code == 503, down.content[:200]
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real
    assert api.get(rows).status_code == 200
    logged = [e for e in log_lines() if e["logger"] in ("django.request", "lineage.middleware")]
    assert [(e["logger"], e["level"], "exception" in e) for e in logged] == [
        ("django.request", "ERROR", True),
        *[("django.request", "WARNING", False)] * 2,
        *[("django.request", "WARNING", False), ("lineage.middleware", "WARNING", False)] * 2,
    ]
    assert logged[4]["message"].startswith("Could not store the request log entry")
    assert "OperationalError" in logged[0]["exception"]
    assert logged[1]["message"].startswith("Service Unavailable: /api/v1/metrics/top-products/")
    assert "database unavailable" in logged[2]["message"]


@pytest.mark.django_db(transaction=True)
def test_the_database_unreachable_is_a_503_under_debug_too(alice, settings):
    """With DEBUG on, the statement-timeout middleware's connection failed before any view
    and DEBUG's page answered it, which the API's envelope turned into a generic 500."""
    settings.DEBUG = True
    give(alice, "transactions", "read")
    api = client_for(alice)
    real = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens there
    api.raise_request_exception = False
    try:
        down = api.get("/api/v1/resources/transactions/rows/")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real
    assert down.status_code == 503, (down.status_code, down.content[:200])
    assert down.json()["code"] == "database_unavailable" and down["Retry-After"]


def test_a_worker_channel_left_on_a_released_transport_fails_as_a_connection_error():
    """kombu 5.7.0 killed the Celery worker on a Redis restart: a channel holding an
    unacknowledged message was closed after its transport had been released, and the
    restore raised AttributeError in Channel._connparams. The app's guard turns it into a
    connection error (the one kind cleanup ignores) and the message stays in Redis' unacked
    set for restore_visible."""
    from django.conf import settings
    from kombu import Connection, Exchange, Producer, Queue

    import datalake.celery  # noqa: F401  (installs the guard, as the worker does)

    name = f"test-released-{uuid.uuid4().hex[:8]}"
    conn = Connection(settings.CELERY_BROKER_URL)
    channel = conn.channel()
    queue = Queue(name, Exchange(name), name, channel=channel)
    queue.declare()
    Producer(channel).publish({"n": 1}, exchange=name, routing_key=name, declare=[queue])
    got = []
    channel.basic_consume(name, False, got.append, "ctag")
    conn.drain_events(timeout=5)
    assert len(got) == 1 and len(channel.qos._delivered) == 1
    tag = got[0].delivery_tag
    unacked_key = channel.unacked_key
    client = channel.client
    connection_errors = conn.connection_errors
    try:
        conn._do_close_transport()  # the transport released, the channel still open
        with pytest.raises(connection_errors) as raised:  # what Celery's cleanup ignores
            channel.close()
        assert "transport was released" in str(raised.value)
        assert client.hexists(unacked_key, tag), "the message must stay for restore_visible"
    finally:
        client.hdel(unacked_key, tag)
        client.zrem(channel.unacked_index_key, tag)
        client.delete(name)


def test_logging_configured_twice_keeps_one_outage_window():
    """Celery's setup_logging receiver applies settings.LOGGING again in a process Django
    configured; dictConfig adds filters without removing the old ones, so a filter made
    anew each time doubled the outage windows (two tracebacks an outage)."""
    from datalake.platform.logging import configure_celery_logging

    configure_celery_logging()
    configure_celery_logging()
    for name in ("django.request", "lineage.middleware"):
        windows = [f for f in logging.getLogger(name).filters if hasattr(f, "window")]
        assert len(windows) == 1, (name, windows)
