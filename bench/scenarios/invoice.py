"""The invoice endpoint (issue 8) on the full UCI retail file.

Its own database `<--database>_retail` (`datalake_bench_retail`), migrated, the whole
UCI file (`online_retail.csv.gz`, 541,909 rows, 25,900 invoices) ingested through the
real path (spark-submit and the versioned merges, a set-up job in the measured tree's
code; skipped when already loaded), a token of the `bench` user holding `read` on
retail_invoices and retail_invoice_items (not staff: the grant checks are part of the
cost). Scenarios (gunicorn, 2 sync workers, `benchsite.settings`; wrk 2 threads):

    ceiling         /bench/ceiling/ (scale: bare DRF view, same auth, 10 fixed rows)
    ceiling_logged  /api/bench/ceiling/ (scale: the same, request-logged)
    invoice         GET /api/v1/invoices/{invoice_no}/ over `--invoices` invoice numbers
                    drawn at random (seeded), each wrk thread walking the list from its
                    own point; also one connection's sequential walk (the verdict)
    invoice_nolog   the same on a second server without the request log (information)

A sample of invoices is checked once first (200, every item, the total against SQL).
Target (issue 8): p50 < 15 ms on one connection's sequential walk (wrk's figures at 16
connections for scale). Its own options: `--invoice-args "--invoices 2000 --seed 42
--lines N"` (`--lines`: only the file's first N lines, for a smoke run).
"""

from __future__ import annotations

import argparse
import gzip
import random
import shlex
import statistics
import time
from decimal import Decimal
from pathlib import Path

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.harness.tree import BENCH, ROOT

NAME = "invoice"
DESCRIPTION = "invoice endpoint (issue 8) on the full UCI retail file"
SERVERS = {"main": "benchsite.settings", "nolog": "benchsite.settings_nolog"}
SCENARIOS = [
    Http("ceiling", "(scale) ceiling: bare DRF view, same auth, 10 fixed rows"),
    Http("ceiling_logged", "(scale) the ceiling under /api/, so request-logged"),
    Http("invoice", "GET /api/v1/invoices/{invoice_no}/", measures=("single", "wrk")),
    Http("invoice_nolog", "(info) the same without the request-log middleware", server="nolog"),
]
TARGETS = [
    Target(
        "p50 < 15 ms, one connection's walk of the invoices", "invoice", "single_p50_ms", "<", 15.0
    ),
]
DEFAULTS = {"rounds": 3}
RESOURCES = ("retail_invoices", "retail_invoice_items")
JOB = str(BENCH / "scenarios" / "_invoice_job.py") + ":load_retail"
# shared/ beside the checkout (/work/shared for /work/main and for /work/wt/<name>).
RETAIL_FILE = next(
    (
        p / "shared/data/online_retail/online_retail.csv.gz"
        for p in ROOT.parents
        if (p / "shared/data/online_retail/online_retail.csv.gz").is_file()
    ),
    Path("/work/shared/data/online_retail/online_retail.csv.gz"),
)
FULL_INVOICES = 25_000  # the whole file has 25,900


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="--invoice-args", add_help=False)
    parser.add_argument("--invoices", type=int, default=2000, help="distinct invoices walked")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lines", type=int, help="only the file's first N lines (smoke run)")
    return parser


def add_arguments(group) -> None:
    group.add_argument(
        "--invoice-args", default="", metavar="ARGS",
        help="its own options: --invoices N (2000 walked), --seed N (42), --lines N (only "
        "the retail file's first N lines: a smoke run)",
    )  # fmt: skip


def retail_file(lines: int | None, lake: Path) -> Path:
    """The UCI file, or a copy of its first `lines` lines in the lake."""
    if not lines:
        return RETAIL_FILE
    out = lake / f"online_retail-first{lines}.csv.gz"
    if not out.exists():
        with gzip.open(RETAIL_FILE, "rt", newline="") as src:
            head = [line for _, line in zip(range(lines + 1), src, strict=False)]
        with gzip.open(out, "wt", newline="") as dst:
            dst.writelines(head)
    return out


def sample_invoices(url: str, count: int, seed: int, whole: bool) -> tuple[list[str], dict]:
    """`count` invoice numbers drawn at random, and the item counts of the sample."""
    rows = db.sql(
        url,
        "SELECT i.invoice_no, count(t.line) FROM retail_invoices i "
        "JOIN retail_invoice_items t ON t.invoice_no = i.invoice_no AND t.valid_to IS NULL "
        "WHERE i.valid_to IS NULL GROUP BY i.invoice_no ORDER BY i.invoice_no",
    )
    if whole and len(rows) < FULL_INVOICES:
        raise SystemExit(f"only {len(rows):,} invoices in {url}: the full file is not loaded")
    if not rows:
        raise SystemExit(f"no invoice in {url}")
    picked = random.Random(seed).sample(rows, min(count, len(rows)))
    items = sorted(n for _, n in picked)
    return [no for no, _ in picked], {
        "invoices_total": len(rows),
        "sampled": len(picked),
        "items_median": statistics.median(items),
        "items_p90": items[int(len(items) * 0.9)],
        "items_max": items[-1],
    }


