"""The metric endpoints (issue 6), against plain SQL over the table.

On the `rows` database (its transactions, loaded if missing), once per database:
the load marked as version 1, a `sales` table derived from 1 in 10 completed
transactions with `product_daily_sales` (the sales endpoint reads those), the metric
aggregates by `manage.py rebuild_metrics` (timed), and fresh rows for "the last
minutes" (one every 100 ms from --fresh-before minutes before now to --fresh-after
after it) merged by the pipeline's merge (versioned merge + aggregates; timed), removed
again at the end. Then per scenario: the first request with no ranking kept (cold,
once), the answer against plain SQL (once), one client's sequential requests, and wrk
at --connections; the same questions as plain SQL (server stopped).

Target (issue 6): each endpoint's p50 < 20 ms for one client making sequential
requests (the wrk figures are for information), and each answer equal to plain SQL.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from decimal import Decimal

import psycopg

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Http, Side, drive
from bench.scenarios import rows

NAME = "metrics"
DESCRIPTION = "metric endpoints (issue 6): one client's p50 < 20 ms; answers = plain SQL"
P50_TARGET_MS = 20.0
FRESH_PREFIX = "BENCH-FRESH-"
LOAD_VERSION_SOURCE = "bench:load_transactions"
CUR = "valid_to IS NULL AND status = 'completed'"
SEVEN_DAYS = ("2026-01-08", "2026-01-14")  # whole UTC days inside the loaded month
EDGES = ("2026-01-08T12:00:00Z", "2026-01-14T12:00:00Z")  # half days at both ends
USER = "U000042"
SERVERS = {"main": "benchsite.settings"}
SCENARIO_NAMES = [
    "last5",
    "user_type_7d",
    "user_type_all",
    "user_type_user",
    "top_all",
    "top_7d",
    "top_edges",
    "sales_7d",
    # The same questions for a partner whose grant holds France's rows only (issue 22:
    # its own aggregates, a scope kept by the metrics follower; built on its first request).
    "r_last5",
    "r_user_type_7d",
    "r_user_type_all",
    "r_top_all",
    "r_top_7d",
    "r_top_edges",
]
PARTNER_FILTER = {"country": ["FR"]}
PARTNER_SQL = " AND country = 'FR'"


def token_of(name: str) -> str:
    return "partner" if name.startswith("r_") else "bench"


SCENARIOS = [
    Http(name, name, token=token_of(name), measures=("single", "wrk")) for name in SCENARIO_NAMES
]
TARGETS = [
    t
    for name in SCENARIO_NAMES
    for t in (
        Target(f"{name}: p50 < 20 ms (one client)", name, "single_p50_ms", "<", P50_TARGET_MS),
        Target(f"{name}: answer = plain SQL", name, "answer_ok", ">=", 1),
    )
]
COMPARE = SCENARIO_NAMES
DEFAULTS = {"rounds": 1}
PREPARED: dict[str, dict] = {}  # database -> what its set-up did


def add_arguments(group) -> None:
    group.add_argument("--sql-runs", type=int, default=3, help="timed runs of each plain SQL")
    group.add_argument("--fresh-before", type=int, default=10, help="minutes of fresh rows")
    group.add_argument("--fresh-after", type=int, default=50, help="minutes of future rows")


# -- data -----------------------------------------------------------------------------


def remove_fresh_rows(db_url: str) -> int:
    """Delete the fresh rows of this or an earlier run and what they added (search entries,
    aggregate buckets, versions), then VACUUM ANALYZE; 0 if there were none.

    Fresh rows are the only rows with valid_from > 1 (inserts of new ids, nothing closed),
    and the only rows dated after January 2026, so their aggregate buckets are theirs."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('transactions') IS NOT NULL").fetchone()[0]:
            return 0
        with conn.transaction():
            n = conn.execute(
                "DELETE FROM transactions WHERE transaction_id LIKE %s", [FRESH_PREFIX + "%"]
            ).rowcount
            if n:
                conn.execute(  # the merge indexed them for search too
                    "DELETE FROM search_entries WHERE resource = 'transactions' AND key LIKE %s",
                    [FRESH_PREFIX + "%"],
                )
                conn.execute("DELETE FROM metrics_minute WHERE minute >= '2026-02-01'")
                conn.execute("DELETE FROM metrics_product_day WHERE day >= '2026-02-01'")
                conn.execute("DELETE FROM metrics_user_type_day WHERE day >= '2026-02-01'")
            conn.execute(
                "DELETE FROM lineage_version v USING datalake_resource r "
                "WHERE v.resource_id = r.id AND r.name = 'transactions' AND v.version > 1"
            )
            conn.execute(
                "UPDATE datalake_resource SET current_version = least(current_version, 1) "
                "WHERE name = 'transactions'"
            )
            if conn.execute("SELECT to_regclass('lake_follower_position')").fetchone()[0]:
                conn.execute(  # the followers stand at the load again (a tree with them)
                    "UPDATE lake_follower_position p SET derived_through_version = "
                    "least(derived_through_version, 1) FROM datalake_resource r "
                    "WHERE r.id = p.resource_id AND r.name = 'transactions'"
                )
            if conn.execute("SELECT to_regclass('metrics_scope')").fetchone()[0]:
                conn.execute("TRUNCATE metrics_scope CASCADE")  # rebuilt on their first use
        if n:  # autovacuum may be off (it is on these machines): no dead rows left behind
            for table in ("transactions", "search_entries", *AGG_TABLES):
                conn.execute(f"VACUUM ANALYZE {table}")
    if n:
        drivers.log(f"removed {n:,} fresh rows (and vacuumed what they left)")
    return n


