"""The facts every result records: machine, PostgreSQL, tools, and the code measured."""

from __future__ import annotations

import os
import platform

import psycopg

from bench.harness.tree import Tree, sh


def facts(db_url: str, *trees: Tree) -> dict:
    with psycopg.connect(db_url) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('shared_buffers', 'work_mem', 'autovacuum', 'synchronous_commit')"
            ).fetchall()
        )
    return {
        "cpu": sh("lscpu | sed -n 's/^Model name: *//p'"),
        "nproc": os.cpu_count(),
        "memory": sh("free -h | awk '/^Mem:/ {print $2}'"),
        "kernel": platform.release(),
        "postgresql": pg,
        "postgresql_settings": settings,
        "python": platform.python_version(),
        "wrk": sh("wrk --version 2>&1 | head -1").split(" Copyright")[0],
        "loadavg_before": os.getloadavg(),
        "code": [tree.facts() for tree in trees],
    }


def one_line(info: dict) -> str:
    code = "; ".join(
        f"{c['label']} {c['commit']}"
        + (f" +{c['worktree_changes']} changed" if c["worktree_changes"] else "")
        for c in info["code"]
    )
    return (
        f"{info['cpu']}, {info['nproc']} cores, {info['memory']} RAM, kernel {info['kernel']}, "
        f"PostgreSQL {info['postgresql']}, Python {info['python']}, {info['wrk']}; "
        f"load {info['loadavg_before'][0]:.2f}; code {code}"
    )
