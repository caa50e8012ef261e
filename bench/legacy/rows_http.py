"""The helpers the legacy benchmarks share (bench/legacy/*.py import it as `rh`/`base`).

Its own benchmark, the rows endpoint's, is `bench/run.py rows` now
(bench/scenarios/rows.py on bench/harness/, which has these helpers written once); this
module stays until the legacy scripts move onto the harness too. Servers run
`bench.settings` (= benchsite.settings) on fixed ports: 8765 (main) and 8766 (nolog).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
DB_NAME = "datalake_bench"
ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
HOST, PORT = "127.0.0.1", 8765
BASE = f"http://{HOST}:{PORT}"
NOLOG_PORT = 8766  # the same stack without the request-log middleware (a_nolog)
NOLOG_BASE = f"http://{HOST}:{NOLOG_PORT}"
NOLOG_SETTINGS = os.environ.get("BENCH_NOLOG_SETTINGS", "bench.settings_nolog")
LOG_COST_TARGET = 0.10
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
WRK_THREADS = 2
FIELDS = "transaction_id,timestamp,country,amount,status,payment_method"
ROWS_PATH = f"/api/v1/resources/transactions/rows/?country=FR&amount__gt=100&fields={FIELDS}"
FILTER_SQL = "valid_to IS NULL AND country = 'FR' AND amount > 100"
CURSOR_PAGE = 100_000  # scenario (b) starts from this page's next_cursor
SCENARIOS = ("ceiling", "ceiling_logged", "naive", "a", "a_nolog", "b", "c")
SERVER_OF = {"a_nolog": NOLOG_BASE}  # every other scenario: BASE
LABELS = {
    "ceiling": "ceiling: bare DRF view, 10 fixed rows",
    "ceiling_logged": "(info) the ceiling under /api/, so request-logged",
    "naive": "naive peer: ModelSerializer + PageNumberPagination",
    "a": "(a) rows page 1, country=FR&amount__gt=100",
    "a_nolog": "(a) without the request-log middleware (issue 3)",
    "b": "(b) rows by cursor: row 1,000,001 on",
    "c": "(c) rows page=1000",
}

sys.path.insert(0, str(ROOT))
ENV: dict[str, str] = {}
SERVER_PGIDS: set[int] = set()  # the gunicorns started here (their own sessions)
QUIET = {"threshold": 0.15, "limit": 600.0}  # see wait_quiet()


def configure(db_name: str) -> None:
    """Point the run (this process, migrate, gunicorn) at the bench's own database."""
    global DB_NAME, DB_URL
    DB_NAME, DB_URL = db_name, f"postgres://postgres@127.0.0.1:5432/{db_name}"
    ENV.update(
        os.environ,
        DJANGO_SETTINGS_MODULE="bench.settings",
        DATABASE_URL=DB_URL,
        DEBUG="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- set-up ---------------------------------------------------------------------------


def prepare_database(rows: int) -> None:
    """Create and migrate `datalake_bench`, then load the rows (skipped when there)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            log(f"created database {DB_NAME}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=ENV, check=True
    )
    from bench.load_transactions import load

    load(DB_URL, rows, seed=42, replace=True)


def django_setup() -> None:
    os.environ.update({k: ENV[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DEBUG")})
    import django

    django.setup()


def bench_token(resources: tuple[str, ...] = ("transactions",)) -> str:
    """A fresh token of the `bench` user, who holds a live `read` grant on `resources`."""
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken, Grant
    from datalake.models import Resource

    user, _ = get_user_model().objects.get_or_create(username="bench")
    for name in resources:
        resource = Resource.objects.get(name=name)
        Grant.objects.get_or_create(user=user, resource=resource, privilege="read", expires_at=None)
    ApiToken.objects.filter(user=user).delete()
    _token, key = ApiToken.issue(user)
    return key


# -- the server -----------------------------------------------------------------------


def port_taken(port: int = PORT) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((HOST, port)) == 0


def start_gunicorn(
    log_path: Path, port: int = PORT, settings: str = "bench.settings"
) -> subprocess.Popen:
    if port_taken(port):
        sys.exit(f"{HOST}:{port} is already taken: another server would be measured")
    command = [
        str(VENV_BIN / "gunicorn"),
        "datalake.wsgi",
        "--workers", str(WORKERS),
        "--worker-class", "sync",
        "--bind", f"{HOST}:{port}",
        "--timeout", "120",
        "--log-level", "warning",
    ]  # fmt: skip
    log(f"starting gunicorn ({WORKERS} sync workers, {settings}) on {HOST}:{port}")
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**ENV, "DJANGO_SETTINGS_MODULE": settings},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    SERVER_PGIDS.add(proc.pid)
    return proc


def stop_gunicorn(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    log("stopping gunicorn")
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


def get(
    path: str, token: str | None, timeout: float = 60, base: str = BASE
) -> tuple[int, dict | None]:
    request = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def one_connection(
    paths: list[str],
    token: str,
    base: str = BASE,
    most: int = 200,
    least: int = 5,
    budget: float | None = None,
) -> dict:
    """One connection, one request after the other (`paths` in turn): an endpoint's
    latency with no queue, where an issue's latency names no concurrency (at 16
    connections on 2 workers p50 is mostly the wait behind the others; see
    docs/BENCHMARKS.md). Stops after `most` requests, or `budget` s once `least` ran."""
    times: list[float] = []
    t_end = time.monotonic() + budget if budget else None
    while len(times) < most and (len(times) < least or t_end is None or time.monotonic() < t_end):
        path = paths[len(times) % len(paths)]
        t0 = time.perf_counter()
        status, _ = get(path, token, timeout=300, base=base)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
    times.sort()
    return {
        "n": len(times),
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_ms": times[-1],
    }


def wait_until_up(
    proc: subprocess.Popen, log_path: Path, timeout: float = 60, base: str = BASE
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited ({proc.returncode}); see {log_path}")
        try:
            get("/bench/ceiling/", None, timeout=2, base=base)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    sys.exit(f"gunicorn did not answer within {timeout:.0f} s; see {log_path}")


def idle_latency(token: str, samples: int = 20, base: str = BASE) -> float:
    """Median seconds of one ceiling request on the idle server: the yardstick of `drain`."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        get("/bench/ceiling/", token, base=base)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def drain(token: str, idle: float, limit: float = 300, base: str = BASE) -> float:
    """Wait until the server is idle again; returns the seconds waited.

    When wrk stops, the requests it left in gunicorn's listen queue are still served
    (a sync worker cannot see that the client went away): after the naive peer that
    is seconds of work that would otherwise be charged to the next scenario.
    """
    started = time.monotonic()
    quick = 0
    while quick < 3 and time.monotonic() - started < limit:
        t0 = time.perf_counter()
        get("/bench/ceiling/", token, base=base)
        quick = quick + 1 if time.perf_counter() - t0 < 3 * idle + 0.01 else 0
        time.sleep(0.05)
    return time.monotonic() - started


