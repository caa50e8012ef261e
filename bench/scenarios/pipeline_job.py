"""The measuring side of the `pipeline` benchmark (bench/scenarios/pipeline.py), run in
the interpreter of the tree measured, with Django set up on its database:

    python bench/scenarios/pipeline_job.py '<json options>'    (cwd: the tree's root;
        DATABASE_URL set by the harness, which created and migrated the database)

A local Tansu broker (`datalake.platform.devbroker.start_broker`) on a free port and a
fresh topic per run; the broker auto-creates the topic with several partitions, all read.

1. The limit, same run: N valid transaction messages (DATA.md fields, unique ids, EUR)
   produced as fast as confluent_kafka can (linger, big batches), timed; then read back
   by a bare consumer that assign()s every partition and does nothing else, timed.
2. The real thing: `python manage.py run_pipeline --batch-size B` (the production
   command) as a subprocess with a fresh consumer group, on the N messages already in
   the topic; with `--consumers 1,2,...`, again with that many of them in one group.
   Timed from the subprocess start (start-up and group join included, and reported
   apart: the join from the command's "pipeline: assigned" log line, of the last
   consumer to get partitions) until the merged offsets cover the topic; then
   `transactions` is checked to hold N current rows. The pipeline's tables are emptied
   before every measured drain.
3. Re-push latency, with that consumer still running: K x
   `ingestion.stream.repush.repush_one` for random stored ids, one at a time (a random
   0-0.5 s pause between them), request -> `processed` seen by polling
   `RepushRequest.status` every 20 ms.
4. Optional experiments, without changing app code: the same consumer restarted with
   `--poll <s>` (re-push latency only), and a drain profiled from outside with
   `py-spy record --idle` (reported apart, since the sampler costs a little CPU).
5. The table's own limit (unless --no-table-limit): the same N rows COPYed, one batch a
   transaction, into an empty copy of `transactions` with its indexes; with several
   consumer counts, again in as many COPY streams at once as the most consumers.

Prints one `PIPELINE_RESULT <json>` line; targets, tables and the machine's facts are
the harness's (bench/scenarios/pipeline.py).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import psycopg

from bench.harness.drivers import machine_jiffies as machine_busy
from bench.harness.report import fmt
from bench.harness.server import RESULTS, free_port

ROOT = Path.cwd()  # the tree measured (the harness runs this file from its root)
DATABASE_URL = os.environ.get("DATABASE_URL", "")  # the benchmark database, set by the harness
DSN = DATABASE_URL
DB_NAME = DATABASE_URL.rsplit("/", 1)[-1]
# py-spy is not a project dependency: $PY_SPY, else on PATH, else beside this Python.
PY_SPY = (
    os.environ.get("PY_SPY")
    or shutil.which("py-spy")
    or str(Path(sys.executable).parent / "py-spy")
)
TRUNCATE = [
    "transactions",
    "lineage_version",
    "ingestion_pipelineoffset",
    "ingestion_pipelinereject",
    "ingestion_repushrequest",
    "ingestion_repushjob",
    # derived from `transactions` by the followers (metrics.aggregates, search index)
    "metrics_product_day",
    "metrics_user_type_day",
    "metrics_product_total",
    "metrics_user_type_total",
    "metrics_minute",
    "metrics_day_changes",
    "search_entries",
    "search_lines",
    "lake_follower_position",  # the followers start from 0 with the table
]
COUNTRIES = ["FR"] * 16 + ["DE"] * 15 + ["ES"] * 9 + ["IT"] * 9 + ["NL"] * 6 + ["BE"] * 4
COUNTRIES += ["PT"] * 3 + ["GB"] * 8 + ["US"] * 10 + ["CH", "PL", "SE", "DK", "JP", "CA"]
TYPES = ["online"] * 5 + ["in_store"] * 3 + ["mobile"] * 3 + ["subscription"]
PAYMENTS = ["card"] * 10 + ["paypal"] * 4 + ["bank_transfer"] * 2 + ["cash"] * 2 + ["voucher"]
STATUSES = ["completed"] * 85 + ["pending"] * 5 + ["failed"] * 4 + ["refunded"] * 4 + ["cancelled"]
CATEGORIES = ["electronics", "books", "clothing", "home", "garden", "toys", "sports", "beauty"]

# --------------------------------------------------------------------------- helpers


def now() -> float:
    return time.perf_counter()


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def sh(command: str) -> str:
    try:
        return subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except Exception as exc:  # a description, never fatal
        return f"? ({exc})"


def busy_processes() -> list[str]:
    """The top CPU users right now (the machine is shared: say who else was busy)."""
    out = sh("ps -eo pcpu,pid,args --sort=-pcpu | head -8")
    return [line[:160] for line in out.splitlines()[1:]]


def sql(statements, dsn: str = DSN) -> list:
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in [statements] if isinstance(statements, str) else statements:
            cur = conn.execute(statement)
            out.append(cur.fetchall() if cur.description else None)
    return out


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process (children not included), in seconds."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --------------------------------------------------------------------------- set-up


def configure_env(bootstrap: str, topic: str) -> dict:
    """The environment of this process (before django.setup()) and of the subprocesses."""
    env = {
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "datalake.settings",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-not-a-secret",
        "LAKE_MASKING_KEY": "bench-only-masking-key-not-a-secret-0123456789",
        "AUDIT_SIGNING_KEY": "bench-only-audit-signing-key-not-a-secret-0123456789",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PIPELINE_TOPIC": topic,
        "PIPELINE_DLQ_TOPIC": f"{topic}.dlq",
        "PIPELINE_GROUP": f"bench-{topic}",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    return dict(os.environ)


def reset_state() -> None:
    """Empty the pipeline's tables (no leftover versions, offsets, aggregates)."""
    sql(
        [
            f"TRUNCATE {', '.join(TRUNCATE)} CASCADE",
            "UPDATE datalake_resource SET current_version = 0",
            "VACUUM ANALYZE transactions",
            "CHECKPOINT",
        ]
    )


