"""The stack, load and faults of the `load_mixed` benchmark (bench/scenarios/load_mixed.py).

The whole stack as scripts/run_local.py runs it, pointed at the benchmark's database and
a temporary lake: gunicorn (bench/harness/server.py, `--workers` sync workers), a Tansu
broker on a free port (datalake.platform.devbroker), a Celery worker (-c 2), Celery beat
the `audit` queue's worker (-c 1: the audit chain's sealing rounds) and the pipeline
consumer (`manage.py run_pipeline`); Redis databases 5 (Celery) and 6
(cache), flushed first (`--redis-dbs`).
Logs in bench/results/load_mixed-<stamp>/.

Load: one wrk per endpoint group, all at once, `--clients` connections in all split by
weight (load_mixed.lua beside this file: requests taken in turn from the group's list,
random stored ids for re-pushes and id searches, responses counted by status and by
second). The RSS (and PSS) of every process of the stack is sampled every 30 s.

Faults, each during `--fault-duration` s of the same load, injected 15 s in: PostgreSQL
stopped 10 s then started; Redis shut down (nosave) 10 s then started; a Celery worker
killed (-9, the whole worker) during an ingestion run and a new one started; the pool
child running an ingestion killed (-9); the broker stopped 10 s then started. A prober
(one request of each kind every 0.5 s) times every failure; the logs are read for
errors. After each: recovery (health 200, a fresh re-push processed, processes alive;
a process that died is restarted here and reported as not recovered by itself) and the
counts before and after. Every process started here is stopped at the end, whatever
happens; PostgreSQL and Redis are left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from bench.harness import db, drivers
from bench.harness.server import RESULTS, Server, free_port
from bench.harness.tree import Tree

HERE = Path(__file__).resolve().parent
LUA = HERE / "load_mixed.lua"
REDIS_DBS = ["5", "6"]  # the Celery broker's and the cache's; flushed at the start
SINCE = "2026-01-01"
FIELDS = "transaction_id,timestamp,country,amount,status,payment_method"
PG_RESTART = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
               "--save", ""]  # fmt: skip
DOWN_S = 10  # how long each dependency stays down
INJECT_AT = 15  # seconds into a fault phase

# Endpoint groups: (token, weight of the clients, [(method, path, body)]).
T = "/api/v1/resources/transactions/rows/"
R = "/api/v1/resources/raw_transactions/rows/"
M = "/api/v1/metrics/"
GROUPS: dict[str, tuple[str, int, list[tuple[str, str, str]]]] = {
    "rows": ("reader", 16, [
        ("GET", f"{T}?country=FR&amount__gt=100&fields={FIELDS}", ""),
        ("GET", f"{T}?status=refunded&payment_method=paypal", ""),
        ("GET", f"{T}?timestamp__gte=2026-01-15T00:00:00Z&timestamp__lt=2026-01-16T00:00:00Z"
                "&country__in=DE,GB", ""),
        ("GET", f"{T}?product_category=books&customer_rating__gte=4&page=20", ""),
        ("GET", f"{T}?amount__gte=400&ordering=-amount&fields={FIELDS}", ""),
    ]),
    "raw_rows": ("reader", 4, [
        ("GET", f"{R}?country=FR", ""),
        ("GET", f"{R}?amount__gt=100&fields=transaction_id,amount,country", ""),
    ]),
    "metrics_spent_last_minutes": ("reader", 4, [
        ("GET", f"{M}spent-last-minutes/?minutes=5", ""),
        ("GET", f"{M}spent-last-minutes/?minutes=60", ""),
    ]),
    "metrics_spent_per_user_type": ("reader", 4, [
        ("GET", f"{M}spent-per-user-type/?since=2026-01-10&until=2026-01-12", ""),
        ("GET", f"{M}spent-per-user-type/?since=2026-01-01&until=2026-01-31&page=3", ""),
    ]),
    "metrics_top_products": ("reader", 4, [
        ("GET", f"{M}top-products/?x=10&since=2026-01-01&until=2026-01-31", ""),
        ("GET", f"{M}top-products/?x=100&since=2026-01-10&until=2026-01-11", ""),
    ]),
    "search": ("reader", 10, [
        ("GET", f"/api/v1/search/?q={{TXID}}&since={SINCE}", ""),
        ("GET", f"/api/v1/search/?q=Germany&since={SINCE}", ""),
        ("GET", f"/api/v1/search/?q={{TXID}}&since={SINCE}", ""),
        ("GET", f"/api/v1/search/?q=refunded&since={SINCE}", ""),
    ]),
    "repush": ("writer", 6, [
        ("POST", "/api/v1/pipeline/repush/",
         '{"resource": "transactions", "transaction_id": "{TXID}"}'),
    ]),
    "healthz": ("", 2, [("GET", "/healthz", "")]),
}  # fmt: skip

ENV: dict[str, str] = {}
STARTED: dict[str, subprocess.Popen] = {}  # name -> process (own session, except broker)
LOGDIR: Path = RESULTS
LAKE: Path = Path("/nonexistent")
TOKENS: dict[str, str] = {}
BROKER_PORT = 0
TREE: Tree | None = None
DB_NAME = DB_URL = BASE = ""
WEB: Server | None = None
log = drivers.log


def configure(tree: Tree, database: str, stamp: str, redis_dbs: list[str]) -> dict:
    """This run's tree, database, Redis databases, log folder, lake, broker port and
    environment."""
    global TREE, DB_NAME, DB_URL, LOGDIR, LAKE, BROKER_PORT, ENV
    REDIS_DBS[:] = redis_dbs
    TREE, DB_NAME, DB_URL = tree, database, db.url_of(database)
    LOGDIR = RESULTS / f"load_mixed-{stamp}"
    LOGDIR.mkdir(parents=True)
    LAKE = Path(tempfile.mkdtemp(prefix="load_mixed_lake-"))
    (LAKE / "landing").mkdir()
    prom = LAKE / "prometheus"
    prom.mkdir()
    BROKER_PORT = free_port()
    ENV = {
        "LAKE_ROOT": str(LAKE),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{BROKER_PORT}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_dbs[0]}",
        "CACHE_URL": f"redis://127.0.0.1:6379/{redis_dbs[1]}",
        "SECRET_KEY": "bench-load-mixed-not-secret-" + stamp,
        "LAKE_MASKING_KEY": "bench-load-mixed-masking-key-not-secret-" + stamp,
        "AUDIT_SIGNING_KEY": "bench-load-mixed-audit-signing-key-not-secret-" + stamp,
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PROMETHEUS_MULTIPROC_DIR": str(prom),
    }
    # The product's settings for the worker, beat and consumer (the web server runs the
    # harness's benchsite.settings: the same plus the bench URLs it is checked by).
    ENV = tree.env(DB_URL, "datalake.settings", **ENV)
    return {k: ENV[k] for k in ("DATABASE_URL", "REDIS_URL", "CACHE_URL", "DEBUG")}


# -- set-up ---------------------------------------------------------------------------


def manage(*args: str, timeout: float = 3600) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [str(TREE.python), "manage.py", *args],
        cwd=TREE.root,
        env=ENV,
        check=True,
        timeout=timeout,
    )
    return round(time.perf_counter() - t0, 1)


def prepare(rows: int, keep: bool) -> dict:
    """The database afresh (unless `keep`), migrated, `rows` transactions, the derived
    tables rebuilt; the demo files of every source in the lake."""
    timings = {}
    if not keep:
        db.drop(DB_NAME)
    for number in REDIS_DBS:  # this run's Celery queue and cache start empty (no leftovers)
        subprocess.run(["redis-cli", "-n", number, "FLUSHDB"], check=True, capture_output=True)
    t0 = time.perf_counter()
    loaded = db.prepare(TREE, DB_NAME, rows)  # created, migrated, loaded (once)
    timings["migrate_and_load_s"] = round(time.perf_counter() - t0, 1)
    if loaded or not keep:
        log("rebuild_metrics")
        timings["rebuild_metrics_s"] = manage("rebuild_metrics")
        log("rebuild_search_index")
        timings["rebuild_search_index_s"] = manage("rebuild_search_index")
    log("demo files of every source into the lake (generate_sample_data, 7 days x 1,000)")
    timings["generate_sample_data_s"] = manage(
        "generate_sample_data", "--out", str(LAKE / "landing"), "--days", "7",
        "--per-day", "1000", "--seed", "7", "--end-date", "2026-01-31",
    )  # fmt: skip
    return timings


def make_users() -> None:
    """`load_reader` (read on transactions and raw_transactions) and `load_writer` (write:
    re-pushes, ingestion runs), with fresh tokens; the raw_* resources synced first."""
    lake = {"LAKE_ROOT": str(LAKE)}
    manage("shell", "-c", "from datalake.catalog.sync import sync_resources; sync_resources()")
    grants = {
        "reader": [("transactions", "read"), ("raw_transactions", "read")],
        "writer": [("transactions", "read"), ("transactions", "write")],
    }
    for who, pairs in grants.items():
        TOKENS[who] = TREE.job(
            DB_URL,
            "token",
            _env=lake,
            username=f"load_{who}",
            grants=[{"resource": r, "privilege": p} for r, p in pairs],
        )["token"]


# -- the stack ------------------------------------------------------------------------


def commands(workers: int) -> dict[str, list[str]]:
    return {
        "worker": [str(TREE.bin / "celery"), "-A", "datalake", "--quiet", "worker", "-c", "2",
                   "-n", f"loadbench{int(time.time())}@%h"],
        # the audit chain's sealing rounds (beat's `audit.seal` every AUDIT_SEAL_SECONDS),
        # on their queue's own worker as docker-compose.yml and scripts/run_local.py run it
        "audit": [str(TREE.bin / "celery"), "-A", "datalake", "--quiet", "worker", "-Q", "audit",
                  "-c", "1", "-n", f"loadbenchaudit{int(time.time())}@%h"],
        "consumer": [str(TREE.python), "manage.py", "run_pipeline"],
        # beat: the schedule of the product (the landing scan, the recovery of ingestion
        # runs whose worker died, stale reports), as scripts/run_local.py runs it.
        "beat": [str(TREE.bin / "celery"), "-A", "datalake", "--quiet", "beat",
                 "--schedule", str(LOGDIR / "celerybeat-schedule")],
    }  # fmt: skip


def start_web(workers: int) -> subprocess.Popen:
    """gunicorn, by the harness (its log in bench/results/, read with the others)."""
    global WEB, BASE
    if WEB is None:
        WEB = Server(TREE, DB_URL, "load_mixed", workers=workers, env=web_env())
        WEB.log_path = LOGDIR / "web.log"
    WEB.start()
    BASE = WEB.base
    STARTED["web"] = WEB.proc
    log(f"web: pid {WEB.proc.pid} on {BASE}")
    return WEB.proc


def web_env() -> dict:
    keep = ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "PYTHONPATH")
    return {k: v for k, v in ENV.items() if k not in keep and os.environ.get(k) != v}


def start(name: str, workers: int = 4) -> subprocess.Popen:
    if name == "web":
        return start_web(workers)
    out = (LOGDIR / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        commands(workers)[name], cwd=TREE.root, env=ENV, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    STARTED[name] = proc
    log(f"{name}: pid {proc.pid}")
    return proc


def start_broker() -> subprocess.Popen:
    from datalake.platform.devbroker import start_broker as start_tansu

    proc = start_tansu(BROKER_PORT, log_path=str(LOGDIR / "broker.log"))
    STARTED["broker"] = proc
    log(f"broker: pid {proc.pid} on 127.0.0.1:{BROKER_PORT}")
    return proc


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":  # field 6: session; not zombies
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def kill_session(sid: int, sig=signal.SIGKILL) -> list[int]:
    pids = session_pids(sid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def stop(name: str) -> None:
    if name == "web":
        if WEB is not None:
            WEB.stop()
        return
    proc = STARTED.get(name)
    if proc is None:
        return
    if name == "broker":
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        if not session_pids(proc.pid):
            break
        kill_session(proc.pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and session_pids(proc.pid):
            time.sleep(0.2)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1)


def stop_all() -> None:
    for name in ("web", "consumer", "beat", "worker", "audit", "broker"):
        try:
            stop(name)
        except Exception as exc:
            log(f"stopping {name}: {exc}")


# -- HTTP -----------------------------------------------------------------------------


def call(method: str, path: str, token: str = "", body: dict | None = None, timeout=15):
    """(status or error name, parsed JSON or text snippet, seconds)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Accept": "application/json"})  # fmt: skip
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Token {token}")
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except Exception as exc:
        return f"{type(exc).__name__}", str(exc)[:200], time.perf_counter() - t0
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw[:200].decode(errors="replace")
    return status, parsed, time.perf_counter() - t0


