"""The rows endpoint under a restricted grant against the same query unrestricted (issue 9).

    .venv/bin/python bench/rows_restricted.py [--duration 20] [--rounds 3] [--connections 16]

Same database, server and query as bench/rows_http.py's scenario (a)
(`country=FR&amount__gt=100&fields=...`, 10,000,000 transactions; loaded by that
script if missing). Two users: `bench` holds a plain `read` grant on transactions;
`bench_restricted` holds one with `columns` (the six projected ones), a
`row_filter` ({"country": ["FR", "DE"]}) and `masked` (["payment_method"]): every
restriction path runs (column check, row filter in the SQL, pseudonyms). Rounds
alternate the two users on one gunicorn (2 sync workers) with wrk; the medians are
compared. Target: the restricted one at least 85% of the unrestricted req/s.
Writes bench/results/rows_restricted-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import rows_http as rh  # bench/ is sys.path[0] when run as a script

RESTRICTION = {
    "columns": rh.FIELDS.split(","),
    "row_filter": {"country": ["FR", "DE"]},
    "masked": ["payment_method"],
}


def restricted_token() -> str:
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken, Grant
    from datalake.models import Resource

    user, _ = get_user_model().objects.get_or_create(username="bench_restricted")
    Grant.objects.filter(user=user).delete()
    Grant.objects.create(
        user=user, resource=Resource.objects.get(name="transactions"), privilege="read",
        **RESTRICTION,
    )  # fmt: skip
    ApiToken.objects.filter(user=user).delete()
    return ApiToken.issue(user)[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--database", default=rh.DB_NAME)
    args = parser.parse_args(argv)
    rh.configure(args.database)
    rh.RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rh.prepare_database(args.rows)
    rh.django_setup()
    tokens = {"unrestricted": rh.bench_token(), "restricted": restricted_token()}
    info = rh.machine()
    proc = rh.start_gunicorn(rh.RESULTS / f"gunicorn-restricted-{stamp}.log")
    runs: dict[str, list[dict]] = {name: [] for name in tokens}
    try:
        rh.wait_until_up(proc, rh.RESULTS / f"gunicorn-restricted-{stamp}.log")
        for name, token in tokens.items():
            status, body = rh.get(rh.ROWS_PATH, token)
            rows = (body or {}).get("results") or []
            if status != 200 or not rows:
                sys.exit(f"{name}: {status} with {len(rows)} rows")
            if name == "restricted" and not rows[0]["payment_method"].startswith("anon_"):
                sys.exit("restricted: payment_method is not masked")
            rh.log(f"  {name}: 200, {len(rows)} rows, count {body['count']}")
        for round_no in range(1, args.rounds + 1):
            order = list(tokens) if round_no % 2 else list(reversed(tokens))
            for name in order:
                if args.warmup:
                    rh.wrk(rh.ROWS_PATH, tokens[name], args.warmup, args.connections)
                result = rh.wrk(rh.ROWS_PATH, tokens[name], args.duration, args.connections)
                runs[name].append(result)
                rh.log(
                    f"round {round_no} {name}: {result['rps']:.0f} req/s, "
                    f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
                )
    finally:
        rh.stop_gunicorn(proc)
    figures = {
        name: {k: statistics.median(r[k] for r in results) for k in ("rps", "p50_ms", "p99_ms")}
        | {"errors": sum(sum(r["errors"].values()) for r in results)}
        for name, results in runs.items()
    }
    ratio = figures["restricted"]["rps"] / figures["unrestricted"]["rps"]
    passed = ratio >= 0.85 and not any(f["errors"] for f in figures.values())
    report = {
        "benchmark": "rows_restricted",
        "started": stamp,
        "command": "python bench/rows_restricted.py " + " ".join(argv or sys.argv[1:]),
        "rows": args.rows,
        "path": rh.ROWS_PATH,
        "restriction": RESTRICTION,
        "machine": info,
        "runs": runs,
        "figures": figures,
        "ratio": ratio,
        "passed": passed,
    }
    out = rh.RESULTS / f"rows_restricted-{stamp}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print("\n| grant | req/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |")
    for name, f in figures.items():
        print(f"| {name} | {f['rps']:,.0f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} |")
    print(f"\nrestricted / unrestricted: {ratio:.0%} (target >= 85%): "
          f"{'PASS' if passed else 'FAIL'}; details in {out}")  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
