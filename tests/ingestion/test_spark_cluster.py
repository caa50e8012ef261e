"""Ingestion on a Spark standalone cluster (issue 23): a master and two workers of one core
on this machine (scripts/spark_cluster.py), started once for the module.

The workers start without the driver's environment (no PYTHONPATH, no PYSPARK_PYTHON)
and run their executors in their own folders: what the executors need must come with
the job, as on other machines. The daily file goes through the same code as in local
mode (`SPARK_MASTER` is the only change) and must give exactly what `local[*]` gives.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from datalake.models import ExchangeRate, Resource, Transaction
from ingestion.daily.services import _dsn
from ingestion.daily.spark import stop_resident_driver
from ingestion.models import IngestionRun
from lineage.models import Version
from scripts.spark_cluster import LocalCluster
from tests.support.factories import make_user
from tests.support.lake import ingest, ingest_all, tx, write_lines
from tests.support.net import free_port
from tests.support.polling import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A master and 2 workers (1 core, 1g each) on free ports; every JVM, executor and
    Python worker killed at the end."""
    with LocalCluster(2, 1, "1g", work_dir=tmp_path_factory.mktemp("spark-cluster")) as started:
        try:
            yield started
        finally:  # the resident driver on this master goes with it (it holds its cores)
            stop_resident_driver()


@pytest.fixture
def on_cluster(cluster, settings):
    settings.SPARK_MASTER = cluster.master_url
    settings.SPARK_MASTER_UI_URL = cluster.ui_url
    return cluster


def test_healthz_says_which_master_and_what_it_has(on_cluster, broker, settings):
    body = Client().get("/healthz").json()
    assert body["status"] == "ok"
    assert body["spark"] == {
        "mode": "standalone", "state": "ok", "workers": 2, "cores": 2, "cores_used": 0,
    }  # fmt: skip
    staff = Client()
    staff.force_login(make_user("root", is_staff=True))
    assert staff.get("/healthz").json()["spark"]["master"] == on_cluster.master_url

    settings.SPARK_MASTER_UI_URL = f"http://127.0.0.1:{free_port()}"  # nobody answers there
    down = Client().get("/healthz")
    assert down.status_code == 200  # the portal serves on; ingestion waits for the master
    assert down.json()["spark"] == {"mode": "standalone", "state": "error"}
    assert down.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}


def usd_rates() -> None:
    ExchangeRate.objects.create(date=dt.date(2026, 11, 20), currency="USD", rate=Decimal("1.25"))
    ExchangeRate.objects.create(date=dt.date(2026, 11, 21), currency="USD", rate=Decimal("1.5"))


# A field the parser ignores, so that a file of few rows (little to merge) still makes two
# partitions of input: Spark cuts a file in splits of 4 MB at least.
PADDING = {"note": "a field of the feed that the lake does not keep " * 6}


def day_files(lake: Path) -> tuple[Path, Path]:
    """A day of 8,000 transactions (~5 MB: two partitions) with rejects of several kinds
    and in-file duplicates spread through it, and a correction of some of its rows."""
    lines: list = []
    for i in range(8_000):
        currency = ["EUR", "USD"][i % 2]
        lines.append(tx(i, transaction_id=f"TX-{i:06d}", currency=currency, **PADDING))
        if i % 1_000 == 7:
            lines += ["{broken", tx(i, quantity=0), tx(i, currency="XXX")]
        if i % 1_600 == 11:  # the same id again further on: the last one wins
            lines.append(tx(i, transaction_id=f"TX-{i - 5:06d}", amount=777, **PADDING))
    fixes = [tx(i, transaction_id=f"TX-{i:06d}", amount=1_000 + i) for i in range(0, 400, 7)]
    fixes += [tx(i, transaction_id=f"TX-N{i:04d}") for i in range(50)] + ["[]"]
    return (
        write_lines(lake / "landing/transactions/2026-11-20.jsonl", lines),
        write_lines(lake / "landing/transactions/2026-11-21.jsonl", fixes),
    )


RUN_FIELDS = ("status", "error", "rows_read", "rows_loaded", "rows_rejected", "rows_added",
              "rows_changed", "version")  # fmt: skip


def outcome(runs: list[IngestionRun]) -> dict:
    """What the runs left, independent of ids and times: counts, versions, the table's
    rows (current and replaced), the rejects."""
    columns = [f.name for f in Transaction._meta.concrete_fields if f.name != "id"]
    return {
        "runs": [tuple(getattr(r, name) for name in RUN_FIELDS) for r in runs],
        "versions": list(
            Version.objects.filter(resource__name="transactions")
            .order_by("version")
            .values_list("version", "rows_added", "rows_changed", "rows_removed")
        ),
        "current_version": Resource.objects.get(name="transactions").current_version,
        "rows": list(
            Transaction.objects.order_by("transaction_id", "valid_from").values_list(*columns)
        ),
        "rejects": [
            list(r.rejects.order_by("line").values_list("line", "raw", "reason", "fields"))
            for r in runs
        ],
    }


