"""Ingestion runs through the API and the command line; a killed job leaves nothing."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from datalake.celery import app as celery_app
from datalake.models import Resource, Transaction
from ingestion.daily.services import (
    RunBusy,
    _finish,
    drop_dead_stages,
    ingestion_run_execute,
    ingestion_runs_execute,
    recover_stalled_runs,
)
from ingestion.models import IngestionRun, RunStatus
from tests.support.factories import client_for, give
from tests.support.lake import tx, write_lines
from tests.support.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def eager():
    """Celery in eager mode: the same task code, run in-process when the request commits."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_post_a_run_follow_it_and_read_its_rejects(lake, alice, eager):
    path = write_lines(lake / "landing/transactions/2026-11-20.jsonl", [tx(1), tx(2), "{oops"])
    api = client_for(alice)
    body = {"source": "transactions", "path": "landing/transactions/2026-11-20.jsonl"}
    assert api.post("/api/v1/ingestion/runs/", body, format="json").status_code == 403
    give(alice, "transactions", "write")
    response = api.post("/api/v1/ingestion/runs/", body, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "queued"
    run_id = response.json()["id"]
    assert api.get(f"/api/v1/ingestion/runs/{run_id}/").status_code == 404  # needs read
    give(alice, "transactions", "read")
    run = api.get(f"/api/v1/ingestion/runs/{run_id}/").json()
    assert run["status"] == "succeeded", run["error"]
    assert (run["rows_read"], run["rows_loaded"], run["rows_rejected"], run["version"]) == (
        3,
        2,
        1,
        1,
    )
    assert run["started_at"] and run["finished_at"] and run["path"] == body["path"]
    rejects = api.get(f"/api/v1/ingestion/runs/{run_id}/rejects/").json()
    # The raw line only to readers of the raw files (tests/security/test_restricted_paths.py).
    assert [(r["line"], r["raw"], r["fields"]) for r in rejects["results"]] == [(3, None, {})]
    assert rejects["results"][0]["reason"].startswith("invalid_json")
    listed = api.get("/api/v1/ingestion/runs/", {"source": "transactions", "status": "succeeded"})
    assert [r["id"] for r in listed.json()["results"]] == [run_id]
    again = api.post("/api/v1/ingestion/runs/", body, format="json").json()
    assert api.get(f"/api/v1/ingestion/runs/{again['id']}/").json()["status"] == "skipped"
    assert path.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "nope", "path": "landing/x.jsonl"}, "source"),
        ({"source": "transactions", "path": "../../etc/passwd"}, "path"),
        ({"source": "transactions", "path": "/etc/passwd"}, "path"),
        ({"source": "transactions", "path": "landing/transactions/missing.jsonl"}, "path"),
        ({"source": "transactions", "path": "landing/sales/2026-11-20.csv"}, "path"),
    ],
)
def test_bad_run_requests_are_400(lake, staff, body, field):
    write_lines(lake / "landing/sales/2026-11-20.csv", ["a,b"])
    response = client_for(staff).post("/api/v1/ingestion/runs/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_the_ingest_command_waits_and_fails_loudly(lake, tmp_path):
    from django.core.management import CommandError, call_command

    good = write_lines(lake / "landing/transactions/2026-11-21.jsonl", [tx(5)])
    call_command("ingest", "transactions", str(good), "--inline")
    assert Transaction.objects.filter(transaction_id="TX-0005").exists()
    with pytest.raises(CommandError):
        call_command("ingest", "transactions", str(tmp_path / "missing.jsonl"), "--inline")


def _test_database_env(lake: Path) -> dict:
    name = connection.settings_dict["NAME"]
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
        "LAKE_ROOT": str(lake),
        "DJANGO_SETTINGS_MODULE": "datalake.settings",
    }