def forget_derived(db_url: str) -> None:
    """The transactions were (re)loaded: what was derived from the old ones goes."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE sales, product_daily_sales")
        conn.execute(
            "DELETE FROM lineage_version v USING datalake_resource r "
            "WHERE v.resource_id = r.id AND r.name = 'transactions'"
        )
        conn.execute("UPDATE datalake_resource SET current_version = 0 WHERE name = 'transactions'")


def fill_sales(db_url: str) -> dict:
    """A `sales` table for the sales endpoint (skipped when already filled): one line per
    tenth completed transaction, dated by it, the customer its user, 1 or 2 products; then
    `product_daily_sales` with the INSERT of the merge's merge_sales."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        lines = conn.execute("SELECT count(*) FROM sales").fetchone()[0]
        if lines:
            pds = conn.execute("SELECT count(*) FROM product_daily_sales").fetchone()[0]
            return {"lines": lines, "product_daily_sales": pds, "seconds": None}
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute(
                """
                INSERT INTO sales (valid_from, valid_to, sale_date, line, customer_id, products)
                SELECT 1, NULL, d, row_number() OVER (PARTITION BY d ORDER BY id), user_id,
                    CASE WHEN id % 3 = 0
                        THEN ARRAY[product_id, 'P' || lpad((id % 5000)::text, 5, '0')]
                        ELSE ARRAY[product_id] END
                FROM (SELECT id, (timestamp AT TIME ZONE 'UTC')::date AS d, user_id, product_id
                      FROM transactions WHERE valid_to IS NULL AND status = 'completed'
                        AND id % 10 = 0) t
                """
            )
            conn.execute(
                "UPDATE datalake_resource SET current_version = greatest(current_version, 1) "
                "WHERE name = 'sales'"
            )
            conn.execute("TRUNCATE product_daily_sales")
            conn.execute(
                "INSERT INTO product_daily_sales (product_id, date, times_sold) "
                "SELECT p, s.sale_date, count(*) FROM sales s, unnest(s.products) p "
                "WHERE s.valid_to IS NULL GROUP BY p, s.sale_date"
            )
        conn.execute("VACUUM ANALYZE sales")
        conn.execute("VACUUM ANALYZE product_daily_sales")
        lines = conn.execute("SELECT count(*) FROM sales").fetchone()[0]
        pds = conn.execute("SELECT count(*) FROM product_daily_sales").fetchone()[0]
    seconds = time.perf_counter() - t0
    drivers.log(f"sales: {lines:,} lines, product_daily_sales {pds:,} rows in {seconds:.0f} s")
    return {"lines": lines, "product_daily_sales": pds, "seconds": round(seconds, 1)}


AGG_TABLES = ("metrics_product_day", "metrics_user_type_day", "metrics_minute")


