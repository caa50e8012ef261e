"""Where a rows request's time goes, in-process (cProfile), from outside the app's code.

Against the database `bench/run.py rows` prepares (`--database`, `datalake_bench` by
default; prepared here the same way when missing: migrated, `--rows` transactions). No
HTTP, no gunicorn: the Django test client (a set-up job of the harness, in the measured
tree's interpreter, `benchsite.settings`) with the `bench` user's token, the ceiling,
the logged ceiling, scenario (a) and (c) of `rows`, `--requests` requests each: ms per
request, the SQL statements one request of (a) makes (with their time), then a cProfile
of (a) grouped by the app's own functions. One process, one core: compare ms, not req/s.
No target. Its own options: `--profile-rows-args "--requests 400 --page 1000
--restricted --settings benchsite.settings"`.
"""

from __future__ import annotations

import argparse
import shlex
import time

from bench.harness import drivers, machine, report
from bench.harness.scenario import Side
from bench.harness.tree import BENCH
from bench.scenarios import rows, rows_restricted

NAME = "profile_rows"
DESCRIPTION = "where a rows request's time goes (cProfile, in-process; no target)"
SCENARIOS = ["ceiling", "ceiling_logged", "a", "c", "a restricted (--restricted)"]
TARGETS = []
JOB = str(BENCH / "scenarios" / "_profile_rows_job.py") + ":profile"


def own_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="--profile-rows-args", add_help=False)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--page", type=int, default=1000, help="the page of (c)")
    parser.add_argument("--settings", default="benchsite.settings")
    parser.add_argument(
        "--restricted", action="store_true",
        help="also time (a) as bench_restricted (rows_restricted's grant), show its SQL "
        "and profile it instead of the plain user's",
    )  # fmt: skip
    return parser


def add_arguments(group) -> None:
    group.add_argument(
        "--profile-rows-args", default="", metavar="ARGS",
        help="its own options: --requests N (400), --page N (1000: (c)), --restricted, "
        "--settings MODULE (benchsite.settings)",
    )  # fmt: skip


def run(side: Side, args) -> bool:
    own = own_parser().parse_args(shlex.split(args.profile_rows_args or ""))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows.prepare_data(side, args)
    token = side.job(
        "token", username="bench", grants=[{"resource": "transactions", "privilege": "read"}]
    )["token"]
    restricted = None
    if own.restricted:
        restricted = side.job(
            "token",
            username="bench_restricted",
            grants=[
                {"resource": "transactions", "privilege": "read", **rows_restricted.RESTRICTION}
            ],
        )["token"]
    paths = {
        "ceiling": "/bench/ceiling/",
        "ceiling_logged": "/api/bench/ceiling/",
        "a": rows.ROWS_PATH,
        "c": rows.ROWS_PATH + f"&page={own.page}",
    }
    info = machine.facts(side.db_url, side.tree)
    drivers.log(f"profiling in-process: {own.requests} requests of each of {', '.join(paths)}")
    got = side.job(
        JOB,
        _env={"DJANGO_SETTINGS_MODULE": own.settings, "LOG_LEVEL": "CRITICAL"},
        paths=paths,
        token=token,
        requests=own.requests,
        restricted_token=restricted,
    )
    markdown = "\n\n".join(
        [
            f"### profile_rows ({own.requests} requests each, in-process, {side.database})",
            machine.one_line(info),
            report.table(
                ["path", "ms/request"],
                [[name, report.fmt(ms, ".2f")] for name, ms in got["ms_per_request"].items()],
            ),
            f"SQL of one request of (a): {len(got['sql'])} statements\n\n```\n"
            + "\n".join(f"{ms:6.2f} ms  {sql}" for ms, sql in got["sql"])
            + "\n```",
            "cProfile of (a), the app's own functions by cumulative time:\n\n```\n"
            + got["cumulative"]
            + "\n```",
            "by own time:\n\n```\n" + got["tottime"] + "\n```",
        ]
    )
    out = report.write(
        NAME,
        {
            "benchmark": NAME,
            "started": stamp,
            "options": {**vars(args), "own": vars(own)},
            "machine": info,
            "paths": paths,
            **got,
        },
        markdown,
    )
    print("\n" + markdown + f"\n\n(no target); {out[0]}")
    return True