def _stages(run_id: int) -> list[str]:
    """The run's stages; each with its _rejects and _parts (or the test says which not)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname ~ %s ORDER BY relname",
            [f"^ingest_stage_{run_id}_"],
        )
        names = [r[0] for r in cursor.fetchall()]
    stages = [n for n in names if re.fullmatch(rf"ingest_stage_{run_id}_[0-9a-f]{{8}}", n)]
    assert names == sorted(
        n for s in stages for n in (s, f"{s}_parts", f"{s}_parts_pkey", f"{s}_rejects")
    ), names
    return stages


def _stage_rows(run_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname ~ %s",  # not its _rejects, _parts
            [f"^ingest_stage_{run_id}_[0-9a-f]{{8}}$"],
        )
        tables = [r[0] for r in cursor.fetchall()]
        if not tables:
            return 0
        cursor.execute(f'SELECT count(*) FROM "{tables[0]}"')
        return cursor.fetchone()[0]


def _other_backends() -> set[int]:
    """The other connections to the test database (this process's threads', a worker's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_a_worker_killed_mid_load_leaves_nothing_and_the_rerun_completes(
    lake, eager, settings, django_capture_on_commit_callbacks
):
    settings.INGESTION_HEARTBEAT_SECONDS = 0.5  # the rerun beats however short it is
    lines = [json.dumps(tx(i, transaction_id=f"TX-K{i:07d}")) for i in range(100_000)]
    path = lake / "landing/transactions/2026-11-23.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    before = _other_backends()  # e.g. the request log writer's
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "ingest", "transactions", str(path), "--inline"],
        cwd=ROOT,
        env=_test_database_env(lake),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def loading():
        assert worker.poll() is None, worker.stdout.read().decode()[-2000:]
        run = IngestionRun.objects.filter(path="landing/transactions/2026-11-23.jsonl").first()
        return run if run and _stage_rows(run.pk) > 0 else None  # a partition is in the stage

    run = wait_until(loading, timeout=240, what="the load to start", interval=0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    # The Spark child dies with its parent (PR_SET_PDEATHSIG): its connections close.
    wait_until(
        lambda: _other_backends() <= before, timeout=60, what="the killed worker's connections"
    )
    assert not Transaction.objects.exists()
    assert Resource.objects.get(name="transactions").current_version == 0
    run.refresh_from_db()
    assert run.status == "running"  # as a crashed worker leaves it, its heartbeat still fresh
    dead_stage = _stages(run.pk)
    assert len(dead_stage) == 1  # the killed attempt could not drop it
    assert dead_stage[0] not in drop_dead_stages()  # its run looks alive: kept
    with pytest.raises(RunBusy):  # a redelivered task does not take it from a live-looking one
        ingestion_run_execute(run.pk)
    # Its heartbeat stops: beat's recovery queues it again (eager: the batch runs here).
    stale = timezone.now() - dt.timedelta(seconds=settings.INGESTION_STALL_SECONDS + 60)
    IngestionRun.objects.filter(pk=run.pk).update(heartbeat_at=stale)
    with django_capture_on_commit_callbacks(execute=True):
        assert recover_stalled_runs() == [run.pk]
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert Transaction.objects.filter(valid_to__isnull=True).count() == 100_000
    assert run.heartbeat_at > run.started_at  # it beat while Spark ran
    assert _stages(run.pk) == []  # the rerun dropped the dead attempt's stage, then its own


def test_the_stages_of_dead_attempts_are_dropped_and_a_live_ones_kept(lake):
    """What a killed worker leaves (its unlogged stage) goes at beat's next recovery
    once its run is no longer running; a running run's stage stays."""
    from ingestion.daily.services import _create_stage
    from ingestion.sources import SOURCES

    source = SOURCES["transactions"]
    finished = IngestionRun.objects.create(source="transactions", path="a", status="failed")
    queued = IngestionRun.objects.create(source="transactions", path="b")
    running = IngestionRun.objects.create(
        source="transactions", path="c", status="running", heartbeat_at=timezone.now()
    )
    for run in (finished, queued, running):
        _create_stage(f"ingest_stage_{run.pk}_0123abcd", source)
    gone = f"ingest_stage_{running.pk + 1000}_fedc4321"  # its run was deleted
    _create_stage(gone, source)
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE IF NOT EXISTS "ingest_stage_not_a_run" (line bigint)')

    assert recover_stalled_runs() == []
    assert _stages(finished.pk) == _stages(queued.pk) == _stages(running.pk + 1000) == []
    assert _stages(running.pk) == [f"ingest_stage_{running.pk}_0123abcd"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('ingest_stage_not_a_run') IS NOT NULL")
        assert cursor.fetchone() == (True,)
        cursor.execute('DROP TABLE "ingest_stage_not_a_run"')
    assert drop_dead_stages(running.pk) == [f"ingest_stage_{running.pk}_0123abcd"]  # claimed
    assert _stages(running.pk) == []


def test_a_run_held_by_a_live_attempt_is_never_taken_twice(lake, settings, eager):
    """The claim: a live attempt's run (fresh heartbeat) is left alone; a stalled one and
    the queued runs of its batch are executed again in one new batch (eager: here; their
    files are missing, so they fail, with the reason); an attempt given up for dead can
    no longer record an outcome."""
    from django.utils import timezone

    now = timezone.now()
    held = IngestionRun.objects.create(
        source="transactions", path="landing/transactions/a.jsonl", status=RunStatus.RUNNING,
        claim="live", heartbeat_at=now, task_id="batch-1",
    )  # fmt: skip
    behind = IngestionRun.objects.create(
        source="transactions", path="landing/transactions/b.jsonl", task_id="batch-1"
    )
    other = IngestionRun.objects.create(
        source="transactions", path="landing/transactions/c.jsonl", task_id="batch-2"
    )
    with pytest.raises(RunBusy):
        ingestion_runs_execute([held.pk, behind.pk])
    held.refresh_from_db()
    behind.refresh_from_db()
    assert (held.status, held.claim, behind.status) == ("running", "live", "queued")
    assert recover_stalled_runs() == []  # alive: nothing to recover

    settings.INGESTION_STALL_SECONDS = 1
    IngestionRun.objects.filter(pk=held.pk).update(heartbeat_at=now - dt.timedelta(seconds=5))
    assert recover_stalled_runs() == [held.pk, behind.pk]
    rows = {r.pk: r for r in IngestionRun.objects.all()}
    for pk in (held.pk, behind.pk):  # executed again, in one new batch
        assert rows[pk].status == "failed" and "No file at" in rows[pk].error, rows[pk].error
        assert rows[pk].claim not in ("", "live")
    assert rows[held.pk].task_id == rows[behind.pk].task_id not in ("batch-1", "batch-2")
    assert (rows[other.pk].status, rows[other.pk].task_id) == ("queued", "batch-2")
    assert recover_stalled_runs() == []

    # The attempt given up for dead wakes up: its outcome is not recorded.
    stale = IngestionRun.objects.get(pk=held.pk)
    stale.claim = "live"
    assert _finish(stale, RunStatus.SUCCEEDED, rows_read=1) is False
    assert IngestionRun.objects.get(pk=held.pk).status == "failed"


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_resident_driver_serves_batch_after_batch_and_goes_when_given_up_or_idle(
    lake, settings
):
    """One JVM for the batches of a worker process: the second batch finds the driver
    the first started. A batch given up half-way kills it (its later output must not
    be read as the next batch's), and the next batch starts another; idle for
    SPARK_DRIVER_IDLE_SECONDS, it ends its session and exits."""
    import json as _json

    from ingestion.daily import services, spark
    from ingestion.rates import RateTable

    settings.SPARK_DRIVER_IDLE_SECONDS = 300
    spark.stop_resident_driver()  # what earlier tests left: this test starts its own
    days = [
        write_lines(lake / f"landing/transactions/2026-11-2{n}.jsonl",
                    [tx(i, transaction_id=f"TX-D{n}{i:03d}") for i in range(20)])
        for n in range(5)
    ]  # fmt: skip

    first = ingestion_run_execute(
        IngestionRun.objects.create(source="transactions", path=str(days[0])).pk
    )
    driver = spark._resident
    assert first.status == "succeeded" and driver is not None, first.error
    second = ingestion_run_execute(
        IngestionRun.objects.create(source="transactions", path=str(days[1])).pk
    )
    assert (second.status, second.rows_loaded, second.version) == ("succeeded", 20, 2)
    assert spark._resident is driver and _alive(driver.process.pid)  # the same JVM
    assert (
        "INFO SparkContext: Running Spark"
        not in (lake / f"work/runs/{second.pk}-spark.log").read_text()
    )

    # Its Python application killed while it waits (its session gone, the JVM perhaps not
    # yet): the next batch is answered all the same, by a new driver.
    (application,) = [
        pid
        for pid in _children(driver.process.pid)  # the Python workers' daemon too
        if b"spark_job.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    os.kill(application, signal.SIGKILL)
    # A batch of two given up after the first run's result: the driver is killed.
    runs = [IngestionRun.objects.create(source="transactions", path=str(d)) for d in days[2:4]]
    stages = [services._start(run) for run in runs]
    rates = lake / "work/runs/rates.json"
    rates.write_text(_json.dumps(RateTable.from_database().as_data()))
    jobs = [services._job(run, stage, rates) for run, stage in zip(runs, stages, strict=True)]
    batch = spark.run_spark_jobs(
        jobs, services._dsn(), lake / "work/runs", lake / "work/runs/x.log"
    )
    run_id, counts = next(batch)
    assert (run_id, counts["rows_loaded"]) == (runs[0].pk, 20)
    revived = spark._resident
    assert revived is not None and revived is not driver and not _alive(driver.process.pid)
    batch.close()
    assert spark._resident is None and not _alive(revived.process.pid)
    for stage in stages:
        services._drop_stage(stage)

    # The next batch starts a driver of its own, and loads right.
    again = ingestion_run_execute(runs[1].pk)
    assert (again.status, again.rows_loaded, again.version) == ("succeeded", 20, 3), again.error
    restarted = spark._resident
    assert restarted is not None and restarted.process.pid != revived.process.pid
    assert sorted(
        Transaction.objects.filter(valid_to__isnull=True).values_list("transaction_id", flat=True)
    ) == sorted(f"TX-D{n}{i:03d}" for n in (0, 1, 3) for i in range(20))

    settings.SPARK_DRIVER_IDLE_SECONDS = 0.5  # the reaper stops it: its session ends cleanly
    wait_until(lambda: not restarted.pipe_path.exists(), timeout=60, what="the idle driver gone")
    assert restarted.process.returncode == 0 and spark._resident is None


def test_a_driver_is_kept_on_a_cluster_only_when_its_cores_are_capped(settings):
    """Kept idle, a driver holds its executors: on a standalone master, every core unless
    the deployment caps an application's (or lets idle executors go)."""
    from ingestion.daily.spark import keeps_driver

    settings.SPARK_DRIVER_IDLE_SECONDS = 300
    assert keeps_driver()  # local[*]
    settings.SPARK_MASTER = "spark://spark-master:7077"
    assert not keeps_driver()
    settings.SPARK_SUBMIT_CONF = ["spark.cores.max=2"]
    assert keeps_driver()
    settings.SPARK_SUBMIT_CONF = ["spark.dynamicAllocation.enabled=true"]
    assert keeps_driver()
    settings.SPARK_DRIVER_IDLE_SECONDS = 0
    assert not keeps_driver()


def test_a_batch_past_its_time_is_killed_with_its_driver_and_not_sent_again(lake, settings, caplog):
    """SPARK_JOB_TIMEOUT on a resident driver: the driver is killed, the run fails with
    the reason, and the batch is not sent to a new driver (that is for a driver which
    ended without a word, not for a batch too long)."""
    from ingestion.daily import spark

    settings.SPARK_DRIVER_IDLE_SECONDS = 300
    small = write_lines(lake / "landing/transactions/2026-11-20.jsonl", [tx(1)])
    assert (
        ingestion_run_execute(
            IngestionRun.objects.create(source="transactions", path=str(small)).pk
        ).status
        == "succeeded"
    )
    driver = spark._resident
    assert driver is not None

    settings.SPARK_JOB_TIMEOUT = 1  # the watchdog looks every second
    lines = [json.dumps(tx(i, transaction_id=f"TX-L{i:07d}")) for i in range(200_000)]
    big = write_lines(lake / "landing/transactions/2026-11-21.jsonl", lines)
    caplog.set_level("WARNING", logger="ingestion.daily.spark")
    run = ingestion_run_execute(
        IngestionRun.objects.create(source="transactions", path=str(big)).pk
    )
    assert run.status == "failed" and "Spark job" in run.error, run.error
    assert driver.process.returncode is not None and spark._resident is None
    assert "starting another" not in caplog.text  # not sent again
    assert _stages(run.pk) == []
    assert not Transaction.objects.filter(transaction_id__startswith="TX-L").exists()