def rebuild_metrics(side: Side) -> dict:
    """`manage.py rebuild_metrics` (the tree's command), timed; then VACUUM ANALYZE."""
    t0 = time.perf_counter()
    side.tree.manage(side.db_url, "rebuild_metrics")
    seconds = time.perf_counter() - t0
    with psycopg.connect(side.db_url, autocommit=True) as conn:
        t1 = time.perf_counter()
        for table in AGG_TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
        vacuum = time.perf_counter() - t1
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in AGG_TABLES}
        completed = conn.execute(f"SELECT count(*) FROM transactions WHERE {CUR}").fetchone()[0]
    drivers.log(f"rebuild_metrics: {seconds:.1f} s (VACUUM ANALYZE {vacuum:.1f} s); rows {counts}")
    return {
        "seconds": round(seconds, 2),
        "vacuum_analyze_seconds": round(vacuum, 2),
        "rows": counts,
        "completed_current_transactions": completed,
        "rows_per_s": round(completed / max(seconds, 1e-9)),
    }


def pick_product(db_url: str, first: str, last: str) -> str:
    """The product sold most often over the days (a real, busy product id)."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT product_id FROM product_daily_sales WHERE date BETWEEN %s AND %s "
            "GROUP BY product_id ORDER BY sum(times_sold) DESC, product_id LIMIT 1",
            [first, last],
        ).fetchone()[0]


# -- the scenarios and their plain-SQL answers ----------------------------------------


def money(value) -> str:
    return str(Decimal(value or 0).quantize(Decimal("0.01")))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def day_range(since: str | None, until: str | None) -> tuple[str, list]:
    """SQL condition on `timestamp` for inclusive since/until (a date: its whole day)."""
    parts, params = [], []
    if since:
        parts.append("timestamp >= %s")
        params.append(
            ts(since) if "T" in since else dt.datetime.fromisoformat(since + "T00:00+00:00")
        )
    if until:
        if "T" in until:
            parts.append("timestamp <= %s")
            params.append(ts(until))
        else:
            parts.append("timestamp < %s")
            params.append(dt.datetime.fromisoformat(until + "T00:00+00:00") + dt.timedelta(days=1))
    return (" AND ".join(parts) or "TRUE"), params


def sql_last_minutes(
    conn, window: tuple[dt.datetime, dt.datetime] | None = None, extra: str = ""
) -> dict:
    if window is None:
        to = dt.datetime.now(dt.UTC)
        window = (to - dt.timedelta(minutes=5), to)
    total, n = conn.execute(
        f"SELECT sum(amount_eur), count(*) FROM transactions WHERE {CUR}{extra} "
        "AND timestamp >= %s AND timestamp <= %s",
        list(window),
    ).fetchone()
    return {"total_eur": money(total), "transactions": n}


def sql_user_type(conn, since=None, until=None, user_id=None, extra: str = "") -> dict:
    cond, params = day_range(since, until)
    cond += extra
    if user_id:
        cond += " AND user_id = %s"
        params.append(user_id)
    rows = conn.execute(
        f"WITH g AS (SELECT user_id, transaction_type, sum(amount_eur) t, count(*) n "
        f"FROM transactions WHERE {CUR} AND {cond} GROUP BY 1, 2) "
        "SELECT user_id, transaction_type, t, n, count(*) OVER () FROM g "
        "ORDER BY t DESC, user_id, transaction_type LIMIT 10",
        params,
    ).fetchall()
    return {
        "count": rows[0][4] if rows else 0,
        "results": [
            {"user_id": u, "transaction_type": k, "total_eur": money(t), "transactions": n}
            for u, k, t, n, _ in rows
        ],
    }


def sql_top_products(conn, x: int, since=None, until=None, extra: str = "") -> dict:
    cond, params = day_range(since, until)
    cond += extra
    rows = conn.execute(
        f"SELECT product_id, sum(quantity), count(*) FROM transactions WHERE {CUR} AND {cond} "
        "GROUP BY product_id ORDER BY 2 DESC, 1 LIMIT %s",
        [*params, x],
    ).fetchall()
    return {
        "x": x,
        "results": [
            {"rank": i, "product_id": p, "quantity": int(q), "transactions": n}
            for i, (p, q, n) in enumerate(rows, start=1)
        ],
    }


def sql_product_sales(conn, product_id: str, days: int, until: str) -> dict:
    last = dt.date.fromisoformat(until)
    first = last - dt.timedelta(days=days - 1)
    rows = conn.execute(
        "SELECT d::date, count(x.p) FROM generate_series(%s::date, %s::date, interval '1 day') d "
        "LEFT JOIN (SELECT s.sale_date, p FROM sales s, unnest(s.products) p "
        "WHERE s.valid_to IS NULL AND s.sale_date BETWEEN %s AND %s AND p = %s) x "
        "ON x.sale_date = d::date GROUP BY 1 ORDER BY 1",
        [first, last, first, last, product_id],
    ).fetchall()
    per_day = [{"date": d.isoformat(), "times_sold": n} for d, n in rows]
    return {
        "product_id": product_id,
        "days": days,
        "from": first.isoformat(),
        "until": last.isoformat(),
        "times_sold": sum(d["times_sold"] for d in per_day),
        "per_day": per_day,
    }


def scenarios(product: str) -> dict[str, dict]:
    """name -> path, label, the plain-SQL answer (conn, body) and what of the body to compare.

    `sql(conn, body)`: body is the endpoint's answer (for the window it reports) or None
    when the SQL is only timed."""
    m = "/api/v1/metrics"
    s7, u7 = SEVEN_DAYS
    se, ue = EDGES

    def last_window(body):
        return (ts(body["from"]), ts(body["to"])) if body else None

    return {
        "last5": {
            "path": f"{m}/spent-last-minutes/",
            "label": "spent-last-minutes (5 min, ~2,400 fresh completed rows)",
            "sql": lambda c, body: sql_last_minutes(c, last_window(body)),
            "keys": ("total_eur", "transactions"),
        },
        "user_type_7d": {
            "path": f"{m}/spent-per-user-type/?since={s7}&until={u7}",
            "label": f"spent-per-user-type, 7 whole days ({s7}..{u7}), page 1",
            "sql": lambda c, body: sql_user_type(c, s7, u7),
            "keys": ("count", "results"),
        },
        "user_type_all": {
            "path": f"{m}/spent-per-user-type/",
            "label": "spent-per-user-type, no range (all 30 days), page 1",
            "sql": lambda c, body: sql_user_type(c),
            "keys": ("count", "results"),
        },
        "user_type_user": {
            "path": f"{m}/spent-per-user-type/?user_id={USER}",
            "label": f"spent-per-user-type, user_id={USER}, no range",
            "sql": lambda c, body: sql_user_type(c, user_id=USER),
            "keys": ("count", "results"),
        },
        "top_all": {
            "path": f"{m}/top-products/?x=10",
            "label": "top-products x=10, no range (all 30 days)",
            "sql": lambda c, body: sql_top_products(c, 10),
            "keys": ("x", "results"),
        },
        "top_7d": {
            "path": f"{m}/top-products/?x=10&since={s7}&until={u7}",
            "label": f"top-products x=10, 7 whole days ({s7}..{u7})",
            "sql": lambda c, body: sql_top_products(c, 10, s7, u7),
            "keys": ("x", "results"),
        },
        "top_edges": {
            "path": f"{m}/top-products/?x=10&since={se}&until={ue}",
            "label": "top-products x=10, 6 days + 2 half days (edges from the table)",
            "sql": lambda c, body: sql_top_products(c, 10, se, ue),
            "keys": ("x", "results"),
        },
        "r_last5": {
            "path": f"{m}/spent-last-minutes/",
            "label": "partner (France's rows): spent-last-minutes (5 min)",
            "sql": lambda c, body: sql_last_minutes(c, last_window(body), PARTNER_SQL),
            "keys": ("total_eur", "transactions"),
        },
        "r_user_type_7d": {
            "path": f"{m}/spent-per-user-type/?since={s7}&until={u7}",
            "label": "partner: spent-per-user-type, 7 whole days, page 1",
            "sql": lambda c, body: sql_user_type(c, s7, u7, extra=PARTNER_SQL),
            "keys": ("count", "results"),
        },
        "r_user_type_all": {
            "path": f"{m}/spent-per-user-type/",
            "label": "partner: spent-per-user-type, no range, page 1",
            "sql": lambda c, body: sql_user_type(c, extra=PARTNER_SQL),
            "keys": ("count", "results"),
        },
        "r_top_all": {
            "path": f"{m}/top-products/?x=10",
            "label": "partner: top-products x=10, no range",
            "sql": lambda c, body: sql_top_products(c, 10, extra=PARTNER_SQL),
            "keys": ("x", "results"),
        },
        "r_top_7d": {
            "path": f"{m}/top-products/?x=10&since={s7}&until={u7}",
            "label": "partner: top-products x=10, 7 whole days",
            "sql": lambda c, body: sql_top_products(c, 10, s7, u7, PARTNER_SQL),
            "keys": ("x", "results"),
        },
        "r_top_edges": {
            "path": f"{m}/top-products/?x=10&since={se}&until={ue}",
            "label": "partner: top-products x=10, 6 days + 2 half days",
            "sql": lambda c, body: sql_top_products(c, 10, se, ue, PARTNER_SQL),
            "keys": ("x", "results"),
        },
        "sales_7d": {
            "path": f"{m}/products/{product}/sales/?days=7&until={u7}",
            "label": f"products/{product}/sales days=7 until={u7} (over `sales`)",
            "sql": lambda c, body: sql_product_sales(c, product, 7, u7),
            "keys": ("product_id", "days", "from", "until", "times_sold", "per_day"),
        },
    }


def summary(body: dict) -> str:
    if "total_eur" in body and "minutes" in body:
        return f"{body['transactions']} transactions, {body['total_eur']} EUR"
    if "per_day" in body:
        return f"times_sold {body['times_sold']}"
    if "count" in body:
        first = (body.get("results") or [{}])[0]
        return f"count {body['count']:,}, first {first.get('user_id')} {first.get('total_eur')}"
    first = (body.get("results") or [{}])[0]
    return f"{len(body.get('results') or [])} products, first {first.get('product_id')}"


def check_answers(side: Side, specs: dict[str, dict]) -> dict[str, dict]:
    """Each endpoint's answer against the plain SQL answer; name -> outcome."""
    out = {}
    base = side.servers["main"].base
    with psycopg.connect(side.db_url) as conn:
        for name, spec in specs.items():
            token = side.tokens[token_of(name)]
            status, body = drivers.get(base, spec["path"], token, timeout=300)
            if status != 200 or body is None:
                out[name] = {"ok": False, "status": status}
                drivers.log(f"  {name}: HTTP {status}")
                continue
            expected = spec["sql"](conn, body)
            keys = spec["keys"]
            if body.get("count_is_estimate"):  # a count the body says is an estimate
                keys = tuple(k for k in keys if k != "count")
            got = {k: body.get(k) for k in keys}
            want = {k: expected.get(k) for k in keys}
            out[name] = {"ok": got == want, "status": status}
            if got != want:
                out[name].update(endpoint=got, sql=want)
            drivers.log(
                f"  {name}: {'same as SQL' if got == want else 'DIFFERS from SQL'}, {summary(body)}"
            )
    return out


