"""Delta Sharing (issue 19): a whole table into pandas by the real connector, against the
limit measured in the same run.

    .venv/bin/python bench/run.py sharing [--rows 10000000] [--rounds 3]
        [--sharing-ingest-rows N] [--sharing-skip-ingest] [--sharing-keep]
        [--only version_files]      # (c) alone; --only first,limit,connector,... the loads

Data: `--rows` transactions in the benchmark's database (bench/load_transactions.py, the
loader of the other benchmarks), marked as version 1 of `transactions`. Server: gunicorn
as the harness starts it (2 sync workers, `benchsite.settings`; file URLs are served with
sendfile), with a fresh SHARING_ROOT. Client: `delta-sharing==1.4.2` in its own virtual
environment (`run/venvs/delta-sharing-1.4.2/`, or DELTA_SHARING_VENV; made when missing,
never in .venv: it pins other pyarrow/pandas), run as a subprocess per load
(bench/scenarios/_sharing_client.py) that loads `lake.tables.transactions` into pandas.

    (b) first    the first query of the version (POST .../query: its Parquet files written)
        repeat   the same query again (the files reused), median of 3
    (a) limit    pyarrow reading those same Parquet files from local disk (the snapshot
                 folder under SHARING_ROOT) into one DataFrame, `to_pandas` with the
                 connector's options (date_as_object, no threads, no split blocks); in the
                 connector's environment (its pyarrow and pandas)
        connector `delta_sharing.load_as_pandas(profile#lake.tables.transactions)`
    (d) restricted  the same load by a recipient whose grant has a row filter on country
                 (every country but US) and a masked column (payment_method), alternating
                 with the unrestricted load (the order flips each round)
    (c) ingest   on a copy of the database (CREATE DATABASE ... TEMPLATE): the first query
                 of version 1 (its files, as a live portal has them), then one daily file
                 of `--sharing-ingest-rows` (default rows / 30) through the real ingestion
                 (bench/scenarios/_sharing_job.py: Spark, the merge and its hooks) making
                 version 2, timed; then the first query of version 2 (its files written),
                 timed: the share of the ingestion's time. For information, the same
                 version written in full (version 1's folder hidden, version 2's dropped)

Targets (issue 19): connector >= 50% of the limit's rows/s; writing a version's files
<= 25% of its ingestion's time; the restricted load within 20% of the unrestricted one's
time; and every load gets exactly its rows (masked values pseudonyms).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Measure, Side
from bench.harness.server import Server
from bench.scenarios import rows as rows_benchmark

NAME = "sharing"
DESCRIPTION = "Delta Sharing (issue 19): 10M rows to pandas by the connector vs pyarrow's limit"
SERVERS = {"main": "benchsite.settings"}
SCENARIOS = [
    Measure("first", "(b) first query of a version: its files written"),
    Measure("repeat", "(b) the same query again: files reused"),
    Measure("limit", "(a) pyarrow: the same Parquet files from local disk into pandas"),
    Measure("connector", "(a) delta_sharing.load_as_pandas, unrestricted recipient"),
    Measure("restricted", "(d) the same load, row filter on country + a masked column"),
    Measure("version_files", "(c) a new version's files, as a share of its ingestion"),
]
TARGETS = [
    Target("(a) connector >= 50% of the limit's rows/s", "connector", "rows_per_s", ">=", 0.50,
           peer="limit"),
    Target("(c) a version's files <= 25% of its ingestion time", "version_files", "share", "<=",
           0.25),
    Target("(d) restricted load time within 20% of unrestricted", "restricted", "seconds", "<=",
           1.20, peer="connector"),
    Target("every load: exactly its rows and columns, masks applied", "connector", "rows_ok",
           ">=", 1),
]  # fmt: skip
DEFAULTS = {"rounds": 3}
CONNECTOR = "delta-sharing==1.4.2"
MARKER = ".complete"  # written last, holding CONNECTOR (as tests/support/deltasharing.py)
CLIENT = Path(__file__).with_name("_sharing_client.py")
JOB = "bench/scenarios/_sharing_job.py"
ENDPOINT = "/api/v1/delta-sharing"
TABLE = "lake.tables.transactions"
QUERY = f"{ENDPOINT}/shares/lake/schemas/tables/tables/transactions/query"
KEPT_COUNTRIES = ["FR", "DE", "GB", "ES", "IT", "NL", "BE", "PT", "PL", "SE", "CH"]  # not US
RESTRICTION = {"row_filter": {"country": KEPT_COUNTRIES}, "masked": ["payment_method"]}
SERVER_TIMEOUT = 3600  # a first query writes 10M rows of Parquet in one request


def add_arguments(group) -> None:
    group.add_argument(
        "--sharing-ingest-rows",
        type=int,
        default=None,
        help="(c) rows of the ingested day file (default: --rows / 30)",
    )
    group.add_argument("--sharing-skip-ingest", action="store_true", help="no (c)")
    group.add_argument("--sharing-keep", action="store_true",
                       help="keep SHARING_ROOT folders and (c)'s database copy")  # fmt: skip


# -- the connector's environment ----------------------------------------------------------


def connector_venv(root: Path) -> Path:
    """The Python of the connector's environment (the suite's path: DELTA_SHARING_VENV, else
    run/venvs/delta-sharing-1.4.2/ of the tree), made when missing or incomplete."""
    configured = os.environ.get("DELTA_SHARING_VENV")
    path = Path(configured).resolve() if configured else root / "run/venvs/delta-sharing-1.4.2"
    python, marker = path / "bin" / "python", path / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == CONNECTOR and python.exists():
            return python
        drivers.log(f"making the connector's environment {path} ({CONNECTOR})")
        shutil.rmtree(path, ignore_errors=True)
        base = shutil.which("python3.11") or shutil.which("python3")
        for command in (
            [base, "-m", "venv", str(path)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-input", CONNECTOR],
            [str(python), "-c", "import delta_sharing, pandas, pyarrow"],
        ):  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
            if done.returncode:
                raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
        marker.write_text(CONNECTOR + "\n")
    return python


def client(python: Path, *args: str, timeout: float = 3600) -> dict:
    """One run of _sharing_client.py in the connector's environment; its JSON."""
    done = subprocess.run(
        [str(python), str(CLIENT), *args], capture_output=True, text=True, timeout=timeout
    )
    for line in done.stdout.splitlines():
        if line.startswith("SHARING_CLIENT "):
            return json.loads(line.removeprefix("SHARING_CLIENT "))
    raise RuntimeError(f"client {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")