def wait_health(timeout: float) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        status, _, _ = call("GET", "/healthz", timeout=10)
        if status == 200:
            return round(time.monotonic() - t0, 1)
        time.sleep(0.5)
    return None


def check_paths() -> None:
    for name, (who, _w, entries) in GROUPS.items():
        for method, path, body in entries:
            path = path.replace("{TXID}", "TX-00000042")
            payload = json.loads(body.replace("{TXID}", "TX-00000042")) if body else None
            status, parsed, secs = call(method, path, TOKENS.get(who, ""), payload, timeout=60)
            ok = status in (200, 202)
            if isinstance(parsed, dict) and "results" in parsed and "rows/" in path:
                ok = ok and bool(parsed["results"])
            log(f"  {name}: {method} {path[:90]} -> {status} in {secs * 1000:.0f} ms")
            if not ok:
                raise SystemExit(f"{name}: {path} answered {status}: {str(parsed)[:300]}")


def repush_processed(timeout: float) -> float | None:
    """Seconds until a fresh re-push is `processed` (the consumer works), or None."""
    t0 = time.monotonic()
    status, body, _ = call(
        "POST",
        "/api/v1/pipeline/repush/",
        TOKENS["writer"],
        {"resource": "transactions", "transaction_id": "TX-00000007"},
    )
    if status != 202 or body.get("status") != "pushed":
        return None
    while time.monotonic() - t0 < timeout:
        status, detail, _ = call("GET", f"/api/v1/pipeline/repush/{body['id']}/",
                                 TOKENS["writer"])  # fmt: skip
        if status == 200 and detail.get("status") == "processed":
            return round(time.monotonic() - t0, 1)
        time.sleep(0.5)
    return None