def cold_requests(side: Side, specs: dict[str, dict]) -> dict[str, float]:
    """Each scenario's first request with no ranking kept (the range rankings emptied):
    what the first reader of a range pays. ms. The first partner scenario also finds no
    scope: it pays the scope's build (metrics.scopes), the others reuse it."""
    out = {}
    base = side.servers["main"].base
    first_partner = True
    with psycopg.connect(side.db_url, autocommit=True) as conn:
        for name, spec in specs.items():
            token = side.tokens[token_of(name)]
            conn.execute("TRUNCATE metrics_range_row, metrics_range_result")
            if name.startswith("r_") and first_partner:
                first_partner = False
                if conn.execute("SELECT to_regclass('metrics_scope')").fetchone()[0]:
                    conn.execute("TRUNCATE metrics_scope CASCADE")
            t0 = time.perf_counter()
            status, _ = drivers.get(base, spec["path"], token, timeout=300)
            out[name] = (time.perf_counter() - t0) * 1000
            drivers.log(f"  {name}: first request {out[name]:,.1f} ms (HTTP {status})")
    return out


def time_sql(db_url: str, specs: dict[str, dict], runs: int) -> dict[str, dict]:
    """Each question as plain SQL: one warm-up, then `runs` timed; the median."""
    out = {}
    with psycopg.connect(db_url) as conn:
        for name, spec in specs.items():
            spec["sql"](conn, None)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                spec["sql"](conn, None)
                times.append((time.perf_counter() - t0) * 1000)
            out[name] = {"median_ms": statistics.median(times), "runs_ms": times}
    return out


