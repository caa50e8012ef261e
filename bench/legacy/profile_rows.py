"""Where a rows request's time goes, in-process (cProfile), from outside the app's code.

    .venv/bin/python bench/legacy/profile_rows.py [--requests 400] [--settings bench.settings]

Against `datalake_bench` (--database) as `bench/run.py rows` left it (run that first). Drives the
Django test client (no HTTP, no gunicorn) with the `bench` user's token: the ceiling,
the logged ceiling, scenario (a) and (c), N requests each, prints ms per request and
the SQL statements one request of (a) makes (with their time), then a cProfile of (a)
grouped by the app's own functions. One process, one core: compare ms, not req/s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parents[1]))
sys.path.insert(0, str(BENCH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--page", type=int, default=1000, help="the page of (c)")
    parser.add_argument("--settings", default="bench.settings")
    parser.add_argument(
        "--database", default="datalake_bench", help="as `bench/run.py rows` left it"
    )
    parser.add_argument(
        "--restricted", action="store_true",
        help="also time (a) as bench_restricted (bench/scenarios/rows_restricted.py's grant), "
        "show its SQL and profile it instead of the plain user's",
    )  # fmt: skip
    args = parser.parse_args()
    os.environ.update(
        DJANGO_SETTINGS_MODULE=args.settings,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{args.database}",
        DEBUG="false",
        LOG_LEVEL="CRITICAL",
    )
    import django

    django.setup()
    import rows_http as rh
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    token = rh.bench_token()
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json")
    paths = {
        "ceiling": "/bench/ceiling/",
        "ceiling_logged": "/api/bench/ceiling/",
        "a": rh.ROWS_PATH,
        "c": rh.ROWS_PATH + f"&page={args.page}",
    }
    runs = [(name, client, path) for name, path in paths.items()]
    if args.restricted:
        from django.contrib.auth import get_user_model

        from accounts.models import ApiToken, Grant
        from bench.scenarios.rows_restricted import RESTRICTION
        from datalake.models import Resource

        user, _ = get_user_model().objects.get_or_create(username="bench_restricted")
        Grant.objects.filter(user=user).delete()
        Grant.objects.create(
            user=user, resource=Resource.objects.get(name="transactions"), privilege="read",
            **RESTRICTION,
        )  # fmt: skip
        restricted = Client(
            HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user)[1]}",
            HTTP_ACCEPT="application/json",
        )
        runs.append(("a restricted", restricted, rh.ROWS_PATH))
        client = restricted  # the SQL and the profile below are the restricted request's
    n = args.requests
    for name, who, path in runs:
        for _ in range(50):
            assert who.get(path).status_code == 200, path
        t0 = time.perf_counter()
        for _ in range(n):
            who.get(path)
        print(f"{name:15s} {(time.perf_counter() - t0) / n * 1000:6.2f} ms/request")

    with CaptureQueriesContext(connection) as queries:
        client.get(rh.ROWS_PATH)
    print(f"\nSQL of one request of (a): {len(queries.captured_queries)} statements")
    for q in queries.captured_queries:
        print(f"  {float(q['time']) * 1000:6.2f} ms  {(q['sql'] or '(prepared statement)')[:150]}")

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        client.get(rh.ROWS_PATH)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(rf"{BENCH.parents[1]}/(?!\.venv)", 40)
    print(out.getvalue()[:12000])
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(20)
    print(out.getvalue()[:6000])


if __name__ == "__main__":
    main()