def repush_recovery(timeout: float = 60, batch: int = 20) -> dict:
    """After a fault: re-push until one is accepted (`pushed`), then `batch` more, and wait
    until every accepted one is `processed`. Times from the start of this check."""
    t0 = time.monotonic()
    attempts, accepted = [], []
    while time.monotonic() - t0 < timeout and len(accepted) < batch:
        tx = f"TX-{random.randint(1, ROWS[0]):08d}"
        status, body, secs = call(
            "POST",
            "/api/v1/pipeline/repush/",
            TOKENS["writer"],
            {"resource": "transactions", "transaction_id": tx},
        )
        outcome = body.get("status") if isinstance(body, dict) and status == 202 else None
        if not accepted or outcome != "pushed":
            attempts.append(
                {
                    "t": round(time.monotonic() - t0, 1),
                    "status": status,
                    "repush_status": outcome,
                    "ms": round(secs * 1000),
                }
            )
        if outcome == "pushed":
            accepted.append(body["id"])
        else:
            time.sleep(1)
    first_accepted = next((a["t"] for a in attempts if a["repush_status"] == "pushed"), None)
    left = set(accepted)
    while left and time.monotonic() - t0 < timeout + 60:
        for rid in list(left):
            status, detail, _ = call("GET", f"/api/v1/pipeline/repush/{rid}/", TOKENS["writer"])
            if status == 200 and detail.get("status") in ("processed", "failed"):
                left.discard(rid)
        if left:
            time.sleep(1)
    return {
        "first_accepted_s": first_accepted,
        "accepted": len(accepted),
        "not_processed": sorted(left),
        "all_processed_s": None if left else round(time.monotonic() - t0, 1),
        "attempts_until_accepted": attempts[:20],
    }


