"""The benchmark's own database: created, migrated by the tree measured, data loaded.

A benchmark never touches a database it did not name: the default is `datalake_bench`
(`--database` to choose another, e.g. one per person sharing a machine).
"""

from __future__ import annotations

import time

import psycopg

from bench.harness.tree import Tree

ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_DATABASE = "datalake_bench"


def url_of(name: str) -> str:
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure(name: str) -> str:
    """Create database `name` if missing; its URL."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")
    return url_of(name)


def drop(name: str) -> None:
    """Drop database `name` (a benchmark's own, that starts afresh), its sessions ended."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def exists(name: str) -> bool:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone())


def prepare(tree: Tree, name: str, rows: int, seed: int = 42) -> bool:
    """Create and migrate (in `tree`'s code) database `name`, then load `rows`
    transactions (bench/load_transactions.py: deterministic, skipped when the table
    already holds exactly them). True if the rows were (re)loaded."""
    from bench.load_transactions import load

    url = ensure(name)
    tree.manage(url, "migrate", "--verbosity", "0")
    return load(url, rows, seed=seed, replace=True)


def sql(url: str, statement: str, params=None, autocommit: bool = True):
    with psycopg.connect(url, autocommit=autocommit) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else cur.rowcount
