"""Reads from a streaming replica (issue 23): the rows endpoint on a replica against the
primary only, and the replica's lag under a mixed load, in one run.

A standby of the local PostgreSQL server is made for the run (scripts/pg_replica.py:
`pg_basebackup -R`, a second server on a free port, stopped and deleted at the end). Two
gunicorn servers (2 sync workers each, `benchsite.settings`, request log on) run the
same code: `primary` without replicas, `replica` with `DATABASE_REPLICA_URLS` naming the
standby. Scenarios (wrk, 2 threads):

    primary     rows page 1 (country=FR&amount__gt=100), every query on the primary
    replica     the same request, its data reads on the standby (the token lookup,
                grants, quotas and the request log stay on the primary)
    mixed       `replica` while a writer merges batches into `transactions` on the primary
                (2,000 new rows and 200 corrections a version, as pipeline batches are)

`primary` and `replica` alternate in slices (ABBA). During `mixed`, the primary's
`pg_stat_replication` is sampled every 0.1 s: the standby's replay lag (seconds, bytes).

On one machine the standby shares the two cores with the primary, the web workers and
the writer: a replica adds no capacity here, so the comparison says what the routing
costs a request (the replica's state, read-your-writes' cache read), and the lag says
whether reads can stay on a replica under writes. Targets: the replica's rows at least
0.9x the primary's req/s; the replay lag's p99 under DATABASE_REPLICA_MAX_LAG_SECONDS (5
s, past which reads leave the replica) under the mixed load.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
import urllib.request

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.scenarios.rows import ROWS_PATH, prepare_data

NAME = "replica"
DESCRIPTION = "read replica (issue 23): rows on a streaming replica vs the primary; lag"
SERVERS = {"primary": "benchsite.settings", "replica": "benchsite.settings"}
SCENARIOS = [
    Http("primary", "rows page 1, on the primary only", server="primary", group="rows"),
    Http("replica", "the same, data reads on the replica", server="replica", group="rows"),
    Http("mixed", "the same on the replica, writes merged meanwhile", server="replica"),
]
MAX_LAG = 5.0
TARGETS = [
    Target("replica rows >= 0.9x the primary's req/s", "replica", "rps", ">=", 0.9, peer="primary"),
    Target(
        f"replay lag p99 < {MAX_LAG:g} s under the mixed load", "mixed", "lag_p99_s", "<", MAX_LAG
    ),
]
DEFAULTS = {"rounds": 3, "slices": 4}


def add_arguments(group) -> None:
    group.add_argument("--write-batch", type=int, default=2000, help="new rows a version")
    group.add_argument("--write-pause", type=float, default=0.05, help="s between versions")


def _header(base: str, path: str, token: str) -> str | None:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers.get("X-Read-From")


class LagSampler(threading.Thread):
    """The primary's view of the standby's replay, every `every` s."""

    def __init__(self, url: str, every: float = 0.1):
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.samples: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.wait(self.every):
                row = conn.execute(
                    "SELECT coalesce(extract(epoch FROM replay_lag), 0), "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication"
                ).fetchone()
                if row:
                    self.samples.append((float(row[0]), int(row[1] or 0)))

    def figures(self) -> dict:
        seconds = sorted(s for s, _ in self.samples) or [float("nan")]
        lag_bytes = sorted(b for _, b in self.samples) or [0]

        def pct(values, q):
            return values[min(len(values) - 1, int(q * len(values)))]

        return {
            "lag_samples": len(self.samples),
            "lag_p50_s": statistics.median(seconds),
            "lag_p99_s": pct(seconds, 0.99),
            "lag_max_s": seconds[-1],
            "lag_p99_bytes": pct(lag_bytes, 0.99),
            "lag_max_bytes": lag_bytes[-1],
            "usable_share": sum(s <= MAX_LAG for s in seconds) / len(seconds),
        }


def run(side: Side, args) -> bool:
    from scripts.pg_replica import LocalReplica

    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    for scenario in SCENARIOS:
        side.paths[scenario.name] = ROWS_PATH
    info = machine.facts(side.db_url, side.tree)
    drivers.log("replica: pg_basebackup of the local server ...")
    began = time.monotonic()
    standby = LocalReplica(db.url_of("postgres")).start()
    side.notes["basebackup_s"] = round(time.monotonic() - began, 1)
    try:
        side.start({"primary": SERVERS["primary"]})
        side.start(
            {"replica": SERVERS["replica"]},
            env={"DATABASE_REPLICA_URLS": standby.url(side.database)},
        )
        for scenario in SCENARIOS[:2]:
            side.check(scenario)
            where = _header(side.base(scenario), ROWS_PATH, side.tokens["bench"])
            drivers.log(f"  {scenario.name}: X-Read-From {where}")
            side.notes[f"{scenario.name}_reads_from"] = where
        if side.notes["replica_reads_from"] != "replica":
            raise SystemExit("the replica server does not read from the replica")
        runs = drive(side, SCENARIOS[:2], args)
        runs["mixed"] = [_mixed(side, args, standby)]
    finally:
        side.stop()
        standby.close()
    figures = report.summarise(runs)
    figures["mixed"].update(runs["mixed"][0]["lag"])
    figures["mixed"]["writer_rows_per_s"] = runs["mixed"][0]["writer_rows_per_s"]
    figures["replica"]["x_primary"] = figures["replica"]["rps"] / figures["primary"]["rps"]
    figures["mixed"]["x_primary"] = figures["mixed"]["rps"] / figures["primary"]["rps"]
    checks = report.check_all(TARGETS, figures)
    labels = {s.name: s.label for s in SCENARIOS}
    rows = [
        [
            labels[name],
            report.fmt(f["rps"], ",.0f"),
            report.fmt(f["p50_ms"]),
            report.fmt(f["p99_ms"]),
            f"{f['x_primary']:.2f}x" if "x_primary" in f else "-",
            str(f["errors"]),
        ]
        for name, f in figures.items()
    ]
    mixed = figures["mixed"]
    markdown = "\n\n".join(
        [
            f"### replica ({args.rows:,} transactions; {args.rounds} round(s) of "
            f"{args.duration} s in {args.slices} slices, {args.connections} connections; "
            f"pg_basebackup {side.notes['basebackup_s']} s)",
            machine.one_line(info),
            report.table(["scenario", "req/s", "p50 ms", "p99 ms", "x primary", "errors"], rows),
            f"Mixed load: the writer merged {mixed['writer_rows_per_s']:,.0f} rows/s; replay "
            f"lag p50 {mixed['lag_p50_s']:.3f} s, p99 {mixed['lag_p99_s']:.3f} s, max "
            f"{mixed['lag_max_s']:.3f} s (p99 {mixed['lag_p99_bytes']:,} bytes of WAL; "
            f"{mixed['lag_samples']} samples, {mixed['usable_share']:.1%} within "
            f"{MAX_LAG:g} s).",
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "notes": side.notes,
            "runs": runs,
            "figures": figures,
            "targets": checks,
            "passed": all(c["passed"] for c in checks),
        },
        markdown,
    )


def _mixed(side: Side, args, standby) -> dict:
    """`replica` under wrk for --duration s while the writer merges versions; the lag."""
    scenario = SCENARIOS[2]
    options = {"seconds": args.duration + 2, "batch": args.write_batch, "pause": args.write_pause}
    writer = subprocess.Popen(
        [str(side.tree.python), "bench/scenarios/_replica_writer.py", json.dumps(options)],
        cwd=side.tree.root,
        env=side.tree.env(side.db_url),
        stdout=subprocess.PIPE,
        text=True,
    )
    sampler = LagSampler(db.url_of(side.database))
    sampler.start()
    try:
        result = side.measure(scenario, "wrk", args.duration, args, warmup=False)
        out, _ = writer.communicate(timeout=300)
    finally:
        sampler.stopping.set()
        sampler.join(5)
        if writer.poll() is None:
            writer.kill()
    line = next(x for x in out.splitlines() if x.startswith("REPLICA_WRITER "))
    wrote = json.loads(line.removeprefix("REPLICA_WRITER "))
    result["lag"] = sampler.figures()
    result["writer"] = wrote
    result["writer_rows_per_s"] = wrote["rows"] / wrote["seconds"]
    drivers.log(
        f"  mixed: {result['rps']:,.0f} req/s on the replica; writer {wrote['rows']:,} rows in "
        f"{wrote['versions']} versions; lag p99 {result['lag']['lag_p99_s']:.3f} s"
    )
    return result
