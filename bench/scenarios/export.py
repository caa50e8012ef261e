"""Exports of `rows/` (issue 21, formats): CSV and Arrow over HTTP against PostgreSQL's COPY.

    .venv/bin/python bench/run.py export [--rows 10000000] [--rounds 3]
        [--export-query "fields=...&country=FR"]

On `--rows` transactions (bench/load_transactions.py), the same query three ways, one at
a time, in an order that turns each round (copy, csv, arrow; then reversed; ...):

    copy    `COPY (<the SELECT the export runs>) TO STDOUT (FORMAT csv)` read by psycopg
            in this process (the statement from datalake/query/export.py, its parameters
            bound, through bench/scenarios/_export_job.py): what PostgreSQL gives a client
    csv     GET rows/?<query> with `Accept: text/csv`, read in 1 MiB chunks (rows: lines)
    arrow   GET rows/?<query> with `Accept: application/vnd.apache.arrow.stream`, read with
            pyarrow.ipc.open_stream (rows: the batches' rows)

gunicorn with `benchsite.settings`, one sync worker (its RSS is the export's; warmed
by a one-row export of each format first), worker timeout 3600 s. rows/s = rows /
seconds from the request to the last byte. The worker's RSS (VmRSS from /proc) is
sampled every 0.2 s and read when the client has received 1,000,000 rows: memory flat
means the peak over the rest of the run stays near it.

Targets (issue 21): Arrow >= 50% of COPY's rows/s; memory flat (worker peak RSS - RSS
at 1,000,000 rows < 64 MiB, for CSV and Arrow).
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.parse
import urllib.request

import psycopg
import pyarrow as pa

from bench.harness import drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Measure, Side
from bench.harness.tree import BENCH
from bench.scenarios import rows as rows_benchmark
from bench.scenarios.search_bound import memory, worker_pid

NAME = "export"
DESCRIPTION = "rows/ exports (issue 21): CSV and Arrow over HTTP vs COPY TO STDOUT; memory"
JOB = str(BENCH / "scenarios" / "_export_job.py") + ":copy_statement"
SERVERS = {"main": "benchsite.settings"}
ARROW = "application/vnd.apache.arrow.stream"
SCENARIOS = [
    Measure("copy", "COPY (same query) TO STDOUT, psycopg"),
    Measure("csv", "rows/ Accept: text/csv"),
    Measure("arrow", f"rows/ Accept: {ARROW}"),
]
FLAT_MIB = 64
FLAT = f"memory flat (peak RSS - RSS at 1M rows < {FLAT_MIB} MiB)"
TARGETS = [
    Target("Arrow >= 50% of COPY's rows/s", "arrow", "rows_per_s", ">=", 0.5, peer="copy"),
    Target(f"csv: {FLAT}", "csv", "rss_growth_mib", "<", FLAT_MIB),
    Target(f"arrow: {FLAT}", "arrow", "rss_growth_mib", "<", FLAT_MIB),
]
DEFAULTS = {"rounds": 3}
MILLION = 1_000_000


def add_arguments(group) -> None:
    group.add_argument(
        "--export-query", default="", metavar="QS",
        help="the rows/ query string exported (default: every column of every row)",
    )  # fmt: skip


class _RssSampler(threading.Thread):
    """The worker's peak VmRSS, sampled every 0.2 s while an export runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, memory(self.pid)["rss_mib"])

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, memory(self.pid)["rss_mib"])


def copy_run(url: str, statement: str) -> dict:
    t0 = time.perf_counter()
    rows = size = 0
    with psycopg.connect(url) as conn, conn.cursor().copy(statement) as copy:
        for data in copy:  # one row a chunk
            rows += 1
            size += len(data)
    return {"rows": rows, "bytes": size, "seconds": time.perf_counter() - t0}


def http_run(base: str, path: str, token: str, accept: str, pid: int) -> dict:
    request = urllib.request.Request(
        base + path, headers={"Accept": accept, "Authorization": f"Token {token}"}
    )
    sampler = _RssSampler(pid)
    before = memory(pid)["rss_mib"]
    sampler.start()
    at_million = None
    rows = size = 0
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            if accept == ARROW:
                for batch in pa.ipc.open_stream(response):
                    rows += batch.num_rows
                    size += batch.nbytes
                    if at_million is None and rows >= MILLION:
                        at_million = memory(pid)["rss_mib"]
            else:
                lines = 0
                while chunk := response.read(1 << 20):
                    lines += chunk.count(b"\n")
                    size += len(chunk)
                    if at_million is None and lines > MILLION:
                        at_million = memory(pid)["rss_mib"]
                rows = lines - 1  # the header
        seconds = time.perf_counter() - t0
    finally:
        peak = sampler.stop()
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rss_before_mib": before,
        "rss_at_1m_mib": at_million,
        "rss_peak_mib": peak,
    }


