"""gunicorn with the bench settings, from a given tree, on a free port; stopped whatever
happens (context manager, atexit, and SIGTERM turned into SystemExit by `bench/run.py`).

    with Server(tree, db_url, "main") as server:         # benchsite.settings
        drivers.wrk(server.base, path, token, 20, 16)
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
import urllib.error
from pathlib import Path

from bench.harness import drivers
from bench.harness.tree import BENCH, Tree

HOST = "127.0.0.1"
RESULTS = BENCH / "results"
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
RUNNING: set[Server] = set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    def __init__(
        self,
        tree: Tree,
        db_url: str,
        name: str = "main",
        settings: str = "benchsite.settings",
        workers: int = WORKERS,
        env: dict | None = None,
        timeout: int = 120,
    ):
        self.tree, self.db_url, self.name = tree, db_url, name
        self.settings, self.workers, self.extra_env = settings, workers, env or {}
        self.timeout = timeout  # gunicorn's: a worker silent this long is killed
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None
        RESULTS.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_path: Path = RESULTS / f"gunicorn-{tree.label}-{name}-{stamp}.log"

    def __repr__(self) -> str:
        return f"Server({self.tree.label}/{self.name} {self.settings} at {self.base})"

    def start(self) -> Server:
        command = [
            str(self.tree.bin / "gunicorn"),
            "datalake.wsgi",
            "--workers",
            str(self.workers),
            "--worker-class",
            "sync",
            "--bind",
            f"{HOST}:{self.port}",
            "--timeout",
            str(self.timeout),
            "--log-level",
            "warning",
        ]
        drivers.log(f"starting {self} ({self.workers} sync workers, {self.tree.root})")
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=self.tree.root,
                env=self.tree.env(self.db_url, self.settings, **self.extra_env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one
            )
        RUNNING.add(self)
        drivers.OWN_PGIDS.add(self.proc.pid)
        self.wait_until_up()
        _, body = drivers.get(self.base, "/bench/tree/", None)
        served = (body or {}).get("root")
        if served != str(self.tree.root.resolve()):
            self.stop()
            raise RuntimeError(f"{self} serves {served}, not {self.tree.root}")
        return self

    def wait_until_up(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.log_path}")
            try:
                drivers.get(self.base, "/bench/ceiling/", None, timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        RUNNING.discard(self)
        if proc is None or proc.poll() is not None:
            return
        drivers.log(f"stopping {self}")
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)  # its own session: the master and its workers only
            except ProcessLookupError:
                return
            try:
                proc.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for server in list(RUNNING):
        server.stop()