def check_sample(side: Side, checks: int = 50) -> None:
    """Each checked invoice answers 200 with every item and the total SQL computes."""
    base, token = side.servers["main"].base, side.tokens["bench"]
    numbers = side.notes["numbers"]
    for number in numbers[:checks]:
        status, body = drivers.get(base, f"/api/v1/invoices/{number}/", token, error_body=True)
        if status != 200 or body is None:
            raise SystemExit(f"invoice {number}: answered {status} {body}")
        items, total = db.sql(
            side.db_url,
            "SELECT count(*), round(coalesce(sum(quantity * unit_price), 0), 2) "
            "FROM retail_invoice_items WHERE invoice_no = %s AND valid_to IS NULL",
            [number],
        )[0]
        if len(body["items"]) != items or Decimal(body["total"]) != total:
            raise SystemExit(f"invoice {number}: {len(body['items'])} items, total {body['total']}")
    drivers.log(f"  checked {min(checks, len(numbers))} invoices: items and totals right")


def database_of(args) -> str:
    return f"{args.database}_retail"


def prepare(side: Side, args, own) -> dict:
    lake = Path(f"/tmp/{side.database}_lake")
    lake.mkdir(parents=True, exist_ok=True)
    side.notes["lake"] = str(lake)
    db.ensure(side.database)
    side.tree.manage(side.db_url, "migrate", "--verbosity", "0", env={"LAKE_ROOT": str(lake)})
    path = retail_file(own.lines, lake)
    drivers.log(f"ingesting {path.name} through spark-submit unless loaded (minutes)")
    loaded = side.job(JOB, _env={"LAKE_ROOT": str(lake)}, path=str(path))
    drivers.log(f"  {loaded}")
    side.tokens["bench"] = side.job(
        "token",
        username="bench",
        grants=[{"resource": r, "privilege": "read"} for r in RESOURCES],
    )["token"]
    numbers, sample = sample_invoices(side.db_url, own.invoices, own.seed, not own.lines)
    side.notes["numbers"] = numbers
    paths = [f"/api/v1/invoices/{n}/" for n in numbers]
    side.walks.update(invoice=paths, invoice_nolog=paths)
    side.paths.update(
        ceiling="/bench/ceiling/",
        ceiling_logged="/api/bench/ceiling/",
        invoice=paths[0],
        invoice_nolog=paths[0],
    )
    return {"file": str(path), "load": loaded, "sample": sample}


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    own = own_parser().parse_args(shlex.split(args.invoice_args or ""))
    side.database = database_of(args)
    drivers.OWN_DATABASES.add(side.database)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = prepare(side, args, own)
    info = machine.facts(side.db_url, side.tree)
    side.start(SERVERS, env={"LAKE_ROOT": side.notes["lake"]})
    for scenario in SCENARIOS:
        if scenario.name.startswith("ceiling"):
            side.check(scenario)
    check_sample(side)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    runs = drive(side, chosen, args)
    side.stop()
    figures = report.summarise(runs)
    for name in list(figures):
        if name.endswith(":single"):
            single = figures.pop(name)
            figures.setdefault(name.split(":")[0], {}).update(
                single_p50_ms=single["p50_ms"], single_p99_ms=single["p99_ms"]
            )
    checks = report.check_all(TARGETS, figures)
    passed = bool(checks) and all(c["passed"] for c in checks)
    labels = {s.name: s.label for s in SCENARIOS}
    sample = data["sample"]
    markdown = "\n\n".join(
        [
            f"### invoice ({Path(data['file']).name}; {sample['sampled']:,} of "
            f"{sample['invoices_total']:,} invoices walked, items per invoice: median "
            f"{sample['items_median']}, p90 {sample['items_p90']}, max {sample['items_max']}; "
            f"{args.rounds} round(s) of {args.duration} s, {args.connections} connections)",
            machine.one_line(info),
            report.table(
                [
                    "scenario",
                    "1 conn. p50 ms",
                    "1 conn. p99 ms",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "server CPU ms/req",
                    "errors",
                ],
                [
                    [
                        labels[name],
                        report.fmt(f.get("single_p50_ms")),
                        report.fmt(f.get("single_p99_ms")),
                        report.fmt(f.get("rps"), ",.0f"),
                        report.fmt(f.get("p50_ms")),
                        report.fmt(f.get("p99_ms")),
                        report.fmt(f.get("cpu_ms_per_req"), ".2f"),
                        str(f.get("errors", 0)),
                    ]
                    for name, f in figures.items()
                ],
            ),
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": {**vars(args), "own": vars(own)},
            "database": side.database,
            "machine": info,
            **data,
            "runs": runs,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
