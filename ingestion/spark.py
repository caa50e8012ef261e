"""Launching a run's PySpark job as a `spark-submit` subprocess.

The JVM never lives in the Celery worker: the job is a child process (killed
with the worker if the worker dies) that a cluster could run as well
(`SPARK_MASTER`). Its executors import `ingestion.sources`, shipped with
`--py-files` so that a cluster's executors have it too.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
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
        "--conf",
        "spark.ui.enabled=false",
        str(JOB),
    ]
    for name, value in args.items():
        command += [f"--{name}", str(value)]
    return command


def run_spark_job(args: dict, log_path: Path) -> dict:
    """Run the job to completion; its result line, or SparkJobFailed with the log's tail."""
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
    }
    with open(log_path, "wb") as log:
        process = subprocess.run(
            spark_submit_command(args),
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=ROOT,
            preexec_fn=_die_with_parent,
            timeout=settings.SPARK_JOB_TIMEOUT,
        )
    for line in process.stdout.decode(errors="replace").splitlines():
        if line.startswith("INGEST_RESULT "):
            return json.loads(line.removeprefix("INGEST_RESULT "))
    tail = log_path.read_text(errors="replace")[-3000:]
    errors = [ln for ln in tail.splitlines() if "Error" in ln or "Exception" in ln]
    summary = errors[-1] if errors else f"exit code {process.returncode}"
    raise SparkJobFailed(f"The Spark job failed: {summary}")
