"""Ingestion (issue 4): the real path against a plain COPY in the same run; whole retail files.

On a database of its own (`<--database>_ingest`, migrated by the tree measured; every
measured load starts from empty tables) and a temporary LAKE_ROOT under /tmp:

    real     `--rows` valid transactions (EUR, some USD and GBP with exchange_rates rows)
             in `--ingest-args=--days` daily JSONL files: an `IngestionRun` per file, then
             `ingestion_runs_execute(ids)` (the Celery task `ingestion.run_batch`: one
             spark-submit for the files, each merged in its own versioned transaction)
    copy     the limit: the same rows as CSV, one `COPY ... FROM STDIN` per file, into a
             fresh `(LIKE transactions INCLUDING ALL)` table
    retail   each real retail file, whole, through the same path on empty tables
             (unless `--ingest-args=--skip-retail`)

Targets (issue 4): real >= 50% of COPY's rows/s; each whole retail file < 90 s. The
Django side runs in the tree's interpreter (bench/scenarios/ingest_job.py); the phases
of the real path are timed by wrapping the service's functions from outside.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Side

NAME = "ingest"
DESCRIPTION = "ingestion (issue 4): the real path vs COPY; whole retail files"
RETAIL_FILES = ["online_retail.csv.gz", "online_retail_uci_dates.csv.gz"]
SCENARIOS = ["real", "copy", *(f"retail {name}" for name in RETAIL_FILES)]
TARGETS = [
    Target("real path >= 50% of COPY's rows/s", "real", "rows_per_s", ">=", 0.50, peer="copy"),
    *(
        Target(f"whole retail file {name} < 90 s", f"retail {name}", "seconds", "<", 90.0)
        for name in RETAIL_FILES
    ),
]
DEFAULTS = {"rows": 5_000_000}
JOB = "bench/scenarios/ingest_job.py"


def add_arguments(group) -> None:
    group.add_argument(
        "--ingest-args", default="", metavar="ARGS",
        help="--days N (30), --seed N (4), --skip-retail, --lake DIR, --keep (the lake "
        "folder and the COPY table), --analyze-empty (the planner trap)",
    )  # fmt: skip


def own_options(extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="--ingest-args")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--skip-retail", action="store_true")
    parser.add_argument("--lake", default=None, help="LAKE_ROOT (default: a new /tmp folder)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--analyze-empty", action="store_true")
    return parser.parse_args(shlex.split(extra or ""))


def figures_of(result: dict) -> dict[str, dict]:
    ing, cp = result["ingest"], result["copy"]
    figures = {
        "real": {"rows": ing["rows"], "seconds": ing["seconds"], "rows_per_s": ing["rows_per_s"]},
        "copy": {"rows": cp["rows"], "seconds": cp["seconds"], "rows_per_s": cp["rows_per_s"]},
    }
    for rec in result.get("retail", []):
        figures[f"retail {rec['file']}"] = {
            "rows": rec["rows_read"],
            "seconds": rec["seconds"],
            "rows_per_s": rec["rows_read"] / rec["seconds"],
        }
    return figures


def phases_table(result: dict) -> str:
    ing, cp = result["ingest"], result["copy"]
    phases, total = ing["phases_total"], ing["seconds"]
    overhead = result["spark_fixed_overhead_s"]
    merge = phases.get("merge", 0.0)
    named = ("merge_update", "merge_insert", "search_index", "metrics_aggregates")
    parts = [
        ("checksums (sha256 of each file)", phases.get("checksum", 0.0)),
        ("stage tables", phases.get("create_stage", 0.0)),
        ("ANALYZE of each stage", phases.get("analyze_stage", 0.0)),
        ("merge: UPDATE (close changed current rows)", phases.get("merge_update", 0.0)),
        (
            f"merge: INSERT (new versions; the table has {cp['indexes']} indexes)",
            phases.get("merge_insert", 0.0),
        ),
        ("merge: search index (search_entries)", phases.get("search_index", 0.0)),
        ("merge: metric aggregates (apply_version)", phases.get("metrics_aggregates", 0.0)),
        (
            "merge: rest (locks, rejects, version row, statistics, commit)",
            merge - sum(phases.get(k, 0.0) for k in named),
        ),
        ("drop stages", phases.get("drop_stage", 0.0)),
    ]
    accounted = sum(v for _, v in parts)
    parts.append(
        (
            f"waiting for Spark (its start, {overhead:.1f} s for a 100-line job, and the "
            "files the merges did not overlap)",
            total - accounted,
        )
    )
    return report.table(
        ["phase", "seconds", "share of the wall time"],
        [[name, f"{value:.1f}", f"{value / total:.0%}"] for name, value in parts],
    )


def run(side: Side, args) -> bool:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    own = own_options(args.ingest_args)
    database = f"{args.database}_ingest"
    drivers.OWN_DATABASES.add(database)
    db.ensure(database)
    side.tree.manage(db.url_of(database), "migrate", "--noinput", "--verbosity", "0")
    info = machine.facts(db.url_of(database), side.tree)
    lake = own.lake or f"/tmp/bench_ingest_{os.getpid()}"
    options = {"rows": args.rows, **vars(own)}
    result = side.tree.script(db.url_of(database), JOB, options, "INGEST_RESULT", LAKE_ROOT=lake)
    figures = figures_of(result)
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    ing, cp = result["ingest"], result["copy"]
    labels = {
        "real": f"real path, {len(ing['files'])} daily files, one batch",
        "copy": f"COPY limit ({cp['indexes']} indexes), one stream per file",
    }
    rows = [
        [
            labels.get(name, f"{name}, whole file"),
            f"{f['rows']:,}",
            report.fmt(f["seconds"]),
            report.fmt(f["rows_per_s"], ",.0f"),
        ]
        for name, f in figures.items()
    ]
    markdown = "\n\n".join(
        [
            f"### ingest ({args.rows:,} transactions in {own.days} daily files)",
            machine.one_line(info),
            report.table(["scenario", "rows", "seconds", "rows/s"], rows),
            report.targets_table(checks),
            "Where the real path's time goes (the worker's side; Spark stages file N+1 "
            "while file N merges, so Spark's own time is what the merges did not hide):",
            phases_table(result),
            f"COPY per file: first {cp['files_seconds'][0]:.1f} s, last "
            f"{cp['files_seconds'][-1]:.1f} s. Machine load (1-min average): after the "
            f"real path {ing['load1_mean']:.1f}, during COPY {cp['load1_mean']:.1f}.",
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
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