# -- measurements ---------------------------------------------------------------------


def proc_mem(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(status.split("VmRSS:")[1].split()[0]) if "VmRSS:" in status else 0
        pss = 0
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss = int(rollup.split("\nPss:")[1].split()[0])
        except (OSError, IndexError):
            pass
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        return {"pid": pid, "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1),
                "cmd": cmd.strip()}  # fmt: skip
    except (OSError, IndexError, ValueError):
        return None


def memory() -> dict:
    """RSS/PSS per process of the stack; PostgreSQL as the total of all its processes."""
    out: dict[str, dict] = {}
    for name, proc in STARTED.items():
        pids = [proc.pid] if name == "broker" else sorted(session_pids(proc.pid))
        procs = [m for m in (proc_mem(p) for p in pids) if m]
        if name == "web":
            for m in procs:
                role = "gunicorn_master" if m["pid"] == proc.pid else f"gunicorn_worker_{m['pid']}"
                out[role] = m
            continue
        if name == "worker":
            for m in procs:
                role = (
                    "celery_main"
                    if m["pid"] == proc.pid
                    else ("spark_jvm" if "java" in m["cmd"] else f"celery_child_{m['pid']}")
                )
                out[role] = m
            continue
        out[name] = {"pids": len(procs), "rss_mb": round(sum(m["rss_mb"] for m in procs), 1),
                     "pss_mb": round(sum(m["pss_mb"] for m in procs), 1)}  # fmt: skip
    pg = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    m = proc_mem(int(entry.name))
                    if m:
                        pg.append(m)
            except OSError:
                continue
    out["postgres_total"] = {"pids": len(pg), "rss_mb": round(sum(m["rss_mb"] for m in pg), 1),
                             "pss_mb": round(sum(m["pss_mb"] for m in pg), 1)}  # fmt: skip
    return out


def counts() -> dict:
    """The data, read straight from PostgreSQL (a new connection each time)."""
    for _attempt in range(60):
        try:
            with psycopg.connect(DB_URL, connect_timeout=5) as conn:
                q = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
                total, current = q("SELECT count(*), count(*) FILTER (WHERE valid_to IS NULL) "
                                   "FROM transactions")[0]  # fmt: skip
                return {
                    "transactions_rows": total,
                    "transactions_current": current,
                    "transactions_version": q("SELECT current_version FROM datalake_resource "
                                              "WHERE name='transactions'")[0][0],
                    # The API's words (a re-push is a run: running/succeeded in the table).
                    "repush_by_status": dict(q(
                        "SELECT CASE WHEN status IN ('queued', 'running') THEN 'pushed' "
                        "WHEN status = 'succeeded' THEN 'processed' ELSE status END, count(*) "
                        "FROM ingestion_repushrequest GROUP BY 1")),
                    "ingestion_runs": [
                        {"id": r[0], "status": r[1], "rows_loaded": r[2], "path": r[3]}
                        for r in q("SELECT id, status, rows_loaded, path FROM "
                                   "ingestion_ingestionrun ORDER BY id")
                    ],
                    "pipeline_offsets": {f"{t}:{p}": o for t, p, o in q(
                        "SELECT topic, partition, next_offset FROM ingestion_pipelineoffset")},
                }  # fmt: skip
        except psycopg.OperationalError:
            time.sleep(1)
    raise RuntimeError("PostgreSQL did not answer for 60 s")


def table_names() -> None:
    """Fail early if a table name used by counts() is not the product's."""
    counts()


class Prober(threading.Thread):
    """One request of each kind every `every` s, each timed and kept with its status."""

    KINDS = {
        "healthz": ("GET", "/healthz", "", None),
        "rows": ("GET", f"{T}?country=FR&amount__gt=100&fields={FIELDS}", "reader", None),
        "metrics": ("GET", f"{M}top-products/?x=10&since=2026-01-01&until=2026-01-31",
                    "reader", None),
        "search": ("GET", f"/api/v1/search/?q=Germany&since={SINCE}", "reader", None),
        "repush": ("POST", "/api/v1/pipeline/repush/", "writer", "repush"),
    }  # fmt: skip

    def __init__(self, t0: float, every: float = 0.5):
        super().__init__(daemon=True)
        self.t0, self.every, self.samples = t0, every, []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for kind, (method, path, who, body) in self.KINDS.items():
                payload = None
                if body == "repush":
                    payload = {
                        "resource": "transactions",
                        "transaction_id": f"TX-{random.randint(1, ROWS[0]):08d}",
                    }
                at = time.monotonic() - self.t0
                status, parsed, secs = call(method, path, TOKENS.get(who, ""), payload, 20)
                sample = {"t": round(at, 2), "kind": kind, "status": status,
                          "ms": round(secs * 1000, 1)}  # fmt: skip
                if isinstance(parsed, dict):
                    if kind == "healthz" and status != 200:
                        sample["failing"] = parsed.get("failing")
                    elif kind == "repush" and status == 202:
                        sample["repush_status"] = parsed.get("status")
                        sample["repush_id"] = parsed.get("id")
                    elif status != 200:
                        sample["code"] = parsed.get("code")
                        sample["detail"] = str(parsed.get("detail"))[:120]
                elif status != 200:
                    sample["body"] = str(parsed)[:120]
                self.samples.append(sample)
            self.stopping.wait(self.every)

    def stop(self) -> list[dict]:
        self.stopping.set()
        self.join(30)
        return self.samples


ROWS = [1_000_000]


def outage_summary(samples: list[dict]) -> dict:
    """Per kind: the statuses seen, first and last failure, seconds of failure."""
    out = {}
    for kind in Prober.KINDS:
        mine = [s for s in samples if s["kind"] == kind]
        bad = [
            s
            for s in mine
            if not (s["status"] in (200, 202) and s.get("repush_status", "pushed") == "pushed")
        ]
        seen: dict[str, int] = {}
        for s in mine:
            key = str(s["status"]) + (f" {s['repush_status']}" if "repush_status" in s else "")
            key += f" {s['code']}" if s.get("code") else ""
            key += f" failing={','.join(s['failing'])}" if s.get("failing") else ""
            seen[key] = seen.get(key, 0) + 1
        out[kind] = {
            "probes": len(mine),
            "failed": len(bad),
            "outcomes": seen,
            "first_failure_t": bad[0]["t"] if bad else None,
            "last_failure_t": bad[-1]["t"] if bad else None,
            "failure_window_s": round(bad[-1]["t"] - bad[0]["t"], 1) if bad else 0,
            "max_ms": max((s["ms"] for s in mine), default=0),
            "examples": [s for s in bad[:3]] + ([bad[-1]] if len(bad) > 3 else []),
        }
    return out


def log_errors(path: Path, offset: int) -> dict:
    """ERROR lines (JSON logs) written to `path` after `offset`: count, messages, exceptions."""
    lines = path.read_bytes()[offset:].decode(errors="replace").splitlines()
    errors, tracebacks, kinds = 0, 0, {}
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                tracebacks += 1
            continue
        if rec.get("level") in ("ERROR", "CRITICAL"):
            errors += 1
            exc = rec.get("exception") or ""
            if exc:
                tracebacks += 1
            last = exc.strip().splitlines()[-1][:160] if exc else ""
            key = f"{rec.get('message', '')[:100]} | {last}"
            kinds[key] = kinds.get(key, 0) + 1
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:8]
    return {"error_lines": errors, "tracebacks": tracebacks, "kinds": dict(top)}