# -- the protocol, by hand ----------------------------------------------------------------


def call(base: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET, or a POST of `body` as JSON."""
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=SERVER_TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def query(base: str, token: str, body: dict | None = None) -> dict:
    """One POST .../query, timed: seconds, the version, the files listed (count, bytes,
    records when the stats name them)."""
    t0 = time.perf_counter()
    status, headers, raw = call(base, QUERY, token, body or {})
    seconds = time.perf_counter() - t0
    if status != 200:
        raise SystemExit(f"POST {QUERY} answered {status}: {raw[:500]!r}")
    files = [json.loads(x)["file"] for x in raw.splitlines() if x.strip().startswith(b'{"file"')]
    records = 0
    for f in files:
        with contextlib.suppress(ValueError):
            records += json.loads(f.get("stats") or "{}").get("numRecords", 0)
    return {
        "seconds": round(seconds, 3),
        "version": headers.get("Delta-Table-Version") or headers.get("delta-table-version"),
        "files": len(files),
        "bytes": sum(f.get("size", 0) for f in files),
        "records": records,
    }


def write_profile(base: str, token: str, folder: Path, name: str) -> Path:
    status, _, raw = call(base, f"{ENDPOINT}/profile/", token)
    if status != 200:
        raise SystemExit(f"GET {ENDPOINT}/profile/ answered {status}: {raw[:300]!r}")
    profile = json.loads(raw)
    if not profile.get("endpoint", "").startswith(base):
        raise SystemExit(f"the profile names {profile.get('endpoint')}, not {base}{ENDPOINT}")
    path = folder / f"{name}.share"
    path.write_text(json.dumps(profile))
    path.chmod(0o600)
    return path


def parquet_files(root: Path) -> set[Path]:
    return set(root.rglob("*.parquet"))


# -- the parts ----------------------------------------------------------------------------


def prepare(side: Side, args) -> None:
    rows_benchmark.prepare_data(side, args)
    side.notes["marked"] = side.job("mark_load_version", rows=args.rows, source="bench:load")
    for username, extra in (("bench_share", {}), ("bench_share_restricted", RESTRICTION)):
        side.tokens[username] = side.job(
            "token",
            username=username,
            grants=[{"resource": "transactions", "privilege": "read", **extra}],
        )["token"]
    side.notes["counts"] = side.job(JOB + ":counts", countries=KEPT_COUNTRIES)


def quiet(label: str) -> float:
    return drivers.wait_quiet(label)


def loads_part(side: Side, args, python: Path, work: Path) -> dict:
    """(b), (a) and (d) on the benchmark's database, one server, a fresh SHARING_ROOT."""
    sharing_root = work / "sharing"
    sharing_root.mkdir()
    side.start(SERVERS, env={"SHARING_ROOT": str(sharing_root)}, timeout=SERVER_TIMEOUT)
    base = side.servers["main"].base
    token, token_r = side.tokens["bench_share"], side.tokens["bench_share_restricted"]
    profile = write_profile(base, token, work, "unrestricted")
    profile_r = write_profile(base, token_r, work, "restricted")
    out: dict = {"sharing_root": str(sharing_root)}

    quiet("first query")
    before = parquet_files(sharing_root)
    out["first"] = query(base, token)
    snapshot = sorted(parquet_files(sharing_root) - before)
    drivers.log(
        f"  (b) first query: {out['first']['seconds']:.1f} s, version {out['first']['version']}, "
        f"{out['first']['files']} files, {out['first']['bytes'] / 1e6:,.0f} MB, "
        f"{len(snapshot)} new .parquet under SHARING_ROOT"
    )
    repeats = [query(base, token) for _ in range(3)]
    out["repeat"] = {**repeats[0], "seconds": statistics.median(r["seconds"] for r in repeats),
                     "all": [r["seconds"] for r in repeats]}  # fmt: skip
    drivers.log(f"  (b) repeated query: {out['repeat']['all']} s")
    quiet("first restricted query")
    out["first_restricted"] = query(base, token_r)
    drivers.log(f"  (d) first restricted query: {out['first_restricted']['seconds']:.1f} s")

    if not snapshot:  # files written on the first file request, not by the query
        client(python, "load", str(profile), TABLE)
        snapshot = sorted(parquet_files(sharing_root) - before)
    folders = sorted({str(p.parent) for p in snapshot})
    out["snapshot"] = {"files": len(snapshot), "folders": folders,
                       "bytes": sum(p.stat().st_size for p in snapshot)}  # fmt: skip
    list_file = work / "snapshot.txt"
    list_file.write_text("".join(f"{p}\n" for p in snapshot))
    out["versions"] = client(python, "versions")
    # the same limit with the portal's own pyarrow (information: another pyarrow, pandas)
    out["limit_portal"] = client(side.tree.python, "limit", f"@{list_file}")

    members = {
        "limit": lambda: client(python, "limit", f"@{list_file}"),
        "connector": lambda: client(python, "load", str(profile), TABLE),
        "restricted": lambda: client(python, "load", str(profile_r), TABLE),
    }
    runs: dict[str, list[dict]] = {k: [] for k in members}
    for round_no in range(1, args.rounds + 1):
        order = list(members) if round_no % 2 else list(members)[::-1]
        for key in order:
            waited = quiet(f"{key} round {round_no}")
            result = members[key]()
            result.update(waited_for_quiet_s=waited, loadavg_after=os.getloadavg())
            runs[key].append(result)
            drivers.log(
                f"  round {round_no} {key}: {result['rows']:,} rows in {result['seconds']:.1f} s "
                f"({result['rows_per_s']:,} rows/s), peak RSS {result['peak_rss_mb']:,.0f} MB"
            )
    out["runs"] = runs
    side.stop()
    return out


def ingest_part(side: Side, args, work: Path) -> dict:
    """(c) on a copy of the database: v1's files, one day ingested (v2), v2's first query."""
    copy = f"{side.database}_sharing_ingest"
    drivers.OWN_DATABASES.add(copy)
    rows = args.sharing_ingest_rows or max(1, args.rows // 30)
    lake, sharing_root = work / "lake", work / "sharing_ingest"
    lake.mkdir()
    sharing_root.mkdir()
    t0 = time.perf_counter()
    with psycopg.connect(db.ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{side.database}"')
    drivers.log(f"  (c) database copied to {copy} in {time.perf_counter() - t0:.0f} s")
    url = db.url_of(copy)
    env = {"SHARING_ROOT": str(sharing_root), "LAKE_ROOT": str(lake)}
    server = Server(side.tree, url, "ingest", "benchsite.settings", env=env,
                    timeout=SERVER_TIMEOUT)  # fmt: skip
    out: dict = {"database": copy, "rows": rows}
    try:
        server.start()
        token = side.tokens["bench_share"]
        quiet("(c) first query of version 1")
        out["v1_first"] = query(server.base, token)
        drivers.log(f"  (c) version 1's first query: {out['v1_first']['seconds']:.1f} s")
        before = parquet_files(sharing_root)
        quiet("(c) ingestion")
        out["ingest"] = side.tree.job(url, JOB + ":ingest_day", _env=env, rows=rows)
        ing = out["ingest"]
        drivers.log(
            f"  (c) ingestion of {ing['rows_loaded']:,} rows: {ing['seconds']:.1f} s, version "
            f"{ing['version_before']} -> {ing['version']}"
        )
        written_by_ingest = parquet_files(sharing_root) - before
        quiet("(c) first query of the new version")
        out["v2_first"] = query(server.base, token)
        out["v2_repeat"] = query(server.base, token)
        new = parquet_files(sharing_root) - before - written_by_ingest
        earlier = {p.stat().st_ino for p in before}
        linked = {p for p in new if p.stat().st_ino in earlier}  # version 1's, hard-linked
        out["files_written_by_ingestion"] = len(written_by_ingest)
        out["files_of_new_version"] = len(new)
        out["files_linked"] = len(linked)
        out["files_written_by_query"] = len(new - linked)
        out["bytes_written_by_query"] = sum(p.stat().st_size for p in new - linked)
        out["share"] = out["v2_first"]["seconds"] / ing["seconds"]
        drivers.log(
            f"  (c) version {out['v2_first']['version']}'s first query: "
            f"{out['v2_first']['seconds']:.1f} s ({len(new)} files, {len(linked)} linked), "
            f"repeated "
            f"{out['v2_repeat']['seconds']:.2f} s: {out['share']:.0%} of the ingestion"
        )
        out["v2_full"] = full_rewrite(server.base, token, sharing_root, ing["version"])
        out["full_share"] = out["v2_full"]["seconds"] / ing["seconds"]
        drivers.log(
            f"  (c) (info) version {ing['version']} written in full (no earlier snapshot): "
            f"{out['v2_full']['seconds']:.1f} s, {out['full_share']:.0%} of the ingestion"
        )
    finally:
        server.stop()
        if not args.sharing_keep:
            db.drop(copy)
    return out


def full_rewrite(base: str, token: str, sharing_root: Path, version: int) -> dict:
    """The first query of `version` with no earlier snapshot on disk (its files dropped,
    the earlier versions' hidden meanwhile): the whole table from PostgreSQL, what a
    version costs when nobody read the one before (information)."""
    (table,) = [p for p in sharing_root.glob("**/transactions") if (p / f"v{version}").is_dir()]
    shutil.rmtree(table / f"v{version}")  # (the layout's folder: SHARING_ROOT/<format>/...)
    hidden = [p for p in table.glob("v*") if p.is_dir()]
    for path in hidden:
        path.rename(path.with_name("hidden-" + path.name))
    try:
        quiet("(c) full write of the new version")
        return query(base, token)
    finally:
        for path in hidden:
            path.with_name("hidden-" + path.name).rename(path)


# -- the run ------------------------------------------------------------------------------


def med(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def figures_of(side: Side, loads: dict | None, ingest: dict | None) -> dict:
    f: dict = {}
    if ingest:
        f["version_files"] = {"share": ingest["share"]}
    if not loads:
        return f
    runs = loads["runs"]
    counts = side.notes["counts"]
    f.update(
        first={"seconds": loads["first"]["seconds"]},
        repeat={"seconds": loads["repeat"]["seconds"]},
        **{
            k: {"seconds": med(v, "seconds"), "rows_per_s": med(v, "rows_per_s"),
                "rows": v[0]["rows"]}
            for k, v in runs.items()
        },
    )  # fmt: skip
    restricted_sample = runs["restricted"][0]["sample"]
    checks = {
        "connector rows = current rows": all(r["rows"] == counts["current"]
                                             for r in runs["connector"]),
        "limit rows = current rows": all(r["rows"] == counts["current"] for r in runs["limit"]),
        "restricted rows = rows in its filter": all(r["rows"] == counts["in_filter"]
                                                    for r in runs["restricted"]),
        "restricted payment_method masked": str(restricted_sample.get("payment_method", ""))
        .startswith("anon_"),
        "restricted country in its filter": restricted_sample.get("country") in KEPT_COUNTRIES,
        "same columns (connector, restricted, limit)": runs["connector"][0]["columns"]
        == runs["restricted"][0]["columns"]
        and sorted(runs["connector"][0]["columns"]) == sorted(runs["limit"][0]["columns"]),
    }  # fmt: skip
    f["connector"]["rows_ok"] = 1 if all(checks.values()) else 0
    f["connector"]["checks"] = checks
    return f


def loads_markdown(loads: dict, f: dict) -> list[str]:
    v = loads["versions"]
    lim, con, res = f["limit"], f["connector"], f["restricted"]
    snap = loads["snapshot"]
    lp = loads["limit_portal"]
    rows = [
        (f"(a) limit: pyarrow {v['pyarrow']}, local files", lim),
        ("(a) connector, unrestricted", con),
        ("(d) connector, restricted (country filter, masked column)", res),
        (f"(info) limit with the portal's pyarrow {lp.get('pyarrow', '')}".rstrip(), lp),
    ]
    return [
        f"Connector: delta-sharing {v['delta_sharing']} (pandas {v['pandas']}, pyarrow "
        f"{v['pyarrow']}, Python {v['python']}) in its own environment; server: gunicorn, "
        f"2 sync workers. The version's files: {snap['files']} Parquet files, "
        f"{snap['bytes'] / 1e6:,.0f} MB.",
        report.table(
            ["load into pandas", "rows", "seconds", "rows/s", "vs the limit"],
            [
                [
                    label,
                    f"{x['rows']:,}",
                    report.fmt(x["seconds"], ".1f"),
                    report.fmt(x["rows_per_s"], ",.0f"),
                    f"{x['rows_per_s'] / lim['rows_per_s']:.0%}",
                ]
                for label, x in rows
            ],
        ),
        f"(b) The first query of the version (its files written): "
        f"{loads['first']['seconds']:.1f} s; repeated: {loads['repeat']['seconds']:.3f} s "
        f"(median of {loads['repeat']['all']}); the restricted recipient's first query (its "
        f"own files): {loads['first_restricted']['seconds']:.1f} s.",
        f"(d) restricted / unrestricted load time: {res['seconds'] / con['seconds']:.2f} "
        f"({res['rows']:,} rows against {con['rows']:,}; per row: "
        f"{(res['seconds'] / res['rows']) / (con['seconds'] / con['rows']):.2f}).",
        "Checks: "
        + "; ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in f["connector"]["checks"].items()),
    ]


def ingest_markdown(ingest: dict) -> str:
    ing = ingest["ingest"]
    phases = ing["phases"]
    text = (
        f"(c) On a copy of the database: version 1's first query "
        f"{ingest['v1_first']['seconds']:.1f} s; one day file of {ing['rows_loaded']:,} "
        f"rows ingested (Spark, merge {phases.get('merge', 0):.1f} s of which search index "
        f"{phases.get('search_index', 0):.1f} s and metric aggregates "
        f"{phases.get('metrics_aggregates', 0):.1f} s) in {ing['seconds']:.1f} s (version "
        f"{ing['version']}); version {ing['version']}'s first query "
        f"{ingest['v2_first']['seconds']:.1f} s ({ingest['files_of_new_version']} files, "
        f"{ingest['files_linked']} of them version 1's hard-linked; "
        f"{ingest['files_written_by_query']} written, "
        f"{ingest['bytes_written_by_query'] / 1e6:,.0f} MB), repeated "
        f"{ingest['v2_repeat']['seconds']:.2f} s: **{ingest['share']:.0%}** of the "
        "ingestion's time."
    )
    if "v2_full" in ingest:
        text += (
            f" (Information: the same version written in full, with no earlier snapshot on "
            f"disk, {ingest['v2_full']['seconds']:.1f} s = {ingest['full_share']:.0%}.)"
        )
    return text


def markdown_of(args, info: dict, loads: dict | None, ingest: dict | None, f: dict, checks):
    parts = [
        f"### sharing ({args.rows:,} transactions; {args.rounds} rounds of each load, medians)",
        machine.one_line(info),
    ]
    if loads:
        parts += loads_markdown(loads, f)
    if ingest:
        parts.append(ingest_markdown(ingest))
    parts.append(report.targets_table(checks))
    return "\n\n".join(parts)


LOAD_SCENARIOS = {"first", "repeat", "limit", "connector", "restricted"}


def run(side: Side, args) -> bool:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    python = connector_venv(side.tree.root)
    prepare(side, args)
    info = machine.facts(side.db_url, side.tree)
    work = Path(tempfile.mkdtemp(prefix=f"bench_sharing_{os.getpid()}_"))
    drivers.log(f"work folder {work}; connector {python}")
    only = args.only or {s.name for s in SCENARIOS}
    try:
        loads = loads_part(side, args, python, work) if only & LOAD_SCENARIOS else None
        skip = args.sharing_skip_ingest or "version_files" not in only
        ingest = None if skip else ingest_part(side, args, work)
    finally:
        side.stop()
        if not args.sharing_keep:
            shutil.rmtree(work, ignore_errors=True)
    figures = figures_of(side, loads, ingest)
    checks = report.check_all(TARGETS, figures)
    passed = all(c["passed"] for c in checks) and (args.only or len(checks) == len(TARGETS))
    markdown = markdown_of(args, info, loads, ingest, figures, checks)
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": vars(args),
            "machine": info,
            "restriction": RESTRICTION,
            "counts": side.notes["counts"],
            "loads": loads,
            "ingest": ingest,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
