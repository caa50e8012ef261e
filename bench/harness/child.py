"""Django-side set-up jobs of the benchmarks, run *inside a tree's own interpreter*.

    python bench/harness/child.py <job> '<json kwargs>'     (cwd: the tree's root)

The harness (bench/harness/tree.py `Tree.job`) runs this file by path, with the tree's
root and benchsite on PYTHONPATH, so the job uses the code of the tree it measures:
this tree, or a `git worktree` of another ref in the A/B mode. It imports nothing from
`bench`, and product modules by their path in either layout (before and after commit
76346b3 moved them). Prints one `CHILD_RESULT <json>` line.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import random
import sys
from decimal import Decimal


def first_of(*names: str):
    """The first of `module:attribute` names the tree has (layouts before and after 76346b3)."""
    errors = []
    for name in names:
        module, attribute = name.split(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as error:
            errors.append(f"{name}: {error}")
    raise ImportError("; ".join(errors))


def token(username: str, grants: list[dict]) -> dict:
    """A fresh token of `username`, whose grants become exactly `grants`
    ({"resource", "privilege", and restriction fields: columns, row_filter, masked})."""
    from django.contrib.auth import get_user_model

    from accounts.models import ApiToken, Grant
    from datalake.models import Resource

    user, _ = get_user_model().objects.get_or_create(username=username)
    wanted = []
    for spec in grants:
        spec = dict(spec)
        resource = Resource.objects.get(name=spec.pop("resource"))
        wanted.append((resource, spec.pop("privilege", "read"), spec))
    # The same grants each time (both trees of an A/B run share them): replaced only
    # when they differ, so a token issued by the other tree keeps its grants.
    current = sorted(
        (g.resource_id, g.privilege, g.columns, g.row_filter, g.masked, g.expires_at)
        for g in Grant.objects.filter(user=user)
    )
    want = sorted(
        (r.pk, p, s.get("columns"), s.get("row_filter"), s.get("masked"), None)
        for r, p, s in wanted
    )
    if current != want:
        Grant.objects.filter(user=user).delete()
        for resource, privilege, spec in wanted:
            Grant.objects.create(user=user, resource=resource, privilege=privilege, **spec)
    _token, key = ApiToken.issue(user)
    return {"token": key, "user": username}


def cursor(filter_sql: str, page: int) -> dict:
    """The next_cursor of page `page` (10 rows a page) of the default order, the id of
    the row expected next, and the number of matching rows; built as the endpoint
    builds its next_cursor."""
    from django.db import connection
    from django.http import QueryDict

    resource_entry = first_of(
        "datalake.catalog.selectors:resource_entry", "datalake.api.selectors:resource_entry"
    )
    parse_row_query = first_of(
        "datalake.query.grammar:parse_row_query", "datalake.api.grammar:parse_row_query"
    )
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM transactions WHERE {filter_sql}")
        matching = cur.fetchone()[0]
        cur.execute(
            f"SELECT transaction_id FROM transactions WHERE {filter_sql} "
            "ORDER BY transaction_id OFFSET %s LIMIT 2",
            [max(0, page * 10 - 1)],  # the last row of that page, then the one after it
        )
        ids = [r[0] for r in cur.fetchall()]
    if len(ids) < 2:
        raise SystemExit(f"only {matching:,} rows match the filter: too few for page {page:,}")
    entry = resource_entry("transactions")
    try:  # trees with snapshot walks seal a cursor for its reader and its snapshot
        from django.contrib.auth import get_user_model

        from datalake.query.snapshots import current
    except ImportError:
        current = None
    if current is not None:  # the `bench` user of the token job
        owner = get_user_model().objects.get(username="bench").pk
        query = parse_row_query(entry, QueryDict(), owner=owner)
        token = query.encode_cursor([ids[0]], current(entry).sealed())
    elif hasattr(query := parse_row_query(entry, QueryDict()), "encode_cursor"):
        token = query.encode_cursor([ids[0]])
    else:  # older trees: a function of the grammar module
        encode = first_of("datalake.api.grammar:encode_cursor")
        token = encode([ids[0]], getattr(query, "sealed", False))
    return {"cursor": token, "expected_next": ids[1], "matching": matching}


def mark_load_version(rows: int, source: str) -> dict:
    """The loaded rows carry valid_from = 1: make version 1 the resource's current one, so
    that the next merge is version 2 (else the aggregates would add the rows again)."""
    from django.db import transaction

    from datalake.models import Resource
    from lineage.models import Version

    with transaction.atomic():
        resource = Resource.objects.select_for_update().get(name="transactions")
        if resource.current_version != 0:
            return {"marked": False}
        Version.objects.create(
            resource=resource,
            version=1,
            source=source,
            rows_added=rows,
            rows_changed=0,
            rows_removed=0,
        )
        Resource.objects.filter(pk=resource.pk).update(current_version=1)
        try:  # a tree with followers: the load is not indexed for search (the search
            # benchmarks index their own data), so that follower starts after it; the
            # metrics follower is set by rebuild_metrics
            move_to = first_of("datalake.lake.followers:move_to")
        except ImportError:
            move_to = None
        if move_to is not None:
            move_to("search", "transactions", 1)
    return {"marked": True}


def merge_fresh(before_min: int, after_min: int, prefix: str, step_ms: int = 100, seed: int = 6):
    """One transaction every `step_ms` from now - before_min to now + after_min, merged
    through the pipeline's merge (versioned merge + metric aggregates), in one transaction."""
    import time

    from django.db import transaction

    merge_transaction_rows = first_of(
        "datalake.lake.merge:merge_transaction_rows", "ingestion.merge:merge_transaction_rows"
    )
    rnd = random.Random(seed)
    step = dt.timedelta(milliseconds=step_ms)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(minutes=before_min)
    n = int((before_min + after_min) * 60 / step.total_seconds())
    rows = []
    for i in range(n):
        amount = Decimal(rnd.randrange(100, 50_001)) / 100
        rows.append(
            {
                "line": i + 1,
                "transaction_id": f"{prefix}{i:08d}",
                "user_id": f"U{rnd.randrange(200_000):06d}",
                "timestamp": start + i * step + dt.timedelta(microseconds=rnd.randrange(99_000)),
                "transaction_type": rnd.choice(["online", "in_store", "mobile", "subscription"]),
                "payment_method": rnd.choice(["card", "paypal", "cash"]),
                "country": rnd.choice(["FR", "DE", "GB", "ES"]),
                "product_id": f"P{int(5000 * rnd.random() ** 2):05d}",
                "product_category": "books",
                "quantity": rnd.randint(1, 5),
                "amount": amount,
                "currency": "EUR",
                "amount_eur": amount,
                "status": "completed" if rnd.random() < 0.8 else "pending",
                "customer_rating": None,
            }
        )
    t0 = time.perf_counter()
    with transaction.atomic():
        result = merge_transaction_rows(rows, source="bench:fresh")
    merged = time.perf_counter()
    try:  # a tree with followers: they derive the version (search, metrics), as deployed
        catch_up = first_of("datalake.lake.followers:catch_up")
    except ImportError:  # older trees derived it in the merge
        catch_up = None
    if catch_up is not None:
        catch_up()
    return {
        "rows": n,
        "from": start.isoformat(),
        "to": (start + n * step).isoformat(),
        "version": result.version,
        "added": result.added,
        "merge_seconds": round(merged - t0, 3),
        "followers_seconds": round(time.perf_counter() - merged, 3) if catch_up else None,
    }


def own_job(spec: str):
    """`<file>.py:<function>`: a scenario's own set-up job (e.g. bench/scenarios/
    invoice_setup.py:load_retail), loaded by its path, so that it comes from the harness's
    tree whatever tree is measured (its imports of product code are the measured tree's)."""
    import importlib.util

    path, function = spec.rsplit(":", 1)
    loaded = importlib.util.spec_from_file_location(f"bench_job_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return getattr(module, function)


JOBS = {f.__name__: f for f in (token, cursor, mark_load_version, merge_fresh)}


def main() -> None:
    import django

    django.setup()
    job, kwargs = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    result = (own_job(job) if ".py:" in job else JOBS[job])(**kwargs)
    print("CHILD_RESULT " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