# -- the benchmark --------------------------------------------------------------------


def prepare(side: Side, args) -> None:
    """Once per database (the A/B mode's two trees share one): data, sales, aggregates,
    fresh rows (in the side's tree: its rebuild_metrics, its merge). Tokens per tree."""
    done = PREPARED.get(side.database)
    if done is None:
        if db.exists(side.database):
            remove_fresh_rows(db.url_of(side.database))
        rows.PREPARED.discard(side.database)  # the load's answer is needed here
        reloaded = db.prepare(side.tree, side.database, args.rows)
        rows.PREPARED.add(side.database)
        if reloaded:
            forget_derived(side.db_url)
        side.job("mark_load_version", rows=args.rows, source=LOAD_VERSION_SOURCE)
        done = PREPARED[side.database] = {"sales": fill_sales(side.db_url)}
        done["rebuild_metrics"] = rebuild_metrics(side)
        done["fresh"] = side.job(
            "merge_fresh",
            before_min=args.fresh_before,
            after_min=args.fresh_after,
            prefix=FRESH_PREFIX,
        )
        drivers.log(f"fresh rows: {done['fresh']}")
        done["product"] = pick_product(side.db_url, *SEVEN_DAYS)
    side.notes["metrics"] = done
    side.tokens["bench"] = side.job(
        "token",
        username="bench",
        grants=[{"resource": r, "privilege": "read"} for r in ("transactions", "sales")],
    )["token"]
    side.tokens["partner"] = side.job(
        "token",
        username="partner",
        grants=[{"resource": "transactions", "privilege": "read", "row_filter": PARTNER_FILTER}],
    )["token"]
    for name, spec in scenarios(done["product"]).items():
        side.paths[name] = spec["path"]
    for scenario in SCENARIOS:
        scenario.label = scenarios(done["product"])[scenario.name]["label"]