def log_offsets() -> dict[str, int]:
    return {p.name: p.stat().st_size for p in LOGDIR.glob("*.log")}


def all_log_errors(offsets: dict[str, int]) -> dict:
    return {p.name: log_errors(p, offsets.get(p.name, 0)) for p in LOGDIR.glob("*.log")}


# -- wrk ------------------------------------------------------------------------------


def split_clients(clients: int) -> dict[str, int]:
    total = sum(w for _, w, _ in GROUPS.values())
    share = {n: max(1, round(clients * w / total)) for n, (_, w, _) in GROUPS.items()}
    while sum(share.values()) > clients and max(share.values()) > 1:
        share[max(share, key=share.get)] -= 1
    while sum(share.values()) < clients:
        share[max(share, key=share.get)] += 1
    return share


def start_wrk(seconds: int, clients: int, rows: int) -> dict[str, subprocess.Popen]:
    procs = {}
    for name, conns in split_clients(clients).items():
        who, _w, entries = GROUPS[name]
        spec = LOGDIR / f"spec-{name}.tsv"
        spec.write_text("".join(f"{m}\t{p}\t{b}\n" for m, p, b in entries))
        env = {**os.environ, "LOAD_TOKEN": TOKENS.get(who, ""), "LOAD_SPEC": str(spec),
               "LOAD_ROWS": str(rows)}  # fmt: skip
        threads = 2 if conns >= 4 else 1
        procs[name] = subprocess.Popen(
            ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--timeout", "30s",
             "-s", str(LUA), BASE],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    return procs