# --------------------------------------------------------------------------- messages


def make_messages(n: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """N valid transactions as JSON (DATA.md fields, unique ids, EUR), and their keys."""
    rnd = random.Random(seed)
    tag = uuid.UUID(int=rnd.getrandbits(128)).hex[:8]
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    span = 21 * 86_400_000_000
    values, keys = [], []
    for i in range(n):
        tx_id = f"PB-{tag}-{i:08d}"
        stamp = start + dt.timedelta(microseconds=rnd.randrange(span))
        product = rnd.randrange(20_000)
        quantity = min(1 + int(rnd.expovariate(0.9)), 20)
        amount = round((1.5 + (product * 7919 % 4000) / 20.0) * quantity, 2)
        obj = {
            "transaction_id": tx_id,
            "user_id": f"u{rnd.randrange(250_000):07d}",
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "transaction_type": rnd.choice(TYPES),
            "payment_method": rnd.choice(PAYMENTS),
            "country": rnd.choice(COUNTRIES),
            "product_id": f"p{product:06d}",
            "product_category": CATEGORIES[product % len(CATEGORIES)],
            "quantity": quantity,
            "amount": amount,
            "currency": "EUR",
            "status": rnd.choice(STATUSES),
            "customer_rating": None if rnd.random() < 0.6 else rnd.randint(1, 5),
        }
        values.append(orjson.dumps(obj))
        keys.append(tx_id.encode())
    return values, keys


# --------------------------------------------------------------------------- the table's limit

COPY_COLUMNS = [
    "transaction_id", "user_id", "timestamp", "transaction_type", "payment_method", "country",
    "product_id", "product_category", "quantity", "amount", "currency", "amount_eur", "status",
    "customer_rating", "valid_from",
]  # fmt: skip


def _copy_share(rows: list, batch: int, stream: int, streams: int, ready) -> None:
    """One stream of the table's limit: every `streams`-th batch, from `stream` on."""
    columns = ", ".join(f'"{c}"' for c in COPY_COLUMNS)
    with psycopg.connect(DSN) as conn:
        ready.wait()  # every stream connected, and the clock started
        for first in range(stream * batch, len(rows), streams * batch):
            with conn.cursor().copy(f"COPY bench_table_limit ({columns}) FROM STDIN") as copy:
                for row in rows[first : first + batch]:
                    copy.write_row(row)
            conn.commit()


def bench_table_limit(n: int, seed: int, batch: int, streams: int = 1) -> dict:
    """The database's own limit for these rows, same run: the same N transactions (the
    messages' fields, amount_eur = amount as they are EUR) COPYed B rows a transaction, as
    the consumer's batches, into an empty copy of `transactions` (`LIKE ... INCLUDING
    ALL`: the same 16 indexes) growing to N rows as `transactions` does during a drain.
    No versioning, search entries, aggregates or offsets: a lower bound of what a merge
    of those rows writes. With `streams` > 1, that many processes COPY at once (as that
    many consumers would merge). Timed on the COPYs and commits only."""
    import multiprocessing

    values, _ = make_messages(n, seed)
    rows = []
    for value in values:
        o = orjson.loads(value)
        rows.append([o[c] for c in COPY_COLUMNS[:11]] + [o["amount"], o["status"],
                    o["customer_rating"], 1])  # fmt: skip
    del values
    sql(
        [
            "DROP TABLE IF EXISTS bench_table_limit",
            "CREATE TABLE bench_table_limit (LIKE transactions INCLUDING ALL)",
            "CHECKPOINT",
        ]
    )
    fork = multiprocessing.get_context("fork")  # the rows are shared, not pickled
    ready = fork.Barrier(streams + 1)
    workers = [
        fork.Process(target=_copy_share, args=(rows, batch, k, streams, ready))
        for k in range(streams)
    ]
    for worker in workers:
        worker.start()
    ready.wait()
    t0 = now()
    for worker in workers:
        worker.join()
    seconds = now() - t0
    if any(worker.exitcode for worker in workers):
        raise RuntimeError("a COPY stream of the table's limit failed")
    count = sql(["SELECT count(*) FROM bench_table_limit"])[0][0][0]
    sql(["DROP TABLE bench_table_limit"])
    return {"rows": count, "batch": batch, "streams": streams, "seconds": round(seconds, 1),
            "rate": round(count / seconds)}  # fmt: skip


# --------------------------------------------------------------------------- the limit


def bench_produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]) -> dict:
    from confluent_kafka import KafkaException, Producer

    errors: list = []

    def on_delivery(error, _message):
        if error is not None:
            errors.append(str(error))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "batch.num.messages": 100_000,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "message.max.bytes": 10_000_000,
            "delivery.report.only.error": True,
            "message.timeout.ms": 300_000,
        }
    )
    # The topic's creation (by the broker, on first metadata request) is not timed.
    producer.produce(topic, value=values[0], key=keys[0], on_delivery=on_delivery)
    if producer.flush(30):
        raise RuntimeError("the broker did not take the first message")
    t0 = now()
    for value, key in zip(values[1:], keys[1:], strict=True):
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:  # pragma: no cover - reported, not retried
                errors.append(str(exc))
                break
    left = producer.flush(300)
    seconds = now() - t0
    if left or errors:
        raise RuntimeError(f"produce failed: {left} undelivered, errors {errors[:3]}")
    n = len(values) - 1
    return {
        "messages": n,
        "seconds": round(seconds, 3),
        "rate": round(n / seconds),
        "bytes": sum(len(v) for v in values),
        "config": "linger.ms=50, batch.size=1 MB, acks=all (default), no compression",
    }


