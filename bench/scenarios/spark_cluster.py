"""Spark standalone cluster (issue 23): the 5,000,000-row ingestion on a local cluster of two
workers against `local[*]`, in the same run, on the same files.

On a database of its own (`<--database>_cluster`, migrated by the tree measured; emptied
before each measured load) and a temporary LAKE_ROOT under /tmp, the `ingest`
benchmark's daily files (same generator and seed), then for each mode (`local[*]`, then
a master and `--cluster-args=--workers` workers of `--cores` cores started by
bench/scenarios/spark_cluster_job.py with scripts/spark_cluster.py):

    fixed    a 100-line file staged by Spark alone: a job's start (JVMs, executors)
    spark    every file staged by one spark-submit, nothing merged: Spark's own part
    real     the real path (`ingestion_runs_execute`, the Celery task's code): one
             spark-submit for the files, each merged as soon as Spark has staged it

with the CPU seconds of each side (driver, cluster, PostgreSQL, the Django process).
No target: the figures say what a cluster on one machine costs, and what limits it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time

from bench.harness import db, drivers, machine, report
from bench.harness.scenario import Measure, Side

NAME = "spark_cluster"
DESCRIPTION = "Spark standalone cluster (issue 23): the ingestion on 2 local workers vs local[*]"
SCENARIOS = [
    Measure(f"{mode} {part}", f"{mode}: {part}")
    for mode in ("local", "cluster")
    for part in ("fixed", "spark", "real")
]
TARGETS = []
DEFAULTS = {"rows": 5_000_000}
JOB = "bench/scenarios/spark_cluster_job.py"
CPU = ("spark_driver", "spark_cluster", "postgresql", "django")


def add_arguments(group) -> None:
    group.add_argument(
        "--cluster-args", default="", metavar="ARGS",
        help="--workers N (2), --cores N (1 each), --memory M (2g each), --days N (30), "
        "--seed N (4), --order local,cluster, --spark-only (no real path), --lake DIR, --keep",
    )  # fmt: skip


def own_options(extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="--cluster-args")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--memory", default="2g")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--order", default="local,cluster")
    parser.add_argument("--spark-only", action="store_true")
    parser.add_argument("--lake", default=None)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(shlex.split(extra or ""))


def figures_of(result: dict) -> dict[str, dict]:
    figures = {}
    for mode in result["modes"]:
        for part in ("fixed", "spark", "real"):
            if part not in mode:
                continue
            measured = mode[part]
            rows = measured.get("rows", 100)
            figures[f"{mode['mode']} {part}"] = {
                "rows": rows,
                "seconds": measured["seconds"],
                "rows_per_s": rows / measured["seconds"],
                "load1": measured["load1"],
                **{f"cpu_{k}": measured["cpu_seconds"].get(k, 0.0) for k in CPU},
            }
    return figures


def cpu_table(figures: dict[str, dict]) -> str:
    rows = []
    for name, f in figures.items():
        total = sum(f[f"cpu_{k}"] for k in CPU)
        rows.append(
            [
                name,
                report.fmt(f["seconds"]),
                *(report.fmt(f[f"cpu_{k}"]) for k in CPU),
                report.fmt(total),
                f"{total / (2 * f['seconds']):.0%}",
            ]
        )
    headers = [
        "scenario",
        "wall s",
        "driver",
        "cluster",
        "PostgreSQL",
        "Django",
        "all",
        "of 2 cores",
    ]
    return report.table(headers, rows)


def run(side: Side, args) -> bool:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    own = own_options(args.cluster_args)
    database = f"{args.database}_cluster"
    drivers.OWN_DATABASES.add(database)
    db.ensure(database)
    side.tree.manage(db.url_of(database), "migrate", "--noinput", "--verbosity", "0")
    info = machine.facts(db.url_of(database), side.tree)
    lake = own.lake or f"/tmp/bench_cluster_{os.getpid()}"
    options = {"rows": args.rows, **vars(own), "real": not own.spark_only}
    t0 = time.perf_counter()
    result = side.tree.script(db.url_of(database), JOB, options, "CLUSTER_RESULT", LAKE_ROOT=lake)
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    figures = figures_of(result)
    rows = [
        [
            name,
            f"{f['rows']:,}",
            report.fmt(f["seconds"]),
            report.fmt(f["rows_per_s"], ",.0f"),
            report.fmt(f["load1"]),
        ]
        for name, f in figures.items()
    ]
    ratios = []
    for part in ("fixed", "spark", "real"):
        local, cluster = figures.get(f"local {part}"), figures.get(f"cluster {part}")
        if local and cluster:
            ratios.append([part, f"{cluster['seconds'] / local['seconds']:.2f}"])
    markdown = "\n\n".join(
        [
            f"### spark_cluster ({args.rows:,} transactions in {own.days} daily files, "
            f"{result['jsonl_bytes'] / 1e6:.0f} MB; cluster: {own.workers} workers of "
            f"{own.cores} core(s), {own.memory})",
            machine.one_line(info),
            report.table(["scenario", "rows", "seconds", "rows/s", "load (1 min)"], rows),
            "Wall time, cluster / local:",
            report.table(["part", "cluster / local"], ratios),
            "CPU seconds by side (sampled from /proc every 0.5 s):",
            cpu_table(figures),
            f"The whole benchmark (generation included): {result['bench_seconds']:.0f} s.",
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": {**vars(args), **options},
            "machine": info,
            "result": result,
            "figures": figures,
            "targets": [],
            "passed": True,
        },
        markdown,
    )