def collect_wrk(procs: dict[str, subprocess.Popen], seconds: int, t0_epoch: float) -> dict:
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=seconds + 120)
        line = next((x for x in out.splitlines() if x.startswith("BENCH_RESULT ")), None)
        if line is None:
            results[name] = {"error": f"wrk printed no result: {err.strip()[:300]}"}
            continue
        r = json.loads(line.removeprefix("BENCH_RESULT "))
        non2xx = sum(v for k, v in r["statuses"].items() if not 200 <= int(k) < 300)
        sock = sum(r["socket_errors"].values())
        timeline: dict[int, dict[str, int]] = {}
        for key, n in r.pop("bins").items():
            sec, status = key.split(":")
            rel = int(sec) - int(t0_epoch)
            timeline.setdefault(rel, {})[status] = timeline.get(rel, {}).get(status, 0) + n
        r["timeline"] = {str(k): timeline[k] for k in sorted(timeline)}
        r["non_2xx"] = non2xx
        r["errors"] = non2xx + sock
        r["rps"] = round(r["requests"] / (r["duration_us"] / 1e6), 1)
        r["connections"] = int(proc.args[proc.args.index("-c") + 1])
        results[name] = r
    return results


def failure_seconds(result: dict) -> list[int]:
    """The seconds (from the phase's start) in which a group got a non-2xx answer."""
    return [int(s) for s, st in result.get("timeline", {}).items()
            if any(not 200 <= int(k) < 300 for k in st)]  # fmt: skip


# -- phases ---------------------------------------------------------------------------


class MemSampler(threading.Thread):
    def __init__(self, t0: float, every: float = 30):
        super().__init__(daemon=True)
        self.t0, self.every, self.samples = t0, every, []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.samples.append({"t": round(time.monotonic() - self.t0), "memory": memory()})

    def stop(self) -> list[dict]:
        self.stopping.set()
        self.join(10)
        return self.samples


