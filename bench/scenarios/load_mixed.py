"""Mixed load over the whole stack, then faults (issue 10, item 3).

On a database of its own (`<--database>_load`: dropped, created, migrated, `--rows`
transactions, metrics and search index rebuilt; `--load-mixed-args=--keep-db` reuses a
prepared one), a temporary lake with the demo files of every source, and the whole
stack (bench/scenarios/load_mixed_stack.py: gunicorn by the harness, Celery worker and
beat, the pipeline consumer, a Tansu broker):

    load      `--clients` wrk connections split over the endpoint groups (rows, raw rows,
              the three metrics, search, re-push, healthz), all at once, `--duration` s
    faults    (`--load-mixed-args=--faults`) the same load while PostgreSQL, Redis and the
              broker are restarted and a Celery worker / pool child is killed

Targets: under load, no errors (non-2xx or socket errors) and memory flat (the stack's
RSS, PostgreSQL apart, grows <= 10% from the first sample after warm-up to the end);
under faults, every process recovers by itself and no accepted re-push is lost.
Run it with no other benchmark on the machine: the faults restart PostgreSQL and Redis
(`--exclusive-until HH:MM` waits for the others first).
"""

from __future__ import annotations

import argparse
import calendar
import json
import shlex
import shutil
import time

from bench.harness import drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Side
from bench.scenarios import load_mixed_stack as stack

NAME = "load_mixed"
DESCRIPTION = "10-min mixed load of 50 clients, then faults (issue 10)"
SCENARIOS = ["load", "faults"]
TARGETS = [
    Target("load: no errors (non-2xx or socket errors)", "load", "errors", "<", 1),
    Target(
        "load: memory flat (stack RSS growth after warm-up <= 10%)",
        "load",
        "rss_growth",
        "<=",
        0.10,
    ),
    Target("faults: every process recovered by itself", "faults", "restarted", "<", 1),
    Target("faults: no accepted re-push lost", "faults", "repush_lost", "<", 1),
]
DEFAULTS = {"rows": 1_000_000, "duration": 600}
FAULTS = ["worker", "worker_child", "postgres", "redis", "broker"]


def add_arguments(group) -> None:
    group.add_argument(
        "--load-mixed-args",
        default="",
        metavar="ARGS",
        help="--clients N (50), --workers N (gunicorn, 4), --faults, --only-faults "
        "postgres,redis,worker,worker_child,broker, --fault-duration S (75), --ingest-lines "
        "N (200,000), --wait-run S (300), --exclusive-until HH:MM, --no-load, --keep-db, "
        "--redis-dbs 5,6",
    )


def own_options(extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="--load-mixed-args")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--faults", action="store_true", help="then the fault run")
    parser.add_argument("--only-faults", default="", help=f"comma list among {FAULTS}")
    parser.add_argument("--fault-duration", type=int, default=75)
    parser.add_argument("--ingest-lines", type=int, default=200_000, help="file of the kill test")
    parser.add_argument(
        "--wait-run",
        type=float,
        default=300,
        help="seconds to wait for the killed run to finish (a whole kill: beat's recovery "
        "queues it again once its heartbeat is INGESTION_STALL_SECONDS old)",
    )
    parser.add_argument(
        "--exclusive-until",
        default="",
        help="HH:MM UTC: before restarting PostgreSQL/Redis wait until no other benchmark "
        "runs, at most until then (then skip that fault); default: do not wait",
    )
    parser.add_argument("--no-load", action="store_true", help="skip the long load run")
    parser.add_argument("--keep-db", action="store_true", help="reuse a prepared database")
    parser.add_argument("--redis-dbs", default="5,6", help="Celery's and the cache's databases")
    return parser.parse_args(shlex.split(extra or ""))


# -- figures and tables -----------------------------------------------------------------


def stack_rss(memory: dict) -> float:
    return sum(m.get("rss_mb", 0) for k, m in memory.items() if k != "postgres_total")


