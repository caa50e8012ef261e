"""The in-process part of `bench/run.py profile_rows`: a set-up job of the harness
(bench/harness/child.py loads it by path and runs it in the measured tree's interpreter,
Django set up with benchsite.settings on the benchmark's database). Imports nothing
from `bench`: what it needs comes as arguments."""

from __future__ import annotations

import cProfile
import io
import pstats
import time


def profile(paths: dict, token: str, requests: int, restricted_token: str | None = None) -> dict:
    """ms per request of each path (Django test client, no HTTP), the SQL of one request
    of (a) with their times, and a cProfile of (a) (the restricted user's when given)."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json")
    runs = [(name, client, path) for name, path in paths.items()]
    if restricted_token:
        restricted = Client(
            HTTP_AUTHORIZATION=f"Token {restricted_token}", HTTP_ACCEPT="application/json"
        )
        runs.append(("a restricted", restricted, paths["a"]))
        client = restricted  # the SQL and the profile below are the restricted request's
    ms = {}
    for name, who, path in runs:
        for _ in range(min(50, requests)):
            status = who.get(path).status_code
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
        t0 = time.perf_counter()
        for _ in range(requests):
            who.get(path)
        ms[name] = (time.perf_counter() - t0) / requests * 1000
    with CaptureQueriesContext(connection) as queries:
        client.get(paths["a"])
    sql = [
        [round(float(q["time"]) * 1000, 2), (q["sql"] or "(prepared statement)")[:150]]
        for q in queries.captured_queries
    ]
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(requests):
        client.get(paths["a"])
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(rf"{settings.BASE_DIR}/(?!\.venv)", 40)
    cumulative = out.getvalue()[:12000]
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
    return {
        "ms_per_request": ms,
        "sql": sql,
        "cumulative": cumulative,
        "tottime": out.getvalue()[:6000],
    }
