"""Launching a run's PySpark job as a `spark-submit` subprocess.

The JVM never lives in the Celery worker: the job is a child process (killed
with the worker if the worker dies), the driver of a Spark application in client mode,
in local mode (`local[*]`) or on a cluster (`SPARK_MASTER=spark://...`). What a
cluster's executors need does not come from the worker's environment, which they do
not see: `ingestion` (its pure-Python modules) goes with `--py-files`, their Python
with `spark.pyspark.python` (SPARK_EXECUTOR_PYTHON, by default the worker's own), the
input at its lake path (shared) and PostgreSQL through the job's DSN.

The driver stays between batches (SPARK_DRIVER_IDLE_SECONDS): a JVM and a Spark session
take ~10 s to start, more than a day's small file takes to stage. One resident driver per
worker process, used by one batch at a time (another thread meanwhile gets a driver of
its own for its batch, as before), started again when the settings that make its
command change, when it died, after MAX_BATCHES batches, and stopped once idle for
SPARK_DRIVER_IDLE_SECONDS. A batch given up half-way (its caller failed, or the watchdog
fired) kills the driver: what it was still doing would be mistaken for the next batch.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import shutil
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

logger = logging.getLogger(__name__)

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
    """Stage several runs in one Spark session, in order: the resident driver's (see
    the module's docstring), or a `spark-submit` of their own.

    Yields `(run id, counts)` as each run is staged, or `(run id, SparkJobFailed)`; runs
    the job never reported (it died, or timed out: SPARK_JOB_TIMEOUT a run) come last
    as failed, with the tail of the log. The caller merges each run as it comes, while
    Spark reads the next file.
    """
    # A short wait: the reaper holds the lock for a moment when it looks at an idle driver.
    if keeps_driver() and _resident_lock.acquire(timeout=0.5):
        try:
            yield from _resident_jobs(jobs, dsn, log_path)
        finally:
            _resident_lock.release()
        return
    yield from _one_shot_jobs(jobs, dsn, work, log_path)


def _one_shot_jobs(jobs: list[dict], dsn: str, work: Path, log_path: Path):
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


MAX_BATCHES = 100  # then a new driver: what a long-lived JVM and session accumulate goes
# The environment a driver keeps from its start: another value of these, another driver
# (not of the rest: e.g. PYTEST_CURRENT_TEST changes at every test).
DRIVER_ENV = ("SPARK", "PYSPARK", "JAVA", "HADOOP", "PYTHON", "PATH", "LD_", "TZ", "LANG", "LC_")

_resident_lock = threading.Lock()  # one batch at a time on the resident driver
_resident: _Driver | None = None


def keeps_driver() -> bool:
    """Whether this batch may use (and leave) a resident driver.

    Not on a standalone master unless the deployment caps each application's cores
    (`spark.cores.max`) or lets idle executors go (dynamic allocation): a driver kept
    idle would hold every core of the cluster and the other workers' drivers would get
    no executor. Only from the main thread: a driver dies with the thread that started
    it (PR_SET_PDEATHSIG), and a pool's thread may end at any time.
    """
    if settings.SPARK_DRIVER_IDLE_SECONDS <= 0:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if settings.SPARK_MASTER.startswith("local"):
        return True
    conf = spark_conf()
    return "spark.cores.max" in conf or conf.get("spark.dynamicAllocation.enabled") == "true"


class _Driver:
    """A resident `spark_job.py --serve PIPE`: each batch written to a file named on the
    pipe (the driver deletes it once read: it holds the DSN), results out on stdout,
    its log in one file (each batch's part copied to the batch's own log). Its files
    are in a folder of its own, private to this user on this machine (never the shared
    lake: other hosts' workers have the same process ids)."""

    def __init__(self, key: tuple, command: list[str], env: dict):
        self.key, self.owner = key, os.getpid()
        self.folder = Path(tempfile.mkdtemp(prefix="datalake-spark-driver-"))  # 0700
        self.log_path = self.folder / "driver.log"
        self.pipe_path = self.folder / "batches.pipe"
        self.batches, self.last_used = 0, time.monotonic()
        os.mkfifo(self.pipe_path, 0o600)
        # Read-write: opening never waits for the driver, a line written before it reads
        # waits in the pipe, and the driver sees the pipe's end when this process closes
        # it (or dies). A line is a file's name: it never fills the pipe.
        self.pipe: int | None = os.open(self.pipe_path, os.O_RDWR)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*command, "--serve", str(self.pipe_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=ROOT,
                preexec_fn=_die_with_parent,
            )

    def usable(self, key: tuple) -> bool:
        return self.key == key and self.process.poll() is None and self.batches < MAX_BATCHES

    def send(self, batch: dict) -> None:
        self.batches += 1
        self.last_used = time.monotonic()
        path = self.folder / f"batch-{self.batches}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(batch, handle)
        os.write(self.pipe, f"{path}\n".encode())

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def copy_log(self, start: int, to: Path) -> None:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as log:
            log.seek(start)
            to.write_bytes(log.read())

    def stop(self, grace: float = 10.0) -> None:
        """Let it end its session (the pipe closed); killed if it does not in `grace` s."""
        self._close_pipe()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(grace)
        self.kill()

    def kill(self, *, remove: bool = True) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._close_pipe()
        self.process.stdout.close()
        if remove:
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _close_pipe(self) -> None:
        if self.pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self.pipe)
            self.pipe = None