def wait_backlog(timeout: float = 180) -> dict:
    """Wait until no re-push is left `pushed`. A re-push whose message a fault swallowed
    (the dev broker restarts empty) is sent again by beat REPUSH_RESEND_AFTER_S (120 s)
    after it was sent: the wait covers that, so what is left is lost."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pushed = counts()["repush_by_status"].get("pushed", 0)
        if pushed == 0:
            return {"pushed_left": 0, "waited_s": round(time.monotonic() - t0, 1)}
        time.sleep(0.5)
    return {"pushed_left": pushed, "waited_s": round(time.monotonic() - t0, 1)}


def load_phase(seconds: int, clients: int, rows: int) -> dict:
    log(f"load: {clients} clients for {seconds} s")
    before = counts()
    mem_start = memory()
    offsets = log_offsets()
    t0, t0_epoch = time.monotonic(), time.time()
    sampler = MemSampler(t0)
    sampler.start()
    procs = start_wrk(seconds, clients, rows)
    results = collect_wrk(procs, seconds, t0_epoch)
    samples = sampler.stop()
    mem_end = memory()
    backlog = wait_backlog()
    after = counts()
    return {
        "duration_s": seconds,
        "clients": clients,
        "groups": results,
        "memory_start": mem_start,
        "memory_end": mem_end,
        "memory_samples": samples,
        "counts_before": before,
        "counts_after": after,
        "backlog_after": backlog,
        "log_errors": all_log_errors(offsets),
    }


def alive() -> dict[str, bool]:
    return {name: proc.poll() is None for name, proc in STARTED.items()}


def recover(phase: dict, workers: int) -> None:
    """Recovery after a fault, by itself first; a dead process is restarted by this script
    (as compose's `restart: unless-stopped` would) and reported."""
    t0 = time.monotonic()
    phase["alive_after"] = alive()
    phase["health_200_after_s"] = wait_health(120)
    phase["restarted_by_harness"] = []
    for name, ok in phase["alive_after"].items():
        if not ok:
            code = STARTED[name].returncode
            log(f"  {name} died (exit {code}); restarting it")
            phase["restarted_by_harness"].append({"process": name, "exit_code": code})
            if name == "broker":
                start_broker()
            else:
                start(name, workers)
    if phase["restarted_by_harness"]:
        phase["health_200_after_restart_s"] = wait_health(120)
    phase["repush_after_fault"] = repush_recovery()
    log(f"  re-push after the fault: {phase['repush_after_fault']}")
    if phase.get("after"):
        phase["injection"].update(phase.pop("after")())
    phase["backlog"] = wait_backlog()
    phase["recovery_checked_s"] = round(time.monotonic() - t0, 1)


def fault_phase(name: str, inject, seconds: int, clients: int, rows: int, workers: int) -> dict:
    log(f"fault {name}: load for {seconds} s, injected at {INJECT_AT} s")
    phase: dict = {"fault": name, "load_s": seconds}
    phase["counts_before"] = counts()
    offsets = log_offsets()
    t0, t0_epoch = time.monotonic(), time.time()
    prober = Prober(t0)
    prober.start()
    procs = start_wrk(seconds, clients, rows)
    time.sleep(INJECT_AT)
    phase["injected_at_s"] = round(time.monotonic() - t0, 1)
    phase["injection"] = inject()
    phase["injection_done_at_s"] = round(time.monotonic() - t0, 1)
    log(f"  injected: {phase['injection']}")
    if callable(phase["injection"].get("after")):
        phase["after"] = phase["injection"].pop("after")
    results = collect_wrk(procs, seconds, t0_epoch)
    samples = prober.stop()
    phase["wrk"] = {
        g: {k: r.get(k) for k in ("requests", "errors", "non_2xx", "statuses", "socket_errors",
                                  "p50_ms", "p99_ms", "max_ms", "samples", "error")}
        | {"failure_seconds": failure_seconds(r)}
        for g, r in results.items()
    }  # fmt: skip
    phase["probes"] = outage_summary(samples)
    phase["load_ended_at_s"] = round(time.monotonic() - t0, 1)
    phase["probe_samples"] = samples
    phase["accepted_repushes"] = sum(
        r.get("statuses", {}).get("202", 0) for g, r in results.items() if g == "repush"
    ) + sum(1 for s in samples if s.get("repush_status") == "pushed")
    recover(phase, workers)
    phase["log_errors"] = all_log_errors(offsets)
    phase["counts_after"] = counts()
    return phase


def inject_postgres() -> dict:
    t0 = time.monotonic()
    stop_cmd = subprocess.run([*PG_RESTART, "stop", "-m", "fast"], capture_output=True, text=True)
    stopped = time.monotonic() - t0
    time.sleep(DOWN_S)
    start_cmd = subprocess.run([*PG_RESTART, "start"], capture_output=True, text=True)
    return {"how": f"pg_ctlcluster 15 main stop -m fast; sleep {DOWN_S}; start",
            "stop_rc": stop_cmd.returncode, "start_rc": start_cmd.returncode,
            "stop_took_s": round(stopped, 1), "down_s": round(time.monotonic() - t0, 1),
            "stderr": (stop_cmd.stderr + start_cmd.stderr).strip()[:300]}  # fmt: skip


def inject_redis() -> dict:
    t0 = time.monotonic()
    sd = subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, text=True)
    time.sleep(DOWN_S)
    st = subprocess.run(REDIS_START, capture_output=True, text=True)
    for _ in range(50):
        if (
            subprocess.run(["redis-cli", "ping"], capture_output=True, text=True).stdout.strip()
            == "PONG"
        ):
            break
        time.sleep(0.1)
    return {"how": f"redis-cli shutdown nosave; sleep {DOWN_S}; redis-server ... --save ''",
            "shutdown_rc": sd.returncode, "start_rc": st.returncode,
            "down_s": round(time.monotonic() - t0, 1)}  # fmt: skip


def inject_broker() -> dict:
    t0 = time.monotonic()
    stop("broker")
    time.sleep(DOWN_S)
    start_broker()
    return {"how": f"Tansu (memory storage) terminated; sleep {DOWN_S}; started again, same port",
            "down_s": round(time.monotonic() - t0, 1)}  # fmt: skip


FAULT_FILES = [0]


def land_file(lines: int) -> str:
    """A transactions file of `lines` valid EUR records with ids TX-F<n>-<i>."""
    FAULT_FILES[0] += 1
    n = FAULT_FILES[0]
    rel = f"landing/transactions/2026-02-{10 + n:02d}.jsonl"
    rnd = random.Random(n)
    countries = ["FR", "DE", "GB", "ES", "IT", "NL"]
    with (LAKE / rel).open("w") as out:
        for i in range(lines):
            out.write(json.dumps({
                "transaction_id": f"TX-F{n}-{i:07d}",
                "user_id": f"U{rnd.randrange(200_000):06d}",
                "timestamp": f"2026-02-{10 + n:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z",
                "transaction_type": "online",
                "payment_method": "card",
                "country": countries[i % len(countries)],
                "product_id": f"P{rnd.randrange(5000):05d}",
                "product_category": "books",
                "quantity": 1 + i % 3,
                "amount": round(1 + rnd.random() * 300, 2),
                "currency": "EUR",
                "status": "completed",
                "customer_rating": None,
            }) + "\n")  # fmt: skip
    return rel