# -- wrk ------------------------------------------------------------------------------


# -- the shared machine: who else used the CPU -----------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def own_processes() -> dict[int, int]:
    """pid -> CPU jiffies of the processes this benchmark drives: the gunicorns started
    here (by process group), the PostgreSQL backends of its database (by process title)
    and their parallel workers."""
    found: dict[int, int] = {}
    workers: dict[int, tuple[int, int]] = {}  # parallel worker pid -> (leader, jiffies)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            jiffies = int(fields[11]) + int(fields[12])
            if int(fields[2]) in SERVER_PGIDS:
                found[int(entry.name)] = jiffies
            elif "(postgres)" in stat:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
                if f" {DB_NAME} " in title:
                    found[int(entry.name)] = jiffies
                elif "parallel worker for PID " in title:
                    leader = int(title.split("parallel worker for PID ")[1].split()[0].strip("\0"))
                    workers[int(entry.name)] = (leader, jiffies)
        except (OSError, IndexError, ValueError):
            continue
    for pid, (leader, jiffies) in workers.items():
        if leader in found:
            found[pid] = jiffies
    return found


class OwnCpu(threading.Thread):
    """Samples own_processes() every `every` s during a run: a backend that ends (Django
    closes connections after CONN_MAX_AGE) or a parallel worker loses at most one
    interval of CPU, instead of vanishing from a before/after difference."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every = every
        self.first = own_processes()
        self.last = dict(self.first)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self._sample()

    def _sample(self) -> None:
        for pid, jiffies in own_processes().items():
            self.first.setdefault(pid, 0)  # new since the start: all of its CPU counts
            self.last[pid] = jiffies

    def stop(self) -> int:
        """Jiffies used by our processes since the start."""
        self.stopping.set()
        self.join()
        self._sample()
        return sum(max(0, self.last[pid] - self.first[pid]) for pid in self.last)


def wait_quiet(label: str) -> float:
    """Wait (up to QUIET["limit"] s) until the machine is idle while our servers are: the
    busy share of all CPUs over 2 s below QUIET["threshold"]. Returns the seconds waited."""
    started = time.monotonic()
    said = False
    while True:
        b0, t0 = machine_jiffies()
        time.sleep(2)
        b1, t1 = machine_jiffies()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy < QUIET["threshold"]:
            break
        if time.monotonic() - started > QUIET["limit"]:
            log(f"  machine still {busy:.0%} busy after {QUIET['limit']:.0f} s: measuring anyway")
            break
        if not said:
            top = subprocess.run(
                "ps -eo pcpu,args --sort=-pcpu | sed -n 2,4p | cut -c1-110",
                shell=True, capture_output=True, text=True,
            ).stdout.strip().replace("\n", " | ")  # fmt: skip
            log(f"  before {label}: machine {busy:.0%} busy from other work, waiting ({top})")
            said = True
    return round(time.monotonic() - started, 1)


def wrk(path: str, token: str, seconds: int, connections: int, base: str = BASE) -> dict:
    """One wrk run. Adds `foreign_cpu`: the share of all CPUs used during the run by
    processes that are neither ours (servers, their backends, wrk) nor idle: other work
    on the shared machine (approximate: e.g. the WAL writer counts as foreign)."""
    command = [
        "wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{seconds}s",
        "--timeout", "30s", "-s", str(BENCH / "rows_http.lua"), base + path,
    ]  # fmt: skip
    busy0, total0 = machine_jiffies()
    own = OwnCpu()
    own.start()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command,
        env={**os.environ, "BENCH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=seconds + 90,
    )
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_used = own.stop()
    busy1, total1 = machine_jiffies()
    wrk_jiffies = (child1.ru_utime + child1.ru_stime - child0.ru_utime - child0.ru_stime) * TICK
    foreign = (busy1 - busy0) - own_used - wrk_jiffies
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line.removeprefix("BENCH_RESULT "))
            result["foreign_cpu"] = round(max(0.0, foreign) / max(1, total1 - total0), 3)
            # The server side's CPU (gunicorn workers + their PostgreSQL backends) per
            # request: robust to other work on the machine, unlike req/s.
            result["server_cpu_s"] = round(own_used / TICK, 2)
            result["server_cpu_ms_per_req"] = round(
                own_used / TICK * 1000 / max(1, result["requests"]), 3
            )
            result["machine_busy"] = round((busy1 - busy0) / max(1, total1 - total0), 3)
            return result
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip()}")


def merge_slices(slices: list[dict]) -> dict:
    """Alternating slices of one scenario as one run: req/s over the summed time; p50, p90,
    p99, mean the median of the slices'; max the max; errors and CPU shares summed/averaged."""
    duration = sum(s["duration_us"] for s in slices)
    merged = {
        "requests": sum(s["requests"] for s in slices),
        "duration_us": duration,
        "bytes": sum(s["bytes"] for s in slices),
        "rps": sum(s["requests"] for s in slices) / (duration / 1e6),
        **{
            k: statistics.median(s[k] for s in slices)
            for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
        },
        "max_ms": max(s["max_ms"] for s in slices),
        "errors": {k: sum(s["errors"][k] for s in slices) for k in slices[0]["errors"]},
        "foreign_cpu": statistics.fmean(s["foreign_cpu"] for s in slices),
        "server_cpu_s": sum(s["server_cpu_s"] for s in slices),
        "server_cpu_ms_per_req": sum(s["server_cpu_s"] for s in slices)
        * 1000
        / max(1, sum(s["requests"] for s in slices)),
        "machine_busy": statistics.fmean(s["machine_busy"] for s in slices),
        "slices": slices,
    }
    return merged


# -- the verdict ----------------------------------------------------------------------


def machine() -> dict:
    def sh(command: str) -> str:
        done = subprocess.run(command, shell=True, capture_output=True, text=True)
        return done.stdout.strip()

    with psycopg.connect(DB_URL) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "nproc": os.cpu_count(),
        "memory": sh("free -h | awk '/^Mem:/ {print $2}'"),
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "postgresql": pg,
        "python": platform.python_version(),
        "wrk": sh("wrk --version 2>&1 | head -1").split(" Copyright")[0],
        "loadavg_before": os.getloadavg(),
        "commit": sh(f"git -C {ROOT} rev-parse --short HEAD"),
        # The product code is measured as it is in the work tree (others may be editing it).
        "worktree_changes": int(sh(f"git -C {ROOT} status --short -- . ':!bench' | wc -l") or 0),
        "worktree_diff_sha1": sh(f"git -C {ROOT} diff HEAD -- . ':!bench' | sha1sum | cut -c1-12"),
    }


# -- main -----------------------------------------------------------------------------


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)  # so that `finally` stops gunicorn
