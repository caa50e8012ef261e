"""Small daily files (the resident Spark driver): a batch of one small file on the
worker's resident driver against a spark-submit of its own, in the same run.

On a database of its own (`<--database>_small`, migrated by the tree measured) and a
temporary LAKE_ROOT under /tmp, `--rows` transactions in `--small-args=--files` daily files
(the `ingest` benchmark's generator and seed), each ingested as a batch of its own through
the real path (`ingestion_runs_execute([id])`, what `ingestion.run_batch` runs), in ABBA
order on emptied tables (bench/scenarios/_small_files_job.py):

    resident    SPARK_DRIVER_IDLE_SECONDS=300, the driver stopped before the pass: its
                first file pays the JVM's and session's start, the others find it
    per-batch   SPARK_DRIVER_IDLE_SECONDS=0 (the old behaviour): a spark-submit per file

Per mode: the first file, the median of the others (both passes), a pass's total.
Target: a small file on a resident driver takes at most 0.25x the time of a spark-submit
per batch (medians of the files after the first, in the same run).
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import time

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Measure, Side

NAME = "small_files"
DESCRIPTION = "small daily files: a batch on the resident Spark driver vs a spark-submit each"
SCENARIOS = [
    Measure("resident", "resident driver (SPARK_DRIVER_IDLE_SECONDS=300)"),
    Measure("per-batch", "a spark-submit per batch (SPARK_DRIVER_IDLE_SECONDS=0)"),
]
TARGETS = [
    Target(
        "a small file on a resident driver takes at most 0.25x the time of a spark-submit "
        "per batch", "resident", "median_s", "<=", 0.25, peer="per-batch",
    ),
]  # fmt: skip
DEFAULTS = {"rows": 5_000}
JOB = "bench/scenarios/_small_files_job.py"
ORDER = "resident,per-batch,per-batch,resident"
HEADERS = ["mode", "first file s", "median of the others s", "pass total s", "Spark starts"]


def add_arguments(group) -> None:
    group.add_argument(
        "--small-args", default="", metavar="ARGS",
        help=f"--files N (8 daily files), --seed N (4), --order MODES ({ORDER}), --lake DIR, "
        "--keep (the lake folder)",
    )  # fmt: skip


def own_options(extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="--small-args")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--order", default=ORDER)
    parser.add_argument("--lake", default=None, help="LAKE_ROOT (default: a new /tmp folder)")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(shlex.split(extra or ""))


def figures_of(result: dict) -> dict[str, dict]:
    """mode -> its first file (median over passes), the median of the other files (all
    passes pooled), a pass's total (median over passes)."""
    figures = {}
    for mode in dict.fromkeys(p["mode"] for p in result["passes"]):
        passes = [p for p in result["passes"] if p["mode"] == mode]
        others = [f["seconds"] for p in passes for f in p["files"][1:]]
        figures[mode] = {
            "passes": len(passes),
            "first_s": statistics.median(p["first_s"] for p in passes),
            "median_s": statistics.median(others) if others else float("nan"),
            "total_s": statistics.median(p["total_s"] for p in passes),
            "sessions_started": sum(p["sessions_started"] for p in passes),
        }
    return figures


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def run(side: Side, args) -> bool:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    own = own_options(args.small_args)
    database = f"{args.database}_small"
    drivers.OWN_DATABASES.add(database)
    db.ensure(database)
    side.tree.manage(db.url_of(database), "migrate", "--noinput", "--verbosity", "0")
    info = machine.facts(db.url_of(database), side.tree)
    lake = own.lake or f"/tmp/bench_small_{os.getpid()}"
    options = {"rows": args.rows, **vars(own)}
    t0 = time.perf_counter()
    result = side.tree.script(
        db.url_of(database), JOB, options, "SMALL_FILES_RESULT", LAKE_ROOT=lake
    )
    result["bench_seconds"] = round(time.perf_counter() - t0, 1)
    figures = figures_of(result)
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    rows = [
        [
            f"{name} ({f['passes']} passes)",
            report.fmt(f["first_s"], ".2f"),
            report.fmt(f["median_s"], ".2f"),
            report.fmt(f["total_s"], ".1f"),
            str(f["sessions_started"]),
        ]
        for name, f in figures.items()
    ]
    passes = [
        [
            f"{i + 1}. {p['mode']}",
            *(report.fmt(x["seconds"], ".2f") for x in p["files"]),
            report.fmt(p["total_s"], ".1f"),
        ]
        for i, p in enumerate(result["passes"])
    ]
    res, per = figures.get("resident", {}), figures.get("per-batch", {})
    ratios = [
        ["per-batch median / resident median (the files after the first)",
         ratio(per.get("median_s"), res.get("median_s"))],
        ["resident first file / per-batch median (the driver's start)",
         ratio(res.get("first_s"), per.get("median_s"))],
        ["per-batch total / resident total (a pass)",
         ratio(per.get("total_s"), res.get("total_s"))],
    ]  # fmt: skip
    per_file = f"{args.rows // max(1, own.files):,}"
    markdown = "\n\n".join(
        [
            f"### small_files ({args.rows:,} transactions in {own.files} daily files of "
            f"~{per_file} rows, {result['jsonl_bytes'] / 1e3:.0f} kB; each file a batch of "
            f"its own; order {own.order})",
            machine.one_line(info),
            report.table(HEADERS, rows),
            report.table(["ratio", "figure"], ratios),
            report.targets_table(checks),
            "Each file's wall time (s), by pass:",
            report.table(
                ["pass", *(f["day"][5:] for f in result["passes"][0]["files"]), "total"], passes
            ),
            f"The whole benchmark (file generation and Django's start included): "
            f"{result['bench_seconds']:.0f} s.",
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