def figures_of(result: dict) -> dict[str, dict]:
    figures = {}
    load = result.get("load")
    if load:
        groups = [g for g in load["groups"].values() if "error" not in g]
        samples = load["memory_samples"]
        first = samples[0]["memory"] if samples else load["memory_start"]
        figures["load"] = {
            "requests": sum(g["requests"] for g in groups),
            "errors": sum(g["errors"] for g in groups) + len(load["groups"]) - len(groups),
            "rss_growth": stack_rss(load["memory_end"]) / max(1e-9, stack_rss(first)) - 1,
        }
    faults = [f for f in result.get("faults", []) if not f.get("skipped")]
    if faults:
        figures["faults"] = {
            "restarted": sum(len(f["restarted_by_harness"]) for f in faults),
            "repush_lost": sum(
                len(f["repush_after_fault"]["not_processed"]) + f["backlog"]["pushed_left"]
                for f in faults
            ),
            "errors": 0,
        }
    return figures


def load_table(load: dict) -> str:
    rows = []
    for name, r in load["groups"].items():
        if "error" in r:
            rows.append([name, "-", r["error"], "", "", "", "", "", ""])
            continue
        rows.append(
            [
                name,
                str(r["connections"]),
                f"{r['requests']:,}",
                f"{r['rps']:.1f}",
                str(r["non_2xx"]),
                str(sum(r["socket_errors"].values())),
                f"{r['p50_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                f"{r['max_ms']:.0f}",
            ]
        )
    return report.table(
        [
            "endpoint group",
            "clients",
            "requests",
            "req/s",
            "non-2xx",
            "socket errors",
            "p50 ms",
            "p99 ms",
            "max ms",
        ],
        rows,
    )


def memory_table(start: dict, end: dict) -> str:
    rows = [
        [
            name,
            *(
                str(m.get(k, "-"))
                for m, k in (
                    (start.get(name, {}), "rss_mb"),
                    (end.get(name, {}), "rss_mb"),
                    (start.get(name, {}), "pss_mb"),
                    (end.get(name, {}), "pss_mb"),
                )
            ),
        ]
        for name in sorted(set(start) | set(end))
    ]
    return report.table(
        ["process", "RSS start MB", "RSS end MB", "PSS start MB", "PSS end MB"], rows
    )


def fault_tables(faults: list[dict]) -> list[str]:
    probes, groups = [], []
    for f in faults:
        if f.get("skipped"):
            probes.append([f["fault"], "skipped: others running", "", "", ""])
            continue
        for kind, p in f.get("probes", {}).items():
            outcomes = "; ".join(f"{k} x{v}" for k, v in p["outcomes"].items())
            probes.append(
                [
                    f["fault"],
                    kind,
                    f"{p['failed']}/{p['probes']}",
                    outcomes,
                    str(p["failure_window_s"]),
                ]
            )
        for g, w in f.get("wrk", {}).items():
            bad = {k: v for k, v in (w.get("statuses") or {}).items() if not k.startswith("2")}
            secs = w.get("failure_seconds") or []
            span = f"{min(secs)}-{max(secs)} ({len(secs)} s)" if secs else "-"
            sock = {k: v for k, v in (w.get("socket_errors") or {}).items() if v}
            groups.append(
                [f["fault"], g, str(w.get("requests")), str(bad or "-"), str(sock or "-"), span]
            )
    return [
        report.table(["fault", "probe", "failed/probes", "outcomes", "failure window s"], probes),
        report.table(
            [
                "fault",
                "wrk group",
                "requests",
                "non-2xx by status",
                "socket errors",
                "non-2xx seconds",
            ],
            groups,
        ),
    ]


# -- the run ---------------------------------------------------------------------------


