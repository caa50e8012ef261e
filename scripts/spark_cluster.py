#!/usr/bin/env python
"""A Spark standalone cluster on this machine: one master and N workers, to try the
ingestion against `SPARK_MASTER=spark://...` (docs/DEPLOY.md, "A Spark standalone cluster").

    .venv/bin/python scripts/spark_cluster.py                  # master + 2 workers
    .venv/bin/python scripts/spark_cluster.py --workers 3 --cores 1 --memory 1g
    SPARK_MASTER=spark://127.0.0.1:7077 make run                # in another shell

It prints the master's URL and web UI, and runs until Ctrl-C or SIGTERM, which stop every
process it started: each master and worker with everything below it (the executors'
JVMs, and their Python workers, which pyspark's daemon puts in groups of their own). The
daemons are Spark's own classes run by pyspark's `spark-class`, with Java from JAVA_HOME
or the PATH; their logs and work folders are under `--work-dir` (run/spark-cluster). They
start with the environment minus what a driver sets for itself (PYTHONPATH, PYSPARK_*,
Django's settings), as workers on other machines would: what the executors need comes
from the job.

The test suite starts the same cluster (`LocalCluster`) with free ports
(tests/ingestion/test_spark_cluster.py), as does the benchmark (bench/scenarios/spark_cluster.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyspark

ROOT = Path(__file__).resolve().parent.parent
SPARK_CLASS = Path(sys.executable).parent / "spark-class"
# What the portal's processes set for a Spark driver: a worker elsewhere has none of it.
DRIVER_ONLY = ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "DJANGO_SETTINGS_MODULE")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class LocalCluster:
    """A standalone master and `workers` workers of `cores` cores and `memory` each.

    `start()` returns once the master lists every worker alive; `stop()` (also on leaving
    a `with` block) ends every process group. `master_url` is what SPARK_MASTER takes,
    `ui_url` what SPARK_MASTER_UI_URL takes (the master's web UI; `/json/` its state).
    """

    def __init__(
        self,
        workers: int = 2,
        cores: int = 1,
        memory: str = "1g",
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        webui_port: int | None = None,
        work_dir: Path | str | None = None,
    ):
        self.workers, self.cores, self.memory, self.host = workers, cores, memory, host
        self.port = port or free_port(host)
        self.webui_port = webui_port or free_port(host)
        self.work_dir = Path(work_dir or ROOT / "run" / "spark-cluster").resolve()
        self.master: subprocess.Popen | None = None
        self.worker_processes: list[subprocess.Popen | None] = []

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.webui_port}"

    # -- processes --------------------------------------------------------------------

    def _env(self, name: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in DRIVER_ONLY}
        # spark-class finds Spark with `python3 -c 'import pyspark'` unless SPARK_HOME says:
        # the `python3` on PATH may be another interpreter (CI, cron) than this one.
        env.setdefault("SPARK_HOME", str(Path(pyspark.__file__).parent))
        local = self.work_dir / name / "local"  # executors' scratch space (shuffle, spill)
        local.mkdir(parents=True, exist_ok=True)
        return {**env, "SPARK_LOCAL_IP": self.host, "SPARK_LOCAL_DIRS": str(local)}

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        folder = self.work_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(self.work_dir / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                [str(SPARK_CLASS), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
                env=self._env(name),
                start_new_session=True,  # its own process group: its executors go with it
            )

    def start(self, timeout: float = 120) -> LocalCluster:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.master = self._spawn(
            "master",
            [
                "org.apache.spark.deploy.master.Master",
                "--host", self.host,
                "--port", str(self.port),
                "--webui-port", str(self.webui_port),
            ],
        )  # fmt: skip
        try:
            # Workers that find no master wait 5-15 s before they try again: master first.
            self._wait(lambda: _port_open(self.host, self.port), timeout, "the master's port")
            self.worker_processes = [self._start_worker(i) for i in range(self.workers)]
            self.wait_for_workers(self.workers, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_worker(self, index: int) -> subprocess.Popen:
        name = f"worker-{index}"
        return self._spawn(
            name,
            [
                "org.apache.spark.deploy.worker.Worker",
                self.master_url,
                "--host", self.host,
                "--cores", str(self.cores),
                "--memory", self.memory,
                "--work-dir", str(self.work_dir / name / "work"),
                "--webui-port", "0",
            ],
        )  # fmt: skip

    def kill_worker(self, index: int) -> None:
        """SIGKILL worker `index` with its executors and their Python workers, at once (a
        lost machine)."""
        process = self.worker_processes[index]
        if process is not None:
            _kill_tree(process, signal.SIGKILL)
            process.wait()

    def worker_of(self, pid: int) -> int | None:
        """The index of the worker that `pid` runs under (an executor, a Python worker)."""
        leaders = {p.pid: i for i, p in enumerate(self.worker_processes) if p is not None}
        while pid > 1:
            if pid in leaders:
                return leaders[pid]
            pid = _parent(pid)
        return None

    def restart_worker(self, index: int, timeout: float = 120) -> None:
        """Start worker `index` again (after `kill_worker`) and wait until it is alive."""
        self.kill_worker(index)
        self.worker_processes[index] = self._start_worker(index)
        self._wait(
            lambda: self.alive_workers() >= self.workers and self._own_workers_alive(),
            timeout,
            f"worker {index} to register again",
        )

    def stop(self, grace: float = 10) -> None:
        """SIGTERM to every process, SIGKILL to what is left of them after `grace` s."""
        processes = [p for p in [*self.worker_processes, self.master] if p is not None]
        trees = {p.pid: _tree(p.pid) for p in processes}  # before the leaders go
        for process in processes:
            _kill_tree(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_tree(process, signal.SIGKILL, trees[process.pid])
            process.wait()
        self.worker_processes, self.master = [], None

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the master's view --------------------------------------------------------------

    def status(self) -> dict:
        """The master's `/json/`: workers (state, cores), running and completed apps."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> int:
        try:
            workers = self.status().get("workers", [])
        except OSError:
            return 0
        return sum(1 for w in workers if w.get("state") == "ALIVE")

    def _own_workers_alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in self.worker_processes)

    def running_apps(self) -> list[dict]:
        try:
            return [a for a in self.status().get("activeapps", []) if a.get("state") == "RUNNING"]
        except OSError:
            return []

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        self._wait(lambda: self.alive_workers() >= count, timeout, f"{count} alive workers")

    def _wait(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            dead = [p for p in [self.master, *self.worker_processes] if p and p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"exit code {dead[0].returncode}" if dead else f"{timeout} s"
                raise RuntimeError(
                    f"Spark cluster: no {what} ({why}); see the logs in {self.work_dir}"
                )
            time.sleep(0.2)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])  # ppid and starttime, after the name and state