def bench_consume(bootstrap: str, topic: str, expected: int) -> dict:
    """Every partition read directly (assign(), no group, no processing), timed."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    counts: dict[int, int] = collections.Counter()
    last: dict[int, int] = {}
    n, t0 = 0, now()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    deadline = t0 + 600
    while n < expected and now() < deadline:
        want = min(10_000, expected - n)  # asking for more would wait out the timeout
        for message in consumer.consume(num_messages=want, timeout=1.0):
            if message.error() is None:
                n += 1
                counts[message.partition()] += 1
                last[message.partition()] = message.offset()
    seconds = now() - t0
    consumer.close()
    if n != expected:
        raise RuntimeError(f"bare consumer read {n} of {expected} messages")
    return {
        "messages": n,
        "seconds": round(seconds, 3),
        "rate": round(n / seconds),
        "partitions": len(partitions),
        "per_partition": {str(p): counts[p] for p in partitions},
        "next_offsets": {str(p): last.get(p, -1) + 1 for p in partitions},
    }


# --------------------------------------------------------------------------- the pipeline


class Pipeline:
    """`manage.py run_pipeline` as a subprocess, its output lines timestamped."""

    def __init__(self, env: dict, group: str, batch_size: int, poll: float, log: Path):
        self.env = {**env, "PIPELINE_GROUP": group}
        self.command = [
            sys.executable,
            str(ROOT / "manage.py"),
            "run_pipeline",
            "--batch-size",
            str(batch_size),
            "--poll",
            str(poll),
        ]
        self.log = log
        self.lines: list[tuple[float, str]] = []
        self.process: subprocess.Popen | None = None
        self.t_start = 0.0

    def start(self) -> None:
        self.t_start = now()
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"--- {' '.join(self.command[1:])}\n")
            for raw in self.process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append((now(), line))
                log.write(f"{now() - self.t_start:9.3f} {line[:2000]}\n")
                log.flush()

    def first(self, text: str, after: float = 0.0) -> float | None:
        for t, line in list(self.lines):
            if text in line and t >= after:
                return t
        return None

    def assigned_at(self) -> float | None:
        """The first assignment that gave this consumer at least one partition."""
        for t, line in list(self.lines):
            if "pipeline: assigned [(" in line:
                return t
        return None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> float:
        """SIGTERM (the command's own clean stop), then wait; returns the seconds it took."""
        if not self.alive():
            return 0.0
        t0 = now()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        return round(now() - t0, 3)


class Followers(Pipeline):
    """`manage.py run_followers` as a subprocess (search entries, metrics aggregates)."""

    def __init__(self, env: dict, log: Path):
        super().__init__(env, "-", 0, 0.0, log)
        self.command = [sys.executable, str(ROOT / "manage.py"), "run_followers"]


# The followers' lag, read like `datalake.lake.followers.state` (the bench's own SQL: it
# runs against older trees too, where the table is absent).
FOLLOWER_LAG_SQL = (
    "SELECT p.follower, r.current_version - p.derived_through_version, "
    "coalesce(extract(epoch FROM now() - (SELECT min(v.created_at) FROM lineage_version v "
    "WHERE v.resource_id = r.id AND v.version > p.derived_through_version "
    "AND v.version <= r.current_version)), 0) "
    "FROM lake_follower_position p JOIN datalake_resource r ON r.id = p.resource_id "
    "WHERE r.name = 'transactions'"
)


def follower_lags(conn) -> dict[str, tuple[int, float]]:
    """{follower: (lag in versions, lag in seconds)} on `transactions`."""
    return {name: (int(v), float(s)) for name, v, s in conn.execute(FOLLOWER_LAG_SQL).fetchall()}


def lag_summary(samples: list[tuple[float, dict]], name: str) -> dict:
    versions = [lags[name][0] for _, lags in samples if name in lags]
    seconds = [lags[name][1] for _, lags in samples if name in lags]
    if not versions:
        return {}
    return {
        "samples": len(versions),
        "versions_p50": percentile(versions, 0.5),
        "versions_p99": percentile(versions, 0.99),
        "versions_max": max(versions),
        "seconds_p50": round(percentile(seconds, 0.5), 3),
        "seconds_p99": round(percentile(seconds, 0.99), 3),
        "seconds_max": round(max(seconds), 3),
    }


def merged_offsets(conn, topic: str) -> int:
    row = conn.execute(
        "SELECT coalesce(sum(next_offset), 0) FROM ingestion_pipelineoffset WHERE topic = %s",
        (topic,),
    ).fetchone()
    return int(row[0])


def consumer_backend_pids(conn, exclude: set[int], consumers: int) -> list[int]:
    """The consumers' database backends, once each has one (else [])."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'",
        (DB_NAME,),
    ).fetchall()
    pids = [pid for (pid,) in rows if pid not in exclude]
    return pids if len(pids) == consumers else []


def cpu_sum(pids) -> float | None:
    values = [cpu_seconds(pid) for pid in pids]
    return None if not values or None in values else sum(values)


def table_stats(conn) -> dict:
    row = conn.execute(
        "SELECT seq_scan, seq_tup_read, idx_scan, n_tup_ins, n_tup_upd "
        "FROM pg_stat_user_tables WHERE relname = 'transactions'"
    ).fetchone()
    return dict(
        zip(["seq_scan", "seq_tup_read", "idx_scan", "n_tup_ins", "n_tup_upd"], row, strict=True)
    )


def drain(
    env: dict,
    topic: str,
    batch_size: int,
    target_offsets: int,
    expect_current: int,
    log: Path,
    broker_pid: int,
    exclude_pids: set[int],
    running: list,
    profile: Path | None = None,
    consumers: int = 1,
    followers: bool = True,
    followers_after: bool = False,
) -> tuple[dict, list[Pipeline]]:
    """Run the consumers (one group) on the backlog from a clean database until every
    message is merged.

    Returns the figures and the still-running consumers (the caller re-pushes, then
    stops them).
    """
    reset_state()
    group = f"bench-{topic}-b{batch_size}-c{consumers}-{uuid.uuid4().hex[:6]}"
    pipelines = [Pipeline(env, group, batch_size, 0.5, log) for _ in range(consumers)]
    pipeline = pipelines[0]  # the one profiled, and whose start the times count from
    conn = psycopg.connect(DSN, autocommit=True)
    exclude = set(exclude_pids) | {conn.info.backend_pid}
    stats0 = table_stats(conn)
    busy0 = machine_busy()
    broker0 = cpu_seconds(broker_pid)
    load_before = load1()
    timeline: list[tuple[float, int]] = []
    spy = None
    for each in pipelines:
        each.start()
        running.append(each)
    follower = Followers(env, log) if followers else None
    if follower is not None:  # derives search and metrics from the versions, after the merges
        follower.start()
        running.append(follower)
    lag_samples: list[tuple[float, dict]] = []

    def attach_profiler():
        # From the first merge on: the steady drain, not the start-up and the group join.
        return subprocess.Popen(
            [
                PY_SPY,
                "record",
                "--idle",
                "--nonblocking",
                "--rate",
                "100",
                "--format",
                "raw",
                "--output",
                str(profile),
                "--pid",
                str(pipeline.process.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    pg_pids, pg_cpu0, consumer_cpu0, t_first, mid_ps = [], None, None, None, None
    consumer_pids = []
    deadline = now() + 3600
    merged = 0
    while merged < target_offsets:
        if not all(each.alive() for each in pipelines):
            raise RuntimeError(f"run_pipeline exited early; see {log}")
        if follower is not None and not follower.alive():
            raise RuntimeError(f"run_followers exited early; see {log}")
        if now() > deadline:
            raise RuntimeError(f"the consumer did not finish in an hour; see {log}")
        merged = merged_offsets(conn, topic)
        t = now()
        timeline.append((t, merged))
        if merged and t_first is None:
            t_first = t
            # From the first merge on: the CPU of the consumers and of their backends.
            consumer_pids = [each.process.pid for each in pipelines]
            pg_pids = consumer_backend_pids(conn, exclude, consumers)
            pg_cpu0, consumer_cpu0 = cpu_sum(pg_pids), cpu_sum(consumer_pids)
            first_merged = merged
            if profile is not None:
                spy = attach_profiler()
                running.append(spy)
        if t_first and mid_ps is None and merged >= target_offsets // 2:
            mid_ps = busy_processes()
        if follower is not None and t_first is not None:
            lag_samples.append((t, follower_lags(conn)))
        time.sleep(0.1)
    t_done = timeline[-1][0]
    after_samples: list[tuple[float, dict]] = []
    t_caught_up = None
    while follower is not None:  # until search and metrics hold every version merged
        if not follower.alive():
            raise RuntimeError(f"run_followers exited early; see {log}")
        lags = follower_lags(conn)
        after_samples.append((now(), lags))
        if len(lags) == 2 and all(v == 0 for v, _ in lags.values()):
            t_caught_up = now()
            break
        if now() > deadline:
            raise RuntimeError(f"the followers did not catch up in an hour; see {log}")
        time.sleep(0.1)
    consumer_cpu = cpu_sum(consumer_pids)
    pg_cpu = cpu_sum(pg_pids)
    broker1 = cpu_seconds(broker_pid)
    busy1 = machine_busy()
    alone = None
    if follower is None and followers_after:  # the followers alone: what deriving costs
        alone = Followers(env, log)
        alone.start()
        running.append(alone)
        t_alone = now()
        while True:
            lags = follower_lags(conn)
            if len(lags) == 2 and all(v == 0 for v, _ in lags.values()):
                break
            if not alone.alive():
                raise RuntimeError(f"run_followers exited early; see {log}")
            if now() > deadline:
                raise RuntimeError(f"the followers did not catch up in an hour; see {log}")
            time.sleep(0.1)
        alone_s = now() - t_alone
        alone = {"seconds": round(alone_s, 3), "messages_per_s": round(target_offsets / alone_s)}
        log_line = f"followers alone: derived {target_offsets:,} messages in {alone_s:.1f} s"
        print(log_line, flush=True)
    stats1 = table_stats(conn)
    current = conn.execute("SELECT count(*) FROM transactions WHERE valid_to IS NULL").fetchone()[0]
    versions = conn.execute("SELECT count(*) FROM lineage_version").fetchone()[0]
    rejects = conn.execute("SELECT count(*) FROM ingestion_pipelinereject").fetchone()[0]
    partitions = conn.execute(
        "SELECT partition, next_offset FROM ingestion_pipelineoffset WHERE topic = %s "
        "ORDER BY partition",
        (topic,),
    ).fetchall()
    conn.close()
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(10)
        running.remove(spy)
    if current != expect_current:
        raise RuntimeError(f"{current} current rows, expected {expect_current}; see {log}")

    t0 = pipeline.t_start
    t_ready = pipeline.first("consuming ")
    joined = [each.assigned_at() for each in pipelines]  # every consumer had partitions
    t_join = None if None in joined else max(joined)
    messages = target_offsets
    drain_s = t_done - t_first
    # the steady rate: between 10 % and 90 % of the backlog merged
    lo = next(t for t, m in timeline if m >= 0.1 * messages)
    lo_m = next(m for t, m in timeline if m >= 0.1 * messages)
    hi = next(t for t, m in timeline if m >= 0.9 * messages)
    hi_m = next(m for t, m in timeline if m >= 0.9 * messages)
    busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    result = {
        "batch_size": batch_size,
        "consumers": consumers,
        "group": group,
        "messages": messages,
        "current_rows": current,
        "versions": versions,
        "rejects": rejects,
        "partitions": {str(p): o for p, o in partitions},
        "seconds_total": round(t_done - t0, 3),
        "seconds_startup": round(t_ready - t0, 3) if t_ready else None,
        "seconds_to_assigned": round(t_join - t0, 3) if t_join else None,
        "seconds_to_first_merge": round(t_first - t0, 3),
        "first_merge_messages": first_merged,
        "seconds_draining": round(drain_s, 3),
        "rate_overall": round(messages / (t_done - t0)),
        "rate_excluding_join": round(messages / (t_done - t_join)) if t_join else None,
        "rate_after_first_merge": round((messages - first_merged) / drain_s) if drain_s else None,
        "rate_steady_10_90": round((hi_m - lo_m) / (hi - lo)) if hi > lo else None,
        "cpu_seconds_consumer_python": round(consumer_cpu - consumer_cpu0, 2)
        if consumer_cpu is not None and consumer_cpu0 is not None
        else None,
        "cpu_seconds_postgres_backend": round(pg_cpu - pg_cpu0, 2)
        if pg_cpu is not None and pg_cpu0 is not None
        else None,
        "cpu_seconds_broker_whole_run": round(broker1 - broker0, 2)
        if broker1 is not None and broker0 is not None
        else None,
        "machine_busy_fraction": round(busy, 3),
        "load1_before": load_before,
        "load1_after": load1(),
        "busy_processes_midway": mid_ps or [],
        "transactions_stats_delta": {k: (stats1[k] or 0) - (stats0[k] or 0) for k in stats0},
        "timeline": [
            (round(t - t0, 2), m)
            for i, (t, m) in enumerate(timeline)
            if i % 10 == 0 or i == len(timeline) - 1
        ],
        "profiled": profile is not None,
        "followers": None
        if follower is None
        else {
            name: {
                "during_drain": lag_summary(lag_samples, name),
                "after_drain": lag_summary(after_samples, name),
            }
            for name in ("search", "metrics")
        },
        "followers_caught_up_s_after_drain": round(t_caught_up - t_done, 3)
        if t_caught_up
        else None,
        "followers_caught_up_s_from_first_merge": round(t_caught_up - t_first, 3)
        if t_caught_up
        else None,
        # --no-followers: the followers started after the drain, alone on the machine
        "followers_alone": alone,
    }
    return result, pipelines + ([follower] if follower is not None else [])


# --------------------------------------------------------------------------- re-push


def bench_repush(ids: list[bytes], k: int, seed: int, topic: str) -> dict:
    from ingestion.models import RepushRequest, RunStatus
    from ingestion.stream.repush import repush_one

    rnd = random.Random(seed)
    latencies, pushes, db_latencies, failures = [], [], [], []
    for _ in range(k):
        time.sleep(rnd.uniform(0.0, 0.5))  # do not phase-lock with the consumer's poll
        tx_id = rnd.choice(ids).decode()
        t0 = now()
        request = repush_one(resource="transactions", transaction_id=tx_id)
        t_pushed = now()
        status = request.status
        deadline = t0 + 60
        while status == RunStatus.RUNNING and now() < deadline:
            time.sleep(0.02)
            status = RepushRequest.objects.filter(pk=request.pk).values_list("status", flat=True)[0]
        t_seen = now()
        if status != RunStatus.SUCCEEDED:
            failures.append({"id": request.pk, "status": status})
            continue
        request.refresh_from_db()
        latencies.append(t_seen - t0)
        pushes.append(t_pushed - t0)
        db_latencies.append((request.finished_at - request.created_at).total_seconds())
    return summarise_latencies(latencies, pushes, db_latencies, failures, k, topic)


def summarise_latencies(latencies, pushes, db_latencies, failures, k, topic) -> dict:
    def stats(values):
        if not values:
            return {}
        return {
            "p50": round(percentile(values, 0.5), 3),
            "p90": round(percentile(values, 0.9), 3),
            "max": round(max(values), 3),
            "mean": round(statistics.fmean(values), 3),
        }

    return {
        "repushes": k,
        "processed": len(latencies),
        "failures": failures,
        "request_to_processed_s": stats(latencies),
        "request_to_broker_ack_s": stats(pushes),
        "db_created_to_processed_at_s": stats(db_latencies),
        "samples_s": [round(v, 3) for v in latencies],
        "topic": topic,
    }


def wait_assigned(pipeline: Pipeline, timeout: float = 120) -> float:
    deadline = now() + timeout
    while now() < deadline:
        t = pipeline.assigned_at()
        if t:
            return t
        if not pipeline.alive():
            raise RuntimeError("run_pipeline exited before its group join")
        time.sleep(0.1)
    raise RuntimeError("no partition assignment in time")


# --------------------------------------------------------------------------- profile


def profile_phases(raw_file: Path) -> dict:
    """Wall time per phase from py-spy's collapsed stacks (`--idle`: waiting included).

    A sample is put in the phase of the deepest frame of the app's own code, the line
    of that frame telling e.g. the UPDATE from the INSERT of `merge_versioned`.
    """
    if not raw_file.exists():
        return {}
    markers = {
        ("ingestion/stream/consumer.py", "step"): [
            ("messages = self.consumer.consume", "Kafka consume (fetch + wait)"),
            ("messages = [m for m", "step: other"),
            ("self.consumer.commit", "Kafka offset commit"),
        ],
        ("ingestion/stream/consumer.py", "merge"): [
            ("with transaction.atomic()", "DB commit / lock offsets"),
            ("batch = self.validate", "validate (Python)"),
            ("self._dead_letters", "dead letters"),
            ("if batch.rows:", "record rejects, outcomes, offsets"),
            ("return batch", "DB commit / lock offsets"),
        ],
        ("datalake/lake/merge.py", "merge_transaction_rows"): [
            ("buffer = io.StringIO()", "build COPY text (Python)"),
            ("columns = ", "create temp stage"),
            ("with cursor.copy", "COPY into temp stage"),
            ("result = merge_transactions", "merge: other"),
            ('_execute("DROP TABLE memory_stage")', "drop temp stage"),
        ],
        ("datalake/lake/merge.py", "merge_versioned"): [
            ("res, version = version_lock", "merge: lock resource"),
            ("changed = _execute(", "merge: UPDATE (close changed current rows)"),
            ("inserted = _execute(", "merge: INSERT new versions (indexes)"),
            ("removed = 0", "merge: other"),
            ("current = version_commit(", "merge: version row"),
            ("search_index.index_version", "search index (index_version)"),
            ("AFTER_MERGE[table](version)", "metrics aggregates (apply_version)"),
        ],
    }
    whole = {
        ("ingestion/stream/consumer.py", "validate"): "validate (Python)",
        ("datalake/lake/merge.py", "_copy_value"): "build COPY text (Python)",
        ("ingestion/stream/consumer.py", "_record"): "record rejects, outcomes, offsets",
        ("ingestion/stream/consumer.py", "_dead_letters"): "dead letters",
        ("metrics/aggregates.py", "apply_version"): "metrics aggregates (apply_version)",
        ("datalake/search/index.py", "index_version"): "search index (index_version)",
        ("datalake/lake/versions.py", "version_lock"): "merge: lock resource",
        ("datalake/lake/versions.py", "version_commit"): "merge: version row",
        ("ingestion/stream/consumer.py", "rates"): "validate (Python)",
    }
    line_cache: dict[tuple[str, str], list[tuple[int, str]]] = {}

    def ranges(path: str, func: str) -> list[tuple[int, str]]:
        key = (path, func)
        if key not in line_cache:
            lines = (ROOT / path).read_text().splitlines()
            start = next((i for i, line in enumerate(lines, 1) if f"def {func}(" in line), 1)
            found = []
            for text, phase in markers[key]:
                for i in range(start, len(lines) + 1):
                    if text in lines[i - 1]:
                        found.append((i, phase))
                        break
            line_cache[key] = sorted(found)
        return line_cache[key]

    totals: collections.Counter = collections.Counter()
    for line in raw_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            # "func (path/file.py:123)"
            if " (" not in frame or not frame.endswith(")"):
                continue
            func, _, where = frame.rpartition(" (")
            path, _, lineno = where[:-1].rpartition(":")
            if str(ROOT) in path and ".venv" not in path:
                rel = path.split(str(ROOT) + "/", 1)[-1]
            elif path.startswith(("ingestion/", "metrics/", "lineage/", "datalake/")):
                rel = path
            else:
                continue
            frames.append((rel, func, int(lineno) if lineno.isdigit() else 0))
        phase = "start-up / other"
        for rel, func, lineno in reversed(frames):  # deepest app frame first
            if (rel, func) in whole:
                phase = whole[(rel, func)]
                break
            if (rel, func) in markers:
                found = [p for i, p in ranges(rel, func) if i <= lineno]
                phase = found[-1] if found else f"{func}: other"
                break
        totals[phase] += int(count)
    samples = sum(totals.values())
    return {
        "samples": samples,
        "share": {k: round(v / samples, 4) for k, v in totals.most_common()} if samples else {},
    }


# --------------------------------------------------------------------------- plans


def explain_merge(batch_size: int) -> list[str]:
    """EXPLAIN ANALYZE of the merge's two statements for one more batch of `batch_size` new
    transactions on the full table, built as the app builds them (a fresh temp stage, no
    statistics); rolled back."""
    from datalake.lake.merge import STAGE_COLUMNS, TX_COLUMNS

    names = ["transaction_id", *TX_COLUMNS]
    cols = ", ".join(f'"{c}"' for c in names)
    s_all = ", ".join(f's."{c}"' for c in names)
    t_cols = ", ".join(f't."{c}"' for c in TX_COLUMNS)
    s_cols = ", ".join(f's."{c}"' for c in TX_COLUMNS)
    match = 't."transaction_id" = s."transaction_id"'
    plans = []
    with psycopg.connect(DSN) as conn:
        conn.execute(
            "CREATE TEMP TABLE memory_stage ON COMMIT DROP AS "
            f"SELECT {', '.join(STAGE_COLUMNS[1:])}, 0::bigint AS line FROM transactions "
            "WITH NO DATA"
        )
        select = ", ".join(
            "transaction_id || '-explain'" if c == "transaction_id" else f'"{c}"' for c in names
        )
        conn.execute(
            f"INSERT INTO memory_stage ({cols}) SELECT {select} FROM transactions "
            f"WHERE valid_to IS NULL LIMIT {int(batch_size)}"
        )
        for label, statement in (
            (
                "UPDATE (close the current rows that differ)",
                f"UPDATE transactions t SET valid_to = 999999 FROM memory_stage s "
                f"WHERE {match} AND t.valid_to IS NULL "
                f"AND ROW({t_cols}) IS DISTINCT FROM ROW({s_cols})",
            ),
            (
                "INSERT (the new versions)",
                f"INSERT INTO transactions ({cols}, valid_from) SELECT {s_all}, 999999 "
                f"FROM memory_stage s WHERE NOT EXISTS "
                f"(SELECT 1 FROM transactions t WHERE {match} AND t.valid_to IS NULL)",
            ),
        ):
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + statement).fetchall()
            plans.append(f"-- {label}, stage of {batch_size} new ids")
            plans.extend(r[0] for r in rows)
        conn.rollback()
    return plans


# --------------------------------------------------------------------------- main


def main(options: dict) -> dict:
    args = collections.namedtuple("Options", options)(**options)
    if not args.no_profile and not Path(PY_SPY).exists():
        print(f"py-spy not found ({PY_SPY}): no profiled drain", flush=True)
        args = args._replace(no_profile=True)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    consumer_counts = [int(c) for c in args.consumers.split(",") if c]

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = RESULTS / f"pipeline_throughput-{stamp}.log"
    from datalake.platform.devbroker import start_broker, stop_broker

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = f"bench.transactions.{stamp}.{uuid.uuid4().hex[:6]}"
    env = configure_env(bootstrap, topic)
    result: dict = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "messages": args.messages,
        "topic": topic,
        "log": str(log),
        "drains": [],
        "repush": [],
    }

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    broker = None
    running: list = []
    try:
        result["busy_processes_at_start"] = busy_processes()
        broker = start_broker(port, log_path=str(RESULTS / f"tansu-{stamp}.log"))
        print(f"broker: Tansu on {bootstrap}, topic {topic}", flush=True)

        import django

        django.setup()
        from django.db import connection

        t0 = now()
        values, keys = make_messages(args.messages, args.seed)
        print(f"generated {len(values):,} messages in {now() - t0:.1f} s", flush=True)

        produce = bench_produce(bootstrap, topic, values, keys)
        print(f"produce: {produce['rate']:,}/s ({produce['seconds']} s)", flush=True)
        del values
        total = args.messages
        consume = bench_consume(bootstrap, topic, total)
        print(
            f"consume: {consume['rate']:,}/s ({consume['seconds']} s), "
            f"{consume['partitions']} partitions {consume['per_partition']}",
            flush=True,
        )
        result["limit"] = {
            "produce": produce,
            "consume": consume,
            "rate": consume["rate"],
            "which": "consume",
            "why": "the measured runs drain a backlog already in the topic, so the broker's "
            "delivery rate to one consumer bounds them; a live pipeline is also bounded "
            "by the produce rate, so that ratio is reported too",
            "slower": "produce" if produce["rate"] < consume["rate"] else "consume",
        }

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own_pid = cursor.fetchone()[0]
        connection.close()
        target = total  # every offset of every partition, merged
        plans_for = None
        drains = [(b, consumer_counts[0], False) for b in batch_sizes]
        drains += [(batch_sizes[0], c, False) for c in consumer_counts[1:]]
        if not args.no_profile:
            drains.append((batch_sizes[0], consumer_counts[0], True))
        for index, (batch_size, consumers, profiled) in enumerate(drains):
            profile = RESULTS / f"pipeline_throughput-{stamp}-b{batch_size}.pyspy.txt"
            print(
                f"drain: {consumers} x run_pipeline --batch-size {batch_size}"
                f"{' under py-spy' if profiled else ''} ...",
                flush=True,
            )
            connection.close()
            figures, pipelines = drain(
                env,
                topic,
                batch_size,
                target,
                total,
                log,
                broker.pid,
                {own_pid},
                running,
                profile if profiled else None,
                consumers,
                getattr(args, "followers", True),
                getattr(args, "followers_after", False),
            )
            result["drains"].append(figures)
            print(
                f"  {figures['messages']:,} in {figures['seconds_total']} s: "
                f"{fmt(figures['rate_overall'], ',')}/s overall, "
                f"{fmt(figures['rate_excluding_join'], ',')}/s after the join "
                f"({figures['seconds_to_assigned']} s), steady "
                f"{fmt(figures['rate_steady_10_90'], ',')}/s; consumer CPU "
                f"{figures['cpu_seconds_consumer_python']} s, its PG backend "
                f"{figures['cpu_seconds_postgres_backend']} s, machine busy "
                f"{figures['machine_busy_fraction']:.0%}",
                flush=True,
            )
            if profiled:
                result["profile"] = {
                    "batch_size": batch_size,
                    "file": str(profile),
                    **profile_phases(profile),
                }
                print(f"  profile: {result['profile']['share']}", flush=True)
            if plans_for is None:
                plans_for = batch_size
                result["merge_plans"] = explain_merge(batch_size)
            if args.repushes and not profiled:
                repush = bench_repush(keys, args.repushes, args.seed + index, topic)
                repush["label"] = f"{consumers} x --batch-size {batch_size}, --poll 0.5 (default)"
                result["repush"].append(repush)
                print(f"  re-push: {repush['request_to_processed_s']}", flush=True)
                connection.close()
            figures["seconds_to_stop"] = max(each.stop() for each in pipelines)
            for each in pipelines:
                running.remove(each)
            conn = psycopg.connect(DSN, autocommit=True)
            target = merged_offsets(conn, topic)  # re-pushes are in the topic now
            conn.close()
            if (
                args.repushes
                and args.poll_experiment
                and not profiled
                and batch_size == batch_sizes[0]
                and consumers == consumer_counts[0]
            ):
                # The same group, restarted with a shorter poll: nothing left to drain.
                print(f"re-push with --poll {args.poll_experiment} ...", flush=True)
                quick = Pipeline(env, figures["group"], batch_size, args.poll_experiment, log)
                quick.start()
                running.append(quick)
                wait_assigned(quick)
                time.sleep(2)
                repush = bench_repush(keys, args.repushes, args.seed + 100, topic)
                repush["label"] = f"--batch-size {batch_size}, --poll {args.poll_experiment}"
                result["repush"].append(repush)
                print(f"  re-push: {repush['request_to_processed_s']}", flush=True)
                connection.close()
                quick.stop()
                running.remove(quick)
                conn = psycopg.connect(DSN, autocommit=True)
                target = merged_offsets(conn, topic)
                conn.close()
        if args.table_limit:
            print(
                f"the table's limit: COPY of the same rows, {batch_sizes[0]} a transaction",
                flush=True,
            )
            result["table_limit"] = bench_table_limit(args.messages, args.seed, batch_sizes[0])
            print(f"  {result['table_limit']}", flush=True)
            if max(consumer_counts) > 1:  # what as many streams as consumers store at once
                streams = max(consumer_counts)
                print(f"  the same with {streams} COPY streams at once", flush=True)
                result["table_limit_streams"] = bench_table_limit(
                    args.messages, args.seed, batch_sizes[0], streams
                )
                print(f"  {result['table_limit_streams']}", flush=True)
        result["uptime_after"] = sh("uptime")
        result["busy_processes_at_end"] = busy_processes()
    finally:
        for process in running:
            if isinstance(process, Pipeline):
                process.stop()
            elif process.poll() is None:  # py-spy
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        if broker is not None:
            stop_broker(broker)
        result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return result


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    print("PIPELINE_RESULT " + json.dumps(out, default=str), flush=True)
