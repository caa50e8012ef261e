"""Targets and result tables, written once for every benchmark.

A target is a ratio to a limit or to a peer measured in the same run:

    Target("(a) >= 45% of the ceiling", "a", "rps", ">=", 0.45, peer="ceiling")
    Target("(a) p99 < 50 ms", "a", "p99_ms", "<", 50)

`figures` is scenario -> {metric: value} (medians over rounds); a scenario that had any
error fails its targets. `write()` puts `<name>-<stamp>.json` and `.md` in bench/results/.
"""

from __future__ import annotations

import json
import math
import operator
import statistics
import time
from dataclasses import dataclass

from bench.harness.tree import BENCH

RESULTS = BENCH / "results"
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    label: str
    scenario: str
    metric: str
    op: str
    limit: float
    peer: str | None = None  # the value is figures[scenario][metric] / figures[peer][metric]

    def value(self, figures: dict[str, dict]) -> float:
        mine = figures.get(self.scenario, {}).get(self.metric, math.nan)
        if self.peer is None:
            return mine
        theirs = figures.get(self.peer, {}).get(self.metric, math.nan)
        return mine / theirs if theirs else math.nan

    def check(self, figures: dict[str, dict]) -> dict:
        value = self.value(figures)
        errors = figures.get(self.scenario, {}).get("errors", 0) or 0
        if self.peer:
            errors += figures.get(self.peer, {}).get("errors", 0) or 0
        ok = not math.isnan(value) and OPS[self.op](value, self.limit) and not errors
        return {
            "target": self.label,
            "scenario": self.scenario,
            "metric": self.metric,
            "value": value,
            "limit": f"{self.op} {self.limit}" + (f" x {self.peer}" if self.peer else ""),
            "errors": errors,
            "passed": ok,
        }


def check_all(targets: list[Target], figures: dict[str, dict]) -> list[dict]:
    return [
        t.check(figures)
        for t in targets
        if t.scenario in figures and (t.peer is None or t.peer in figures)
    ]


def summarise(runs: dict[str, list[dict]], keys=("rps", "p50_ms", "p90_ms", "p99_ms")) -> dict:
    """scenario -> the median over rounds of each figure; requests and errors summed."""
    figures = {}
    for name, results in runs.items():
        if not results:
            continue
        f = {k: statistics.median(r[k] for r in results) for k in keys if k in results[0]}
        if "server_cpu_ms_per_req" in results[0]:
            f["cpu_ms_per_req"] = statistics.median(r["server_cpu_ms_per_req"] for r in results)
            f["foreign_cpu_max"] = max(r.get("foreign_cpu", 0.0) for r in results)
        f["requests"] = sum(r["requests"] for r in results)
        f["errors"] = sum(sum((r.get("errors") or {}).values()) for r in results)
        figures[name] = f
    return figures


def fmt(value, spec: str = ",.1f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(headers: list[str], rows: list[list[str]]) -> str:
    aligns = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def shown(check: dict, target: Target | None = None) -> str:
    """A target's figure as people read it: x for a multiple of a peer, % for a share, ms."""
    v, limit = check["value"], check["limit"]
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if " x " in limit:
        return f"{v:,.2f}x" if float(limit.split()[1]) >= 1.5 else f"{v:.1%}"
    if check.get("metric", "").endswith("_ms"):
        return f"{v:,.1f} ms"
    return f"{v:.1%}" if abs(float(limit.split()[1])) < 1 else fmt(v)


def targets_table(checks: list[dict]) -> str:
    rows = [
        [
            c["target"],
            shown(c),
            c["limit"],
            ("**PASS**" if c["passed"] else "**FAIL**")
            + (f" ({c['errors']} errors)" if c["errors"] else ""),
        ]
        for c in checks
    ]
    return table(["target", "figure", "limit", "verdict"], rows).replace(
        "| --- | ---: | ---: | ---: |", "| --- | ---: | --- | --- |"
    )


def write(name: str, report: dict, markdown: str) -> tuple[str, str]:
    """bench/results/<name>-<stamp>.json and .md; their paths."""
    RESULTS.mkdir(exist_ok=True)
    stamp = report.get("started") or time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"{name}-{stamp}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown + "\n")
    return str(out.with_suffix(".json")), str(out.with_suffix(".md"))


def publish(name: str, record: dict, markdown: str) -> bool:
    """A scenario's end: its results written (`write`, `benchmark` first), the report
    printed with its verdict and where it went; returns `record["passed"]`."""
    out = write(name, {"benchmark": name, **record}, markdown)
    passed = bool(record["passed"])
    print(
        "\n" + markdown + f"\n\n{'ALL TARGETS PASS' if passed else 'SOME TARGETS FAIL'}; {out[0]}"
    )
    return passed