def _driver_for(*, fresh: bool = False) -> tuple[_Driver, bool]:
    """The resident driver for the current settings (the lock held), started if need be
    (or, `fresh`, in any case); and whether it served batches before."""
    global _resident
    command, env = spark_submit_command({}), _env()
    key = (tuple(command), tuple(sorted(i for i in env.items() if i[0].startswith(DRIVER_ENV))))
    driver = _resident
    if driver is not None and (fresh or not driver.usable(key)):
        _resident = None
        driver.stop()
        driver = None
    if driver is not None:
        return driver, True
    driver = _resident = _Driver(key, command, env)
    _start_reaper()
    return driver, False


def _resident_jobs(jobs: list[dict], dsn: str, log_path: Path):
    global _resident
    pending = [job["run-id"] for job in jobs]
    fresh = False
    while True:
        driver, reused = _driver_for(fresh=fresh)
        start, done, answered = driver.log_size(), False, False
        watchdog = _Watchdog(driver.process, settings.SPARK_JOB_TIMEOUT)
        try:
            driver.send({"dsn": dsn, "jobs": jobs})
            for raw in driver.process.stdout:
                line = raw.decode(errors="replace").strip()
                kind, _, payload = line.partition(" ")
                if kind == "INGEST_BATCH_DONE":
                    done = True
                    break
                if kind not in ("INGEST_RESULT", "INGEST_FAILED"):
                    continue
                result = json.loads(payload)
                run_id = result.pop("run-id")
                pending.remove(run_id)
                answered = True
                if kind == "INGEST_FAILED":
                    result = SparkJobFailed(f"The Spark job failed: {result['error']}")
                with watchdog.paused():
                    yield run_id, result
        finally:
            watchdog.stop()
            driver.last_used = time.monotonic()
            if not done:  # died, timed out, or the caller gave up on the rest of the batch
                _resident = None
                driver.kill(remove=False)
            driver.copy_log(start, log_path)  # the batch's log, its last words included
            if not done:
                driver.remove()
        if done or answered or not reused or watchdog.fired:  # a timeout is not sent again
            break
        # A driver kept from earlier batches ended without a word on this one (its session
        # had stopped: a master lost while it was idle): once more, on a new driver.
        logger.warning("The resident Spark driver ended before its batch: starting another")
        fresh = True
    if pending:
        failure = SparkJobFailed(
            f"The Spark job failed: {_summary(log_path, driver.process.returncode)}"
        )
        for run_id in pending:
            yield run_id, failure


_reaper_started = False


def _start_reaper() -> None:
    """Once per process: a thread that stops the resident driver once it has been idle
    for SPARK_DRIVER_IDLE_SECONDS, and its stop at the process's exit (a Celery pool
    child ends without atexit: `datalake.celery` stops it at worker_process_shutdown)."""
    global _reaper_started
    if _reaper_started:
        return
    _reaper_started = True
    threading.Thread(target=_reap, daemon=True, name="spark-driver-reaper").start()
    atexit.register(stop_resident_driver)


def _reap() -> None:
    while True:
        time.sleep(1.0)
        idle, driver = settings.SPARK_DRIVER_IDLE_SECONDS, _resident
        if driver is None or time.monotonic() - driver.last_used < idle:
            continue  # not idle long enough: no need to take the lock to know it
        with contextlib.suppress(Exception):  # the reaper never dies of one bad look
            stop_resident_driver(idle_for=idle, blocking=False)


def stop_resident_driver(*, idle_for: float | None = None, blocking: bool = True) -> bool:
    """Stop this process's resident driver, if any, not busy (else False) and, with
    `idle_for`, unused for that many seconds."""
    global _resident
    if not _resident_lock.acquire(blocking=blocking):
        return False
    try:
        driver = _resident
        if driver is None:
            return True
        if idle_for is not None and time.monotonic() - driver.last_used < idle_for:
            return True
        _resident = None
        driver.stop()
        return True
    finally:
        _resident_lock.release()


def _forget_parents_driver() -> None:
    """In a forked child (a Celery pool child): the parent's driver, its lock's state and
    its reaper are the parent's. The inherited end of its pipe is closed here, or the
    parent's driver would never see the pipe's end."""
    global _resident, _resident_lock, _reaper_started
    if _resident is not None and _resident.pipe is not None:
        with contextlib.suppress(OSError):
            os.close(_resident.pipe)
    _resident, _resident_lock, _reaper_started = None, threading.Lock(), False


os.register_at_fork(after_in_child=_forget_parents_driver)


class _Watchdog:
    """Kills the job when one run takes more than `timeout` s of Spark's own time."""

    def __init__(self, process, timeout: float):
        self.process, self.timeout = process, timeout
        self.deadline = time.monotonic() + timeout
        self.stopping, self.fired = threading.Event(), False
        self.thread = threading.Thread(target=self._watch, daemon=True, name="spark-watchdog")
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            if time.monotonic() > self.deadline and self.process.poll() is None:
                self.fired = True
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
        self.thread.join()  # no kill after this: the driver may serve the next batch


def _summary(log_path: Path, returncode) -> str:
    try:
        tail = log_path.read_text(errors="replace")[-3000:]
    except OSError:  # no log: the exit code is all there is to say
        tail = ""
    errors = [ln for ln in tail.splitlines() if "Error" in ln or "Exception" in ln]
    return errors[-1] if errors else f"exit code {returncode}"