def _parent(pid: int) -> int:
    stat = _stat(pid)
    return stat[0] if stat else 0


def _tree(pid: int) -> set[tuple[int, int]]:
    """`pid` and every process below it, each as (pid, start time): a pid that comes
    back later with another start time is another process."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    root = _stat(pid)
    out, todo = set(), [(pid, root[1])] if root else []
    while todo:
        current = todo.pop()
        out.add(current)
        todo.extend(children.get(current[0], []))
    return out


def _kill_tree(process: subprocess.Popen, sig: int, known: set = frozenset()) -> None:
    """`sig` to the process's group (start_new_session: its id is the leader's pid) and to
    every process below it (`known`: found earlier, e.g. before their leader exited),
    those in groups of their own too (pyspark's daemon makes one)."""
    found = _tree(process.pid) if process.poll() is None else set()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
    for pid, started in {*known, *found}:
        stat = _stat(pid)
        if stat and stat[1] == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1, help="cores of each worker (1)")
    parser.add_argument("--memory", default="1g", help="memory of each worker (1g)")
    parser.add_argument("--host", default="127.0.0.1", help="the address everything binds")
    parser.add_argument("--port", type=int, default=7077, help="the master's port (7077)")
    parser.add_argument("--webui-port", type=int, default=8080, help="its web UI's (8080)")
    parser.add_argument("--work-dir", default=str(ROOT / "run" / "spark-cluster"))
    parser.add_argument("--clean", action="store_true", help="empty --work-dir first")
    args = parser.parse_args(argv)
    if args.clean:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    cluster = LocalCluster(
        args.workers, args.cores, args.memory, host=args.host, port=args.port,
        webui_port=args.webui_port, work_dir=args.work_dir,
    )  # fmt: skip

    def _stop(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)
    try:
        cluster.start()
        print(f"Spark master: {cluster.master_url} ({args.workers} workers of {args.cores} "
              f"cores and {args.memory}); web UI {cluster.ui_url}", flush=True)  # fmt: skip
        print(f"  SPARK_MASTER={cluster.master_url} SPARK_MASTER_UI_URL={cluster.ui_url}")
        print(f"  logs in {cluster.work_dir}; Ctrl-C stops it", flush=True)
        while True:
            for index, process in enumerate(cluster.worker_processes):
                if process is not None and process.poll() is not None:
                    print(f"worker {index} exited ({process.returncode}); starting it again")
                    cluster.restart_worker(index)
            if cluster.master is None or cluster.master.poll() is not None:
                print("the master exited; stopping", file=sys.stderr)
                return 1
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
