"""Launching a run's PySpark job as a `spark-submit` subprocess.

The JVM never lives in the Celery worker: the job is a child process (killed
with the worker if the worker dies), the driver of a Spark application in client mode,
in local mode (`local[*]`) or on a cluster (`SPARK_MASTER=spark://...`). What a
cluster's executors need does not come from the worker's environment, which they do
not see: `ingestion` (its pure-Python modules) goes with `--py-files`, their Python
with `spark.pyspark.python` (SPARK_EXECUTOR_PYTHON, by default the worker's own), the
input at its lake path (shared) and PostgreSQL through the job's DSN.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from functools import lru_cache
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "ingestion" / "jobs" / "spark_job.py"
SHIPPED = ["__init__.py", "rates.py", "sources.py", "validation.py"]


class SparkJobFailed(Exception):
    pass


@lru_cache(maxsize=1)
def py_files() -> str:
    """A zip of the pure-Python modules the executors import."""
    path = Path(tempfile.gettempdir()) / f"datalake-ingestion-{os.getpid()}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in SHIPPED:
            archive.write(ROOT / "ingestion" / name, f"ingestion/{name}")
        archive.writestr("ingestion/jobs/__init__.py", "")
    return str(path)


def _die_with_parent():  # runs in the child before exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the job dies if the worker dies


def spark_conf() -> dict[str, str]:
    """The `--conf`s of every job: the driver's Python and the executors' (the same path
    unless SPARK_EXECUTOR_PYTHON says otherwise: a cluster's executors do not inherit the
    worker's PYSPARK_PYTHON), then the deployment's own (SPARK_SUBMIT_CONF, e.g.
    `spark.cores.max=4`), which win."""
    conf = {
        "spark.ui.enabled": "false",
        "spark.pyspark.driver.python": sys.executable,
        "spark.pyspark.python": settings.SPARK_EXECUTOR_PYTHON or sys.executable,
    }
    for item in settings.SPARK_SUBMIT_CONF:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"SPARK_SUBMIT_CONF: {item!r} is no key=value")
        conf[key.strip()] = value.strip()
    return conf


def spark_submit_command(args: dict) -> list[str]:
    submit = Path(sys.executable).parent / "spark-submit"
    command = [
        str(submit),
        "--master",
        settings.SPARK_MASTER,
        "--driver-memory",
        settings.SPARK_DRIVER_MEMORY,
        "--py-files",
        py_files(),
    ]
    for key, value in spark_conf().items():
        command += ["--conf", f"{key}={value}"]
    command.append(str(JOB))
    for name, value in args.items():
        command += [f"--{name}", str(value)]
    return command


def _env() -> dict:
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
    }


def run_spark_jobs(jobs: list[dict], dsn: str, work: Path, log_path: Path):
    """Stage several runs in one `spark-submit` (one JVM), in order.

    Yields `(run id, counts)` as each run is staged, or `(run id, SparkJobFailed)`; runs
    the job never reported (it died, or timed out: SPARK_JOB_TIMEOUT a run) come last
    as failed, with the tail of the log. The caller merges each run as it comes, while
    Spark reads the next file.
    """
    jobs_file = work / f"{jobs[0]['run-id']}-jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    pending = [job["run-id"] for job in jobs]
    watchdog = process = None
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                spark_submit_command({"dsn": dsn, "jobs": jobs_file}),
                stdout=subprocess.PIPE,
                stderr=log,
                env=_env(),
                cwd=ROOT,
                preexec_fn=_die_with_parent,
            )
            watchdog = _Watchdog(process, settings.SPARK_JOB_TIMEOUT)
            for raw in process.stdout:
                line = raw.decode(errors="replace").strip()
                kind, _, payload = line.partition(" ")
                if kind not in ("INGEST_RESULT", "INGEST_FAILED"):
                    continue
                result = json.loads(payload)
                run_id = result.pop("run-id")
                pending.remove(run_id)
                if kind == "INGEST_FAILED":
                    result = SparkJobFailed(f"The Spark job failed: {result['error']}")
                with watchdog.paused():  # the caller merges: not Spark's time
                    yield run_id, result
            process.wait()
    finally:
        if watchdog is not None:
            watchdog.stop()
        if process is not None and process.poll() is None:  # the caller gave up on the rest
            process.kill()
            process.wait()
        jobs_file.unlink(missing_ok=True)
    if pending:
        failure = SparkJobFailed(f"The Spark job failed: {_summary(log_path, process.returncode)}")
        for run_id in pending:
            yield run_id, failure


class _Watchdog:
    """Kills the job when one run takes more than `timeout` s of Spark's own time."""

    def __init__(self, process, timeout: float):
        self.process, self.timeout = process, timeout
        self.deadline = time.monotonic() + timeout
        self.stopping = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="spark-watchdog").start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            if time.monotonic() > self.deadline and self.process.poll() is None:
                self.process.kill()

    @contextlib.contextmanager
    def paused(self):
        self.deadline = float("inf")
        try:
            yield
        finally:
            self.deadline = time.monotonic() + self.timeout

    def stop(self) -> None:
        self.stopping.set()


def run_spark_job(args: dict, log_path: Path) -> dict:
    """One run alone: its counts, or SparkJobFailed with the log's tail."""
    job = {k: v for k, v in args.items() if k != "dsn"}
    for _run_id, result in run_spark_jobs([job], args["dsn"], log_path.parent, log_path):
        if isinstance(result, Exception):
            raise result
        return result
    raise SparkJobFailed("The Spark job reported nothing")


def _summary(log_path: Path, returncode) -> str:
    tail = log_path.read_text(errors="replace")[-3000:]
    errors = [ln for ln in tail.splitlines() if "Error" in ln or "Exception" in ln]
    return errors[-1] if errors else f"exit code {returncode}"
