"""The audit chain (issue 20): what sealing costs the rows endpoint, whether it keeps up
with the mixed load, and how long verifying 10,000,000 stored requests takes.

    .venv/bin/python bench/run.py audit [--rows 1000000] [--rounds 3] [--duration 40]
        [--audit-parts rows,load,verify] [--audit-verify-rows 10000000]
        [--audit-verify-database NAME] [--audit-load-duration 120] [--audit-redis-dbs 5,6]

Parts (`--audit-parts`, all by default):

    rows    (a) of the rows benchmark (bench/scenarios/rows.py: `rows/?country=FR&amount__gt=
            100&fields=...`, page 1; gunicorn 2 sync workers, `benchsite.settings`, request
            log on; wrk 2 threads, `--connections`) on `--rows` transactions, in `--slices`
            alternating slices (ABBA, the first slice's order flipping each round) of:
              a_sealed  the sealer running beside: a process doing what beat and the `audit`
                        worker do, a `sealer.seal()` round every AUDIT_SEAL_SECONDS
                        (bench/scenarios/_audit_job.py `seal_loop`), running during the
                        slice (warm-up, timed run and drain);
              a         the same server and path with the sealer paused.
            Between slices, untimed, the queue is emptied (the paused sealer seals what the
            slice left), so that each slice starts alike. The sealer's process and its
            PostgreSQL backend count in the server CPU per request. Cost: the median over
            rounds of 1 - rps(a_sealed) / rps(a).
    load    the `load` phase of load_mixed (bench/scenarios/load_mixed_stack.py: the whole
            stack, now with its `audit` queue worker, Celery beat sealing every
            AUDIT_SEAL_SECONDS) for `--audit-load-duration` s, `--audit-load-clients`
            clients, on `<--database>_load` (dropped, created, `--rows` transactions). Seal
            lag from the database: `sealed_at - (at + duration_ms)` of every request stored
            during the load (lineage_requestseal JOIN lineage_requestlog), p50/p99/max after
            the queue emptied (60 s at most), and the requests of the load not sealed when it
            ended (the unsealed count at its end).
    verify  `--audit-verify-rows` realistic stored requests (INSERT ... SELECT over
            generate_series in 1,000,000-row statements: the queue trigger of migration
            0005 queues them) in `--audit-verify-database` (dropped, created, migrated),
            VACUUM ANALYZE, then `manage.py seal_audit` (every request sealed, a checkpoint
            per round) and `manage.py verify_audit` (the whole chain), each timed: seconds,
            rows/s, CPU of the command and of its PostgreSQL backend.

Targets (issue 20): the sealer beside costs (a) <= 3% of its req/s; seal lag p99 under
the mixed load < 10 s; the whole chain verifies with no finding. Sealing and
verification rows/s are figures (no target in the issue); the verification must finish.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Measure, Side, alternate, combine
from bench.harness.server import RESULTS
from bench.harness.tree import CHILD
from bench.scenarios import load_mixed_stack as stack
from bench.scenarios import rows as rows_benchmark

NAME = "audit"
DESCRIPTION = "audit chain (issue 20): sealing beside the rows endpoint, under mixed load; verify"
HERE = Path(__file__).resolve().parent
JOB = f"{HERE / '_audit_job.py'}:seal_loop"
SERVERS = {"main": "benchsite.settings"}
HTTP = [
    Http("a_sealed", "(a) rows page 1, the sealer running beside", group="seal"),
    Http("a", "(a) rows page 1, the sealer paused", group="seal"),
]
SCENARIOS = [
    *HTTP,
    Measure("load", "sealing under the mixed load (load_mixed's load phase)"),
    Measure("seal", "sealing every stored request (seal_audit)"),
    Measure("verify", "verifying the whole chain (verify_audit)"),
]
TARGETS = [
    Target("the sealer beside costs (a) <= 3% of its req/s", "a_sealed", "seal_cost", "<=", 0.03),
    Target("seal lag p99 under the mixed load < 10 s", "load", "lag_p99_s", "<", 10.0),
    Target("the whole chain verifies: no finding", "verify", "findings", "<", 1),
]
DEFAULTS = {"rows": 1_000_000, "duration": 40, "rounds": 3, "slices": 4}
CHUNK = 1_000_000


def add_arguments(group) -> None:
    group.add_argument("--audit-parts", default="rows,load,verify", help="among rows,load,verify")
    group.add_argument("--audit-verify-rows", type=int, default=10_000_000)
    group.add_argument(
        "--audit-verify-database", default="", help="verify's database (<--database>_audit)"
    )
    group.add_argument(
        "--audit-verify-keep",
        action="store_true",
        help="reuse verify's database when it holds the rows (then only what is unsealed "
        "is sealed)",
    )
    group.add_argument("--audit-load-duration", type=int, default=120)
    group.add_argument("--audit-load-clients", type=int, default=50)
    group.add_argument("--audit-load-workers", type=int, default=4, help="gunicorn's, load")
    group.add_argument(
        "--audit-load-no-sealer",
        action="store_true",
        help="load: the stack without its audit worker (the same load, to compare)",
    )
    group.add_argument("--audit-redis-dbs", default="5,6", help="load: Celery's and the cache's")


# -- the sealer beside the rows endpoint ----------------------------------------------------


class SealLoop:
    """The seal loop process (`_audit_job.py seal_loop`) in the measured tree's code, in a
    session of its own (its CPU counts as the server's), driven line by line."""

    def __init__(self, side: Side, env: dict):
        self.proc = subprocess.Popen(
            [str(side.tree.python), str(CHILD), JOB, "{}"],
            cwd=side.tree.root,
            env=side.tree.env(side.db_url, **env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        drivers.OWN_PGIDS.add(self.proc.pid)
        self.ready = self._answer()

    def _answer(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("LOOP "):
                return json.loads(line.removeprefix("LOOP "))
        raise RuntimeError(f"the seal loop ended (exit {self.proc.wait()})")

    def send(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def quit(self) -> dict:
        if self.proc.poll() is not None:
            return {}
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        result = {}
        for line in self.proc.stdout:
            if line.startswith("CHILD_RESULT "):
                result = json.loads(line.removeprefix("CHILD_RESULT "))
        self.proc.wait(60)
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def rows_part(side: Side, args, checkpoints: Path) -> dict:
    rows_benchmark.prepare_data(side, args)
    side.tokens["bench"] = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    side.paths.update(a=rows_benchmark.ROWS_PATH, a_sealed=rows_benchmark.ROWS_PATH)
    env = {"AUDIT_CHECKPOINT_ROOT": str(checkpoints)}
    side.start(SERVERS, env=env)
    for scenario in HTTP:
        body = side.check(scenario)
        drivers.log(f"  {scenario.name}: 200, {len(body['results'])} rows")
    loop = SealLoop(side, env)
    try:
        backlog = loop.send("catchup")["drained"]  # earlier runs' requests, untimed
        drivers.log(
            f"  seal loop ready (every {loop.ready['every']} s); backlog sealed {backlog:,}"
        )
        sealed, plain = HTTP

        def with_sealer(secs, warm):
            loop.send("run")
            result = side.measure(sealed, "wrk", secs, args, warm)
            result["sealed_after_slice"] = loop.send("pause")["drained"]
            return result

        def without(secs, warm):
            result = side.measure(plain, "wrk", secs, args, warm)
            result["sealed_after_slice"] = loop.send("catchup")["drained"]
            return result

        runs: dict[str, list[dict]] = {}
        for round_no in range(1, args.rounds + 1):
            waited = drivers.wait_quiet("a_sealed")
            got = alternate(
                [("a_sealed", with_sealer), ("a", without)],
                args.duration,
                args.slices,
                round_no,
                warm=True,
            )
            for name, results in got.items():
                result = combine(results)
                result["waited_for_quiet_s"] = waited
                runs.setdefault(name, []).append(result)
                drivers.log(
                    f"round {round_no} {name}: {result['rps']:,.1f} req/s, p50 "
                    f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, server CPU "
                    f"{result['server_cpu_ms_per_req']:.2f} ms/req, other work "
                    f"{result['foreign_cpu']:.0%}"
                    + (f", {drivers.errors_of(result)} ERRORS" if drivers.errors_of(result) else "")
                )
        loop_result = loop.quit()
    finally:
        loop.kill()
        side.stop()
    figures = report.summarise(runs)
    per_round = [1 - s["rps"] / n["rps"] for s, n in zip(runs["a_sealed"], runs["a"], strict=True)]
    figures["a_sealed"]["seal_cost"] = statistics.median(per_round)
    figures["a_sealed"]["seal_cost_rounds"] = per_round
    figures["a_sealed"]["seal_cost_by_cpu"] = 1 - (
        figures["a"]["cpu_ms_per_req"] / figures["a_sealed"]["cpu_ms_per_req"]
    )
    loop_result.pop("all", None)
    return {"runs": runs, "figures": figures, "seal_loop": loop_result, "backlog": backlog}


# -- sealing under the mixed load ----------------------------------------------------------

LAG = """
SELECT count(*), count(s.sequence),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY x.lag),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY x.lag),
       max(x.lag),
       count(*) FILTER (WHERE s.sequence IS NULL OR s.sealed_at > %(end)s)
FROM lineage_requestlog l
LEFT JOIN lineage_requestseal s ON s.log_id = l.id
CROSS JOIN LATERAL (
    SELECT extract(epoch FROM s.sealed_at - (l.at + l.duration_ms * interval '1 millisecond'))
           AS lag
) x
WHERE l.at >= %(start)s AND l.at < %(end)s
"""


def seal_lag(url: str, start: float, end: float) -> dict:
    bounds = {
        "start": time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(start)),
        "end": time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(end)),
    }
    ((stored, sealed, p50, p99, most, unsealed_at_end),) = db.sql(url, LAG, bounds)
    return {
        "window": bounds,
        "stored": stored,
        "sealed": sealed,
        "lag_p50_s": round(float(p50), 3) if p50 is not None else None,
        "lag_p99_s": round(float(p99), 3) if p99 is not None else None,
        "lag_max_s": round(float(most), 3) if most is not None else None,
        "unsealed_at_end": unsealed_at_end,
    }


def queue_length(url: str) -> int:
    return db.sql(url, "SELECT count(*) FROM lineage_sealqueue")[0][0]


def load_part(side: Side, args, own, stamp: str) -> dict:
    database = f"{args.database}_load"
    drivers.OWN_DATABASES.add(database)
    stack.ROWS[0] = args.rows
    result: dict = {
        "database": database,
        "rows": args.rows,
        "duration_s": own.audit_load_duration,
        "clients": own.audit_load_clients,
        "gunicorn_workers": own.audit_load_workers,
        "env": stack.configure(side.tree, database, f"audit-{stamp}", own.redis_dbs),
    }
    try:
        result["setup_timings"] = stack.prepare(args.rows, False)
        stack.make_users()
        stack.table_names()
        stack.start_broker()
        sealer = () if own.audit_load_no_sealer else ("audit",)
        result["sealer"] = bool(sealer)
        for name in ("web", "worker", *sealer, "consumer", "beat"):
            stack.start(name, own.audit_load_workers)
        if stack.wait_health(90) is None:
            raise SystemExit(f"/healthz never answered 200; see {stack.LOGDIR}")
        stack.check_paths()
        # The consumer plays no part in sealing: waited for as load_mixed does (its first
        # re-push can take ~2 min on this machine), noted if it never came.
        result["first_repush_processed_s"] = stack.repush_processed(240)
        started = time.time()
        load = stack.load_phase(own.audit_load_duration, own.audit_load_clients, args.rows)
        ended = started + own.audit_load_duration
        result["queue_after_load"] = queue_length(stack.DB_URL)
        t0 = time.monotonic()
        while queue_length(stack.DB_URL) and time.monotonic() - t0 < 60:
            time.sleep(1)
        result["queue_after_wait"] = queue_length(stack.DB_URL)
        result["lag"] = seal_lag(stack.DB_URL, started, ended)
        groups = [g for g in load["groups"].values() if "error" not in g]
        result["requests"] = sum(g["requests"] for g in groups)
        result["errors"] = sum(g["errors"] for g in groups) + len(load["groups"]) - len(groups)
        result["load_groups"] = {
            k: {f: g.get(f) for f in ("requests", "rps", "errors", "p50_ms", "p99_ms")}
            for k, g in load["groups"].items()
        }
        result["log_errors"] = load.get("log_errors")
    finally:
        stack.stop_all()
        shutil.rmtree(stack.LAKE, ignore_errors=True)
    result["logs"] = str(stack.LOGDIR)
    return result


# -- sealing and verifying 10,000,000 stored requests ---------------------------------------

FILL = """
INSERT INTO lineage_requestlog (at, user_id, username, method, path, query, body, status_code,
                                duration_ms, resource, ip, restrictions, request_id)
SELECT timestamptz '2026-11-01 00:00:00+00' + g * interval '250 milliseconds',
       CASE WHEN g %% 50 = 0 THEN NULL ELSE 1 + g %% 400 END,
       CASE WHEN g %% 50 = 0 THEN '' ELSE 'user' || (1 + g %% 400) END,
       CASE WHEN g %% 20 = 0 THEN 'POST' ELSE 'GET' END,
       CASE WHEN g %% 20 = 0 THEN '/api/v1/pipeline/repush/'
            ELSE (ARRAY['/api/v1/resources/transactions/rows/',
                        '/api/v1/resources/raw_transactions/rows/',
                        '/api/v1/metrics/top-products/', '/api/v1/search/',
                        '/api/v1/resources/transactions/rows/'])[1 + g %% 5] END,
       CASE WHEN g %% 20 = 0 THEN '{}'::jsonb
            ELSE jsonb_build_object('country', (ARRAY['FR','DE','GB','ES'])[1 + g %% 4],
                                    'amount__gt', (g %% 500)::text,
                                    'fields', 'transaction_id,timestamp,country,amount,status')
       END,
       CASE WHEN g %% 20 = 0 THEN jsonb_build_object(
                'resource', 'transactions',
                'transaction_id', 'TX-' || lpad((g %% 10000000)::text, 8, '0')) END,
       CASE WHEN g %% 97 = 0 THEN 404 WHEN g %% 20 = 0 THEN 202 ELSE 200 END,
       3 + (hashint4(g::int) & 65535) / 997.0,
       CASE WHEN g %% 5 = 2 THEN '' ELSE 'transactions' END,
       ('10.' || (g %% 7) || '.' || (g %% 251) || '.' || (1 + g %% 253))::inet,
       CASE WHEN g %% 10 = 0 THEN '{"transactions": {"columns": null, "masked": ["user_id"],
                                   "row_filter": {"country__in": ["FR", "DE"]}}}'::jsonb END,
       md5(g::text)
FROM generate_series(%s::bigint, %s::bigint) g
"""


def timed_command(side: Side, url: str, env: dict, *args: str) -> dict:
    """`manage.py <args>`, timed: seconds, its CPU, its PostgreSQL backends' CPU, output."""
    own = drivers.OwnCpu()
    own.start()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(side.tree.python), "manage.py", *args],
        cwd=side.tree.root,
        env=side.tree.env(url, **env),
        capture_output=True,
        text=True,
        timeout=7200,
    )
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg = own.stop() / drivers.TICK
    return {
        "command": "manage.py " + " ".join(args),
        "exit": done.returncode,
        "seconds": round(seconds, 2),
        "command_cpu_s": round(
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2
        ),
        "postgres_cpu_s": round(pg, 2),
        "stdout": done.stdout[-4000:],
        "stderr": done.stderr[-2000:],
    }


def verify_part(side: Side, args, own) -> dict:
    name = own.audit_verify_database or f"{args.database}_audit"
    n = own.audit_verify_rows
    drivers.OWN_DATABASES.add(name)
    url = db.url_of(name)
    checkpoints = RESULTS / f".audit-checkpoints-{name}"
    env = {"AUDIT_CHECKPOINT_ROOT": str(checkpoints)}
    result: dict = {"database": name, "rows": n, "checkpoints_folder": str(checkpoints)}
    if not own.audit_verify_keep:
        db.drop(name)
        shutil.rmtree(checkpoints, ignore_errors=True)
    db.ensure(name)
    side.tree.manage(url, "migrate", "--verbosity", "0")
    have = db.sql(url, "SELECT count(*) FROM lineage_requestlog")[0][0]
    if have > n:
        raise SystemExit(f"{name} holds {have:,} stored requests, more than {n:,}")
    drivers.log(f"verify: {name} holds {have:,} stored requests; filling to {n:,}")
    t0 = time.perf_counter()
    for first in range(have + 1, n + 1, CHUNK):
        db.sql(url, FILL, [first, min(n, first + CHUNK - 1)])
        drivers.log(f"  filled to {min(n, first + CHUNK - 1):,}")
    result["fill_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    db.sql(url, "VACUUM ANALYZE lineage_requestlog")
    db.sql(url, "VACUUM ANALYZE lineage_sealqueue")
    result["vacuum_s"] = round(time.perf_counter() - t0, 1)
    queued = queue_length(url)
    result["queued_before_seal"] = queued
    result["log_size"] = db.sql(
        url, "SELECT pg_size_pretty(pg_total_relation_size('lineage_requestlog'))"
    )[0][0]
    drivers.log(f"verify: seal_audit ({queued:,} queued)")
    result["seal"] = timed_command(side, url, env, "seal_audit")
    result["seal"]["sealed"] = queued
    result["seal"]["rows_per_s"] = round(queued / result["seal"]["seconds"])
    drivers.log(f"  {result['seal']['stdout'].strip()} in {result['seal']['seconds']} s")
    result["seals"] = db.sql(url, "SELECT count(*), max(sequence) FROM lineage_requestseal")[0]
    drivers.log("verify: verify_audit")
    verified = timed_command(side, url, env, "verify_audit")
    try:
        answer = json.loads(verified["stdout"])
    except ValueError:
        answer = {"ok": False, "rows": 0, "findings_total": 1, "unparsed": True}
    verified["answer"] = answer
    verified["rows_per_s"] = round(answer.get("rows", 0) / verified["seconds"])
    verified["stdout"] = verified["stdout"][:2000]
    result["verify"] = verified
    drivers.log(
        f"  ok={answer.get('ok')} rows={answer.get('rows', 0):,} checkpoints="
        f"{answer.get('checkpoints')} in {verified['seconds']} s"
    )
    return result


# -- the run --------------------------------------------------------------------------------


def own_options(args) -> argparse.Namespace:
    out = argparse.Namespace(**{k: v for k, v in vars(args).items() if k.startswith("audit_")})
    out.parts = [p for p in args.audit_parts.split(",") if p]
    out.redis_dbs = args.audit_redis_dbs.split(",")
    return out


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    own = own_options(args)
    unknown = set(own.parts) - {"rows", "load", "verify"}
    if unknown:
        raise SystemExit(f"--audit-parts: no part {', '.join(sorted(unknown))}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    if "rows" in own.parts:
        rows_benchmark.prepare_data(side, args)
    else:
        db.ensure(side.database)
    info = machine.facts(side.db_url, side.tree)
    result: dict = {}
    figures: dict[str, dict] = {}
    scratch = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        if "rows" in own.parts:
            drivers.log("== rows: (a) with the sealer beside, and paused (ABBA)")
            result["rows"] = rows_part(side, args, scratch / "checkpoints")
            figures.update(result["rows"].pop("figures"))
        if "load" in own.parts:
            drivers.log("== load: load_mixed's load phase, the audit worker sealing")
            load = result["load"] = load_part(side, args, own, stamp)
            # The load's own errors (e.g. 503s of a statement timeout) are load_mixed's
            # target, shown beside; the verdict here is the seal lag's.
            figures["load"] = {
                **{k: float("nan") if v is None else v for k, v in load["lag"].items()},
                "load_errors": load["errors"],
                "errors": 0,
            }
        if "verify" in own.parts:
            drivers.log("== verify: seal and verify the stored requests")
            ver = result["verify"] = verify_part(side, args, own)
            figures["seal"] = {
                "seconds": ver["seal"]["seconds"],
                "rows_per_s": ver["seal"]["rows_per_s"],
                "errors": int(ver["seal"]["exit"] != 0),
            }
            answer = ver["verify"]["answer"]
            figures["verify"] = {
                "seconds": ver["verify"]["seconds"],
                "rows_per_s": ver["verify"]["rows_per_s"],
                "rows": answer.get("rows", 0),
                "findings": answer.get("findings_total", 1)
                + int(answer.get("rows", 0) != ver["rows"]),
                "errors": 0,
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "result": result,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown(args, own, info, result, figures, checks),
    )


def markdown(args, own, info, result, figures, checks) -> str:
    parts = [f"### audit chain (issue 20; parts {', '.join(own.parts)})", machine.one_line(info)]
    if "rows" in result:
        rows = [
            [
                s.label,
                report.fmt(figures[s.name]["rps"], ",.0f"),
                report.fmt(figures[s.name]["p50_ms"]),
                report.fmt(figures[s.name]["p99_ms"]),
                report.fmt(figures[s.name]["cpu_ms_per_req"], ".2f"),
                f"{figures[s.name]['foreign_cpu_max']:.0%}",
                str(figures[s.name]["errors"]),
            ]
            for s in HTTP
        ]
        cost = figures["a_sealed"]
        loop = result["rows"]["seal_loop"]
        parts += [
            f"rows: {args.rows:,} transactions; {args.rounds} round(s) of {args.duration} s "
            f"per member in {args.slices} alternating slices, {args.connections} connections",
            report.table(
                [
                    "scenario",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "server CPU ms/req",
                    "other work",
                    "errors",
                ],
                rows,
            ),
            "sealer's cost per round: "
            + ", ".join(f"{c:.1%}" for c in cost["seal_cost_rounds"])
            + f" (median {cost['seal_cost']:.1%}); by server CPU {cost['seal_cost_by_cpu']:.1%}"
            + f"; the loop's {loop.get('rounds', 0)} rounds sealed "
            f"{loop.get('sealed_in_rounds', 0):,} requests in {loop.get('round_seconds', 0)} s "
            f"({loop.get('round_cpu_s', 0)} s of its CPU)",
        ]
    if "load" in result:
        load, lag = result["load"], result["load"]["lag"]
        parts += [
            f"load: {load['rows']:,} transactions, {load['clients']} clients for "
            f"{load['duration_s']} s, gunicorn {load['gunicorn_workers']} workers, "
            + (
                "the `audit` worker sealing every AUDIT_SEAL_SECONDS"
                if load.get("sealer", True)
                else "no `audit` worker (nothing sealed: the comparison run)"
            )
            + f": {load['requests']:,} requests, "
            f"{load['errors']} errors (the load's own, load_mixed's target: "
            + (
                ", ".join(
                    f"{k} {g['errors']}" for k, g in load["load_groups"].items() if g.get("errors")
                )
                or "none"
            )
            + ")",
            report.table(
                [
                    "stored during the load",
                    "sealed",
                    "lag p50 s",
                    "lag p99 s",
                    "lag max s",
                    "unsealed at its end",
                    "queue after the load's re-push wait",
                    "queue 60 s later",
                ],
                [
                    [
                        f"{lag['stored']:,}",
                        f"{lag['sealed']:,}",
                        report.fmt(lag["lag_p50_s"], ".2f"),
                        report.fmt(lag["lag_p99_s"], ".2f"),
                        report.fmt(lag["lag_max_s"], ".2f"),
                        f"{lag['unsealed_at_end']:,}",
                        f"{load['queue_after_load']:,}",
                        f"{load['queue_after_wait']:,}",
                    ]
                ],
            ),
        ]
    if "verify" in result:
        ver = result["verify"]
        table = [
            [
                name,
                f"{part['seconds']:,.1f}",
                f"{part['rows_per_s']:,}",
                f"{part['command_cpu_s']:,.1f}",
                f"{part['postgres_cpu_s']:,.1f}",
            ]
            for name, part in (("seal_audit", ver["seal"]), ("verify_audit", ver["verify"]))
        ]
        answer = ver["verify"]["answer"]
        parts += [
            f"verify: {ver['rows']:,} stored requests ({ver['log_size']} with indexes; filled "
            f"in {ver['fill_s']} s, VACUUM ANALYZE {ver['vacuum_s']} s); verify_audit: ok "
            f"{answer.get('ok')}, {answer.get('rows', 0):,} rows, {answer.get('checkpoints')} "
            f"checkpoints, {answer.get('findings_total')} findings",
            report.table(["command", "seconds", "rows/s", "its CPU s", "PostgreSQL CPU s"], table),
        ]
    parts.append(report.targets_table(checks))
    return "\n\n".join(parts)