def run_faults(result: dict, own, args, deadline: float) -> None:
    chosen = [x for x in own.only_faults.split(",") if x] or FAULTS
    injections = {
        "postgres": stack.inject_postgres,
        "redis": stack.inject_redis,
        "worker": stack.make_inject_worker(True, own.ingest_lines, own.workers, own.wait_run),
        "worker_child": stack.make_inject_worker(
            False, own.ingest_lines, own.workers, own.wait_run
        ),
        "broker": stack.inject_broker,
    }
    result["faults"] = []
    for name in chosen:
        if name in ("postgres", "redis"):
            free, busy, waited = stack.wait_exclusive(deadline)
            if not free:
                drivers.log(f"  {name}: skipped, other benchmarks still running: {busy}")
                result["faults"].append(
                    {"fault": name, "skipped": True, "others_running": busy, "waited_s": waited}
                )
                continue
        seconds = own.fault_duration + (45 if name.startswith("worker") else 0)
        phase = stack.fault_phase(
            name, injections[name], seconds, own.clients, args.rows, own.workers
        )
        result["faults"].append(phase)
        drivers.log(
            f"  {name}: "
            + json.dumps({k: v["failed"] for k, v in phase["probes"].items()})
            + f", health back after {phase['health_200_after_s']} s, "
            f"restarted: {phase['restarted_by_harness']}"
        )


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    own = own_options(args.load_mixed_args)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    deadline = time.time()
    if own.exclusive_until:
        hh, mm = (int(x) for x in own.exclusive_until.split(":"))
        deadline = calendar.timegm((*time.gmtime()[:3], hh, mm, 0, 0, 0, 0))
    database = f"{args.database}_load"
    drivers.OWN_DATABASES.add(database)
    stack.ROWS[0] = args.rows
    result: dict = {
        "rows": args.rows,
        "lake_demo_files": "generate_sample_data --days 7 --per-day 1000 --seed 7",
        "gunicorn_workers": own.workers,
        "celery_concurrency": 2,
        "env": stack.configure(side.tree, database, stamp, own.redis_dbs.split(",")),
        "clients_per_group": stack.split_clients(own.clients),
        "paths": {
            n: [f"{m} {p} {b}".strip() for m, p, b in e] for n, (_, _, e) in stack.GROUPS.items()
        },
    }
    info: dict = {}
    try:
        result["setup_timings"] = stack.prepare(args.rows, own.keep_db)
        stack.make_users()
        stack.table_names()
        info = machine.facts(stack.DB_URL, side.tree)
        stack.start_broker()
        for name in ("web", "worker", "audit", "consumer", "beat"):
            stack.start(name, own.workers)
        up = stack.wait_health(90)
        if up is None:
            raise SystemExit(f"/healthz never answered 200; see {stack.LOGDIR}")
        drivers.log(f"healthy after {up} s; checking every path once")
        stack.check_paths()
        result["first_repush_processed_s"] = stack.repush_processed(90)
        if result["first_repush_processed_s"] is None:
            raise SystemExit("the consumer never processed a re-push")
        if not own.no_load:
            result["load"] = stack.load_phase(args.duration, own.clients, args.rows)
        if own.faults:
            run_faults(result, own, args, deadline)
    finally:
        stack.stop_all()
        result["finished"] = time.strftime("%Y%m%d-%H%M%S")
        shutil.rmtree(stack.LAKE, ignore_errors=True)
    figures = figures_of(result)
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    parts = [
        f"### load_mixed ({args.rows:,} transactions; {own.clients} clients, "
        f"{args.duration} s; gunicorn {own.workers} workers)",
        machine.one_line(info) if info else "",
    ]
    if result.get("load"):
        load = result["load"]
        parts += [load_table(load), memory_table(load["memory_start"], load["memory_end"])]
    if result.get("faults"):
        parts += fault_tables(result["faults"])
    parts += [report.targets_table(checks), f"logs in {stack.LOGDIR}"]
    markdown = "\n\n".join(p for p in parts if p)
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": {**vars(args), **vars(own)},
            "machine": info,
            "result": result,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