def run(side: Side, args) -> bool:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows_benchmark.prepare_data(side, args)
    token = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    found = side.job(JOB, query=args.export_query)
    statement, expected = found["statement"], found["rows"]
    drivers.log(f"{expected:,} rows; {statement[:200]}...")
    info = machine.facts(side.db_url, side.tree)
    path = "/api/v1/resources/transactions/rows/" + (
        "?" + args.export_query if args.export_query else ""
    )
    side.start(SERVERS, workers=1, timeout=3600)
    base = side.servers["main"].base
    pid = worker_pid(side.servers["main"])
    measures = {
        "copy": lambda: copy_run(side.db_url, statement),
        "csv": lambda: http_run(base, path, token, "text/csv", pid),
        "arrow": lambda: http_run(base, path, token, ARROW, pid),
    }
    for accept in ("text/csv", ARROW):  # the worker's imports and first compile, untimed
        http_run(base, "/api/v1/resources/transactions/rows/?transaction_id=TX-00000001", token,
                 accept, pid)  # fmt: skip
    runs: dict[str, list[dict]] = {name: [] for name in measures}
    order = list(measures)
    for round_no in range(1, args.rounds + 1):
        for name in order if round_no % 2 else order[::-1]:
            drivers.wait_quiet(name)
            result = measures[name]()
            result["rows_per_s"] = result["rows"] / result["seconds"]
            result["errors"] = int(result["rows"] != expected)
            runs[name].append(result)
            drivers.log(
                f"round {round_no} {name}: {result['rows']:,} rows in {result['seconds']:.1f} s"
                f" = {result['rows_per_s']:,.0f} rows/s"
                + (
                    f"; worker RSS {result['rss_before_mib']} MiB before, "
                    f"{result['rss_at_1m_mib']} at 1M rows, peak {result['rss_peak_mib']}"
                    if "rss_peak_mib" in result
                    else ""
                )
            )
        order = order[1:] + order[:1]
    side.stop()
    figures = {}
    for name, results in runs.items():
        figures[name] = {
            "rows_per_s": statistics.median(r["rows_per_s"] for r in results),
            "seconds": statistics.median(r["seconds"] for r in results),
            "mib": statistics.median(r["bytes"] for r in results) / 2**20,
            "errors": sum(r["errors"] for r in results),
        }
        if name != "copy":
            figures[name]["rss_growth_mib"] = max(
                r["rss_peak_mib"] - (r["rss_at_1m_mib"] or r["rss_before_mib"]) for r in results
            )
            figures[name]["rss_at_1m_mib"] = max(r["rss_at_1m_mib"] or 0 for r in results)
            figures[name]["rss_peak_mib"] = max(r["rss_peak_mib"] for r in results)
    copy_rps = figures["copy"]["rows_per_s"]
    for f in figures.values():
        f["x_copy"] = f["rows_per_s"] / copy_rps
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    labels = {s.name: s.label for s in SCENARIOS}
    table = report.table(
        ["way", "rows/s", "x COPY", "s", "MiB read", "worker RSS at 1M / peak MiB", "errors"],
        [
            [
                labels[name],
                report.fmt(f["rows_per_s"], ",.0f"),
                report.fmt(f["x_copy"], ".0%"),
                report.fmt(f["seconds"]),
                report.fmt(f["mib"], ",.0f"),
                f"{f['rss_at_1m_mib']} / {f['rss_peak_mib']}" if "rss_peak_mib" in f else "-",
                str(f["errors"]),
            ]
            for name, f in figures.items()
        ],
    )
    markdown = "\n\n".join(
        [
            f"### export ({args.rows:,} transactions, {expected:,} rows exported"
            f"{', query ' + args.export_query if args.export_query else ''}; "
            f"median of {args.rounds} round(s), alternating)",
            machine.one_line(info),
            table,
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "statement": statement,
            "runs": runs,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