def test_a_day_through_the_cluster_gives_what_local_mode_gives(lake, cluster, settings):
    day, fixes = day_files(lake)
    usd_rates()
    local = ingest_all("transactions", day, fixes)
    assert [r.status for r in local] == ["succeeded", "succeeded"], [r.error for r in local]
    assert [(r.spark_master, r.spark_executors) for r in local] == [("local[*]", 1)] * 2
    expected = outcome(local)

    call_command("flush", interactive=False, verbosity=0)  # the state a test starts from
    usd_rates()
    settings.SPARK_MASTER = cluster.master_url
    on_cluster = ingest_all("transactions", day, fixes)
    got = outcome(on_cluster)

    assert [(r.spark_master, r.spark_executors) for r in on_cluster] == [
        (cluster.master_url, 2)
    ] * 2
    assert got["runs"] == expected["runs"]
    assert got["versions"] == expected["versions"] == [(1, 8_000, 0, 0), (2, 50, 58, 0)]
    assert got["current_version"] == expected["current_version"] == 2
    assert len(got["rows"]) == len(expected["rows"]) == 8_108  # 58 replaced rows kept
    assert got["rows"] == expected["rows"]
    assert got["rejects"] == expected["rejects"]
    assert [len(r) for r in got["rejects"]] == [29, 1]  # 8 x 3 bad lines, 5 duplicates; `[]`


class WorkerKiller(threading.Thread):
    """SIGKILLs, with its executor and Python workers, the worker whose executor writes a
    partition into the run's stage: its connection's application name in pg_stat_activity
    gives the Python worker's pid (kept for the next tasks: the executor is found even if
    the COPY ended between two looks). The worst moment to lose a machine: the COPY in
    flight, or committed with its task's output then lost with the executor."""

    def __init__(self, cluster: LocalCluster, dsn: str):
        super().__init__(daemon=True)
        self.cluster, self.dsn = cluster, dsn
        self.killed: int | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:

            def killed_one() -> bool:
                if self.stopping.is_set():
                    return True
                copying = conn.execute(
                    "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE %s",
                    ["datalake pid %"],
                ).fetchall()
                for (name,) in copying:
                    index = self.cluster.worker_of(int(name.split()[2]))
                    if index is not None:
                        self.cluster.kill_worker(index)
                        self.killed = index
                        return True
                return False

            wait_until(killed_one, timeout=600, what="an executor staging rows", interval=0.02)


def _runs_seen() -> list[tuple]:
    return list(IngestionRun.objects.order_by("pk").values_list("pk", "status", "path"))


def stage_tables(run_id: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE %s", [f"ingest_stage_{run_id}_%"]
        )
        return [name for (name,) in cursor.fetchall()]


def test_a_worker_killed_during_the_job_ends_right_or_fails_cleanly(lake, on_cluster):
    ids = [f"TX-K{i:06d}" for i in range(12_000)]
    lines: list = [json.dumps(tx(i, transaction_id=t, **PADDING)) for i, t in enumerate(ids)]
    for at in range(len(lines), 0, -1_000):  # a reject in every part of the file
        lines.insert(at - 17, "{broken")
    path = write_lines(lake / "landing/transactions/2026-11-23.jsonl", lines)
    amounts = sum(Decimal(10 + i) for i in range(len(ids)))
    killer = WorkerKiller(on_cluster, _dsn())
    killer.start()
    try:
        run = ingest("transactions", path)
    finally:
        killer.stopping.set()
        killer.join()
    try:
        assert killer.killed is not None, "no executor was seen copying: nothing was killed"
        # Dropped, whatever the outcome (else: which attempt's, and how it ended).
        left = stage_tables(run.pk)
        assert left == [], (left, run.status, run.error[:500], run.progress, _runs_seen())
        if run.status == "failed":  # a clean failure: nothing of it merged; a rerun completes
            assert "Spark job" in run.error, run.error
            assert not Transaction.objects.exists()
            assert Resource.objects.get(name="transactions").current_version == 0
            run = ingest("transactions", path)
        assert run.status == "succeeded", run.error
        assert (run.rows_read, run.rows_loaded, run.rows_rejected) == (12_012, 12_000, 12)
        assert (run.rows_added, run.version, run.spark_master) == (12_000, 1, on_cluster.master_url)
        assert run.progress["rows_staged"] == 12_000  # no partition staged twice
        assert run.rejects.count() == 12
        current = Transaction.objects.filter(valid_to__isnull=True)
        assert sorted(current.values_list("transaction_id", flat=True)) == ids
        assert sum(current.values_list("amount", flat=True)) == amounts
    finally:
        if killer.killed is not None:
            on_cluster.restart_worker(killer.killed)


def test_a_file_whose_lines_are_not_all_staged_fails_the_run_instead_of_loading_short():
    """A task that ends as if its input were complete when it was cut short (an executor
    lost upstream) leaves lines out of the stage: the job's check fails the run."""
    from ingestion.jobs.spark_job import check_every_line_staged

    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE "stage_check" (line bigint)')
        cursor.execute('CREATE TABLE "stage_check_rejects" (line bigint)')
        cursor.execute('INSERT INTO "stage_check" VALUES (2), (3), (3), (5)')  # 3: two rows
        cursor.execute('INSERT INTO "stage_check_rejects" VALUES (4)')
    try:
        check_every_line_staged(_dsn(), "stage_check", 4)  # lines 2-5 of a file with a header
        with pytest.raises(RuntimeError, match="4 of the file's 5 lines were staged"):
            check_every_line_staged(_dsn(), "stage_check", 5)
    finally:
        with connection.cursor() as cursor:
            cursor.execute('DROP TABLE "stage_check", "stage_check_rejects"')