def cleanup(side: Side) -> None:
    if PREPARED.pop(side.database, None) is not None:
        remove_fresh_rows(side.db_url)


def run(side: Side, args) -> bool:
    drivers.require_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    specs = scenarios(side.notes["metrics"]["product"])
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    specs = {s.name: specs[s.name] for s in chosen}
    side.start(SERVERS)
    drivers.log("first requests, no ranking kept (cold)")
    cold = cold_requests(side, specs)
    drivers.log("each answer against plain SQL, once")
    answers = check_answers(side, specs)
    runs = drive(side, chosen, args)
    side.stop()
    drivers.log("plain SQL, server stopped")
    sql = time_sql(side.db_url, specs, args.sql_runs)
    summary_ = report.summarise(runs)
    figures = {}
    for name in specs:
        f = dict(summary_.get(name, {}))
        single = summary_.get(f"{name}:single", {})
        f["single_p50_ms"] = single.get("p50_ms", float("nan"))
        f["errors"] = f.get("errors", 0) + single.get("errors", 0)
        f["cold_ms"] = cold[name]
        f["sql_ms"] = sql[name]["median_ms"]
        f["answer_ok"] = 1 if answers[name]["ok"] else 0
        figures[name] = f
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks)
    rb = side.notes["metrics"]["rebuild_metrics"]
    markdown = "\n\n".join(
        [
            f"### metrics ({args.rows:,} transactions; {args.rounds} round(s), wrk "
            f"{args.duration} s at {args.connections} connections)",
            machine.one_line(info),
            report.table(
                [
                    "scenario",
                    "req/s (wrk)",
                    "p50 ms (wrk)",
                    "p99 ms (wrk)",
                    "1 client p50 ms",
                    "first request, cold, ms",
                    "plain SQL ms",
                    "answer = SQL",
                ],
                [
                    [
                        specs[n]["label"],
                        report.fmt(f.get("rps")),
                        report.fmt(f.get("p50_ms")),
                        report.fmt(f.get("p99_ms")),
                        report.fmt(f["single_p50_ms"]),
                        report.fmt(f["cold_ms"]),
                        report.fmt(f["sql_ms"]),
                        "yes" if f["answer_ok"] else "**NO**",
                    ]
                    for n, f in figures.items()
                ],
            ),
            f"rebuild_metrics: {rb['seconds']:.1f} s for {rb['completed_current_transactions']:,} "
            f"completed rows ({rb['rows_per_s']:,} rows/s)",
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "setup": side.notes["metrics"],
            "paths": {n: s["path"] for n, s in specs.items()},
            "answers": answers,
            "runs": runs,
            "sql": sql,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