def run_status(run_id: int) -> dict:
    status, body, _ = call("GET", f"/api/v1/ingestion/runs/{run_id}/", TOKENS["writer"])
    return body if status == 200 and isinstance(body, dict) else {"status": f"http {status}"}


def spark_pids() -> list[int]:
    proc = STARTED["worker"]
    out = []
    for pid in session_pids(proc.pid):
        m = proc_mem(pid)
        if m and "java" in m["cmd"]:
            out.append(pid)
    return out


def start_ingestion_and_wait_for_spark(lines: int, info: dict) -> int | None:
    rel = land_file(lines)
    status, body, _ = call("POST", "/api/v1/ingestion/runs/", TOKENS["writer"],
                           {"source": "transactions", "path": rel})  # fmt: skip
    info.update({"file": rel, "lines": lines, "post_status": status, "run": body})
    if status != 202:
        return None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if spark_pids() and run_status(body["id"]).get("status") == "running":
            time.sleep(8)  # well into the Spark job
            info["status_at_kill"] = run_status(body["id"]).get("status")
            return body["id"]
        time.sleep(0.5)
    info["note"] = "spark-submit never started within 120 s"
    return body["id"]


def redis_unacked() -> dict:
    def rc(*args):
        done = subprocess.run(
            ["redis-cli", "-n", REDIS_DBS[0], *args], capture_output=True, text=True
        )
        return done.stdout.strip()

    return {"unacked": rc("HLEN", "unacked"), "unacked_index": rc("ZCARD", "unacked_index"),
            "queue_celery": rc("LLEN", "celery")}  # fmt: skip


def make_inject_worker(whole: bool, lines: int, workers: int, wait_run: float):
    def inject() -> dict:
        info: dict = {
            "how": "kill -9 of the whole Celery worker (main process, pool children, "
            "Spark JVM), then a new worker"
            if whole
            else "kill -9 of the pool child running the ingestion (and its JVM)"
        }
        run_id = start_ingestion_and_wait_for_spark(lines, info)
        if run_id is None:
            return info
        info["run_id"] = run_id
        proc = STARTED["worker"]
        if whole:
            info["killed"] = kill_session(proc.pid)
            proc.wait(10)
            time.sleep(1)
            start("worker", workers)
        else:
            java = spark_pids()
            child = None
            if java:
                pid = java[0]
                while pid and pid != proc.pid:  # walk up to the direct child of the main
                    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                    if ppid == proc.pid:
                        child = pid
                        break
                    pid = ppid
            info["killed"] = [child] if child else []
            if child:
                os.kill(child, signal.SIGKILL)
        killed_at = time.monotonic()
        info["killed_at_status"] = run_status(run_id).get("status")
        info["redis_after_kill"] = redis_unacked()

        def after() -> dict:
            """Run in the recovery step: wait for the run (the load goes on meanwhile)."""
            final = None
            while time.monotonic() - killed_at < wait_run:
                r = run_status(run_id)
                if r.get("status") in ("succeeded", "failed", "skipped"):
                    final = r
                    break
                time.sleep(1)
            return {
                "run_final": final or run_status(run_id),
                "run_finished_after_kill_s": round(time.monotonic() - killed_at, 1)
                if final
                else None,
                "waited_for_run_s": round(time.monotonic() - killed_at, 1),
                "redis_at_end": redis_unacked(),
            }

        info["after"] = after
        return info

    return inject


OTHERS = r"bench/(run\.py|legacy/|rows|metrics|ingest|pipeline|search|invoice)"


def others_running() -> str:
    done = subprocess.run(["pgrep", "-af", OTHERS], capture_output=True, text=True)
    mine = {str(os.getpid()), str(os.getppid())}
    return "\n".join(x for x in done.stdout.splitlines() if x.split(" ", 1)[0] not in mine)


def wait_exclusive(deadline: float) -> tuple[bool, str, float]:
    """Restarting PostgreSQL or Redis breaks any other benchmark that uses them: wait until
    none runs (polling every 30 s) or the deadline passes. (free, who else, seconds waited)"""
    t0 = time.monotonic()
    while True:
        busy = others_running()
        if not busy:
            return True, "", round(time.monotonic() - t0)
        if time.time() >= deadline:
            return False, busy, round(time.monotonic() - t0)
        log(f"  other benchmarks are running, waiting: {busy.splitlines()[0][:100]}")
        time.sleep(30)
