"""How a benchmark drives a server: plain GETs, wrk, one connection's sequential
requests, draining, and the shared machine's CPU accounting.

`wrk()` reports req/s and latency percentiles (wrk.lua prints them as JSON), and two
figures that make a run on a shared machine readable: `server_cpu_ms_per_req` (the CPU
of the gunicorns this harness started and of the PostgreSQL backends of the benchmark's
databases, per request) and `foreign_cpu` (the share of all CPUs other work used meanwhile).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HARNESS = Path(__file__).resolve().parent
WRK_LUA = HARNESS / "wrk.lua"
WRK_THREADS = 2
TICK = os.sysconf("SC_CLK_TCK")
# What counts as "ours" in the CPU accounting: the process groups of the servers started
# (bench/harness/server.py adds them) and the databases of the benchmark.
OWN_PGIDS: set[int] = set()
OWN_DATABASES: set[str] = set()
QUIET = {"threshold": 0.15, "limit": 600.0}  # see wait_quiet()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get update && apt-get install -y wrk")


# -- plain requests -------------------------------------------------------------------


def get(
    base: str, path: str, token: str | None, timeout: float = 60, error_body: bool = False
) -> tuple[int, dict | None]:
    """(status, JSON body); the body of an error answer only with `error_body`."""
    request = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        if not error_body:
            return error.code, None
        try:
            return error.code, json.loads(error.read() or b"null")
        except ValueError:
            return error.code, None


def one_connection(
    base: str,
    paths: list[str],
    token: str,
    most: int = 200,
    least: int = 5,
    budget: float | None = None,
) -> dict:
    """One client, one request after the other (`paths` in turn): an endpoint's latency
    with no queue, where an issue's latency names no concurrency (at 16 connections on 2
    workers p50 is mostly the wait behind the others; see docs/BENCHMARKS.md). Stops
    after `most` requests, or after `budget` s once `least` ran."""
    times: list[float] = []
    t_end = time.monotonic() + budget if budget else None
    while len(times) < most and (len(times) < least or t_end is None or time.monotonic() < t_end):
        path = paths[len(times) % len(paths)]
        t0 = time.perf_counter()
        status, _ = get(base, path, token, timeout=300)
        times.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
    times.sort()
    return {
        "requests": len(times),
        "p50_ms": statistics.median(times),
        "p90_ms": times[min(len(times) - 1, int(len(times) * 0.90))],
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
        "max_ms": times[-1],
        "rps": len(times) / (sum(times) / 1000),
        "errors": {},
    }


def idle_latency(base: str, token: str, samples: int = 20) -> float:
    """Median seconds of one ceiling request on the idle server: the yardstick of `drain`."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        get(base, "/bench/ceiling/", token)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def drain(base: str, token: str, idle: float, limit: float = 300) -> float:
    """Wait until the server is idle again; the seconds waited.

    When wrk stops, the requests it left in gunicorn's listen queue are still served (a
    sync worker cannot see that the client went away): after a slow scenario that is
    seconds of work that would otherwise be charged to the next one."""
    started = time.monotonic()
    quick = 0
    while quick < 3 and time.monotonic() - started < limit:
        t0 = time.perf_counter()
        get(base, "/bench/ceiling/", token)
        quick = quick + 1 if time.perf_counter() - t0 < 3 * idle + 0.01 else 0
        time.sleep(0.05)
    return round(time.monotonic() - started, 1)


# -- the shared machine: who else used the CPU ----------------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def own_processes() -> dict[int, int]:
    """pid -> CPU jiffies of the processes the benchmark drives: the servers started here
    (by process group), the PostgreSQL backends of its databases (by process title) and
    their parallel workers."""
    found: dict[int, int] = {}
    workers: dict[int, tuple[int, int]] = {}  # parallel worker pid -> (leader, jiffies)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            jiffies = int(fields[11]) + int(fields[12])
            if int(fields[2]) in OWN_PGIDS:
                found[int(entry.name)] = jiffies
            elif "(postgres)" in stat:
                title = (entry / "cmdline").read_bytes().decode(errors="replace")
                if any(f" {db} " in title for db in OWN_DATABASES):
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
    """Samples own_processes() every `every` s during a run: a backend that ends, or a
    parallel worker, loses at most one interval of CPU instead of vanishing from a
    before/after difference."""

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
    busy share of all CPUs over 2 s below QUIET["threshold"]. The seconds waited."""
    started = time.monotonic()
    said = False
    while QUIET["limit"] > 0:
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
            top = (
                subprocess.run(
                    "ps -eo pcpu,args --sort=-pcpu | sed -n 2,4p | cut -c1-110",
                    shell=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .replace("\n", " | ")
            )
            log(f"  before {label}: machine {busy:.0%} busy from other work, waiting ({top})")
            said = True
    return round(time.monotonic() - started, 1)


# -- wrk ------------------------------------------------------------------------------


def wrk(
    base: str,
    path: str,
    token: str,
    seconds: int,
    connections: int,
    paths_file: Path | None = None,
    if_none_match: str | None = None,
) -> dict:
    """One wrk run (2 threads, `connections` connections): req/s, p50/p90/p99/mean/max ms,
    errors, server CPU per request, and other work's share of the CPUs meanwhile.
    `paths_file` (one path a line): each thread walks those paths from its own point
    instead of requesting `path` (wrk.lua). `if_none_match`: sent as that header."""
    command = [
        "wrk",
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(WRK_LUA),
        base + path,
    ]
    busy0, total0 = machine_jiffies()
    own = OwnCpu()
    own.start()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command,
        env={  # the token never on the command line
            **os.environ,
            "BENCH_TOKEN": token,
            **({"BENCH_PATHS": str(paths_file)} if paths_file else {}),
            **({"BENCH_IF_NONE_MATCH": if_none_match} if if_none_match else {}),
        },
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
            result["server_cpu_s"] = round(own_used / TICK, 2)
            result["server_cpu_ms_per_req"] = round(
                own_used / TICK * 1000 / max(1, result["requests"]), 3
            )
            result["machine_busy"] = round((busy1 - busy0) / max(1, total1 - total0), 3)
            return result
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stderr.strip()}")


def etag(base: str, path: str, token: str) -> str:
    """The ETag of the answer to `path` (for a conditional run)."""
    request = urllib.request.Request(base + path, headers={"Accept": "application/json"})
    request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=300) as response:
        return response.headers["ETag"]


def merge_slices(slices: list[dict]) -> dict:
    """Alternating slices of one scenario as one run: req/s over the summed time; p50, p90,
    p99, mean the median of the slices'; max the max; errors and CPU summed/averaged."""
    duration = sum(s["duration_us"] for s in slices)
    requests = sum(s["requests"] for s in slices)
    return {
        "requests": requests,
        "duration_us": duration,
        "bytes": sum(s["bytes"] for s in slices),
        "rps": requests / (duration / 1e6),
        **{
            k: statistics.median(s[k] for s in slices)
            for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
        },
        "max_ms": max(s["max_ms"] for s in slices),
        "errors": {k: sum(s["errors"][k] for s in slices) for k in slices[0]["errors"]},
        "foreign_cpu": statistics.fmean(s["foreign_cpu"] for s in slices),
        "server_cpu_s": sum(s["server_cpu_s"] for s in slices),
        "server_cpu_ms_per_req": sum(s["server_cpu_s"] for s in slices) * 1000 / max(1, requests),
        "machine_busy": statistics.fmean(s["machine_busy"] for s in slices),
        "slices": slices,
    }


def errors_of(result: dict) -> int:
    return sum((result.get("errors") or {}).values())
