"""The A/B mode: this tree's scenarios against this tree (A) and another ref (B).

    bench/run.py rows rows_restricted metrics --compare 506b6ea [--rounds 3 ...]

B is a detached `git worktree` of the ref; its servers run from its own directory with
its own code (`PYTHONPATH=<B>:bench/harness/site`, `benchsite.settings`: only module
paths both layouts have), its set-up jobs in its own code (bench/harness/child.py). Both
use the same database and data when their migrations are the same files (else B gets
`<database>_b`, migrated by B, loaded with the same deterministic rows). Every measure
runs A and B in alternating slices (A B, B A, ...; the first flips each round), so the
machine's noise hits both; per round the ratio B/A, then the median and the spread
(min-max) of the rounds. Ratios of req/s: B/A > 1 means B is faster; of latencies:
B/A > 1 means B is slower.
"""

from __future__ import annotations

import statistics
import time

from bench.harness import db, drivers, machine, report
from bench.harness.scenario import Side, alternate, combine
from bench.harness.tree import Tree, this_tree


def run(modules: list, ref: str, args) -> int:
    a = this_tree()
    b = Tree.worktree(ref)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    sides: list[Side] = []
    results: dict[str, dict] = {}
    try:
        shared = a.migrations() == b.migrations()
        sides = [Side(a, args.database), Side(b, args.database if shared else f"{args.database}_b")]
        drivers.OWN_DATABASES.update(s.database for s in sides)
        drivers.log(
            f"A/B: A = {a.root} @ {a.commit()}, B = {ref} @ {b.commit()} ({b.root}); "
            + ("one database" if shared else f"migrations differ: B on {sides[1].database}")
        )
        for module in modules:
            for side in sides:
                module.prepare(side, args)
        for database in {side.database for side in sides}:
            # Both databases as clean as each other (autovacuum may be off): dead rows of
            # earlier runs would slow one side's scans, not the code's doing.
            drivers.log(f"VACUUM ANALYZE of {database}")
            db.sql(db.url_of(database), "VACUUM ANALYZE")
        info = machine.facts(sides[0].db_url, a, b)
        for module in modules:
            wanted = [
                s
                for s in module.SCENARIOS
                if s.name in module.COMPARE and (not args.only or s.name in args.only)
            ]
            servers = {s.server for s in wanted}
            for side in sides:
                side.start({n: m for n, m in module.SERVERS.items() if n in servers})
                for scenario in wanted:
                    expect = getattr(module, "expect", lambda *_: None)(side, scenario)
                    side.check(scenario, expect)
            for round_no in range(1, args.rounds + 1):
                for scenario in wanted:
                    drivers.wait_quiet(scenario.name)
                    for kind in scenario.measures:
                        got = alternate(
                            [
                                (
                                    side.label,
                                    lambda secs, warm, side=side, s=scenario, k=kind: side.measure(
                                        s, k, secs, args, warm
                                    ),
                                )
                                for side in sides
                            ],
                            args.duration,
                            args.slices,
                            round_no,
                            warm=True,
                        )
                        key = f"{module.NAME}/{scenario.name}" + (
                            "" if kind == "wrk" else f":{kind}"
                        )
                        entry = results.setdefault(
                            key, {"label": scenario.label, "kind": kind, "A": [], "B": []}
                        )
                        for label, slices in got.items():
                            entry[label].append(combine(slices))
                        ra, rb = entry["A"][-1], entry["B"][-1]
                        drivers.log(
                            f"round {round_no} {key}: A {ra['rps']:,.1f} req/s p50 "
                            f"{ra['p50_ms']:.1f} ms, B {rb['rps']:,.1f} req/s p50 "
                            f"{rb['p50_ms']:.1f} ms: B/A req/s {rb['rps'] / ra['rps']:.2f}"
                        )
            for side in sides:
                side.stop()
    finally:
        for side in sides:
            side.stop()
            for module in modules:
                if hasattr(module, "cleanup"):
                    module.cleanup(side)
        b.close()

    figures = {key: ratios(entry) for key, entry in results.items()}
    markdown = table(figures, ref, info)
    report_ = {
        "benchmark": "compare",
        "started": stamp,
        "modules": [m.NAME for m in modules],
        "ref": ref,
        "options": vars(args) | {"modules": None},
        "machine": info,
        "runs": results,
        "figures": figures,
    }
    json_path, md_path = report.write(
        "compare-" + "-".join(m.NAME for m in modules), report_, markdown
    )
    print()
    print(markdown)
    print(f"\ndetails in {json_path} and {md_path}")
    errors = sum(f["errors"] for f in figures.values())
    return 1 if errors else 0


def ratios(entry: dict) -> dict:
    """Medians of A and B, and B/A per round: median and spread."""

    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in entry[side])

    def per_round(key: str) -> list[float]:
        return [rb[key] / ra[key] for ra, rb in zip(entry["A"], entry["B"], strict=True) if ra[key]]

    out = {"label": entry["label"], "kind": entry["kind"], "rounds": len(entry["A"])}
    for key in ("rps", "p50_ms", "p99_ms"):
        rounds = per_round(key)
        out[key] = {
            "A": med("A", key),
            "B": med("B", key),
            "B/A": statistics.median(rounds) if rounds else float("nan"),
            "B/A rounds": rounds,
            "spread": (min(rounds), max(rounds)) if rounds else None,
        }
    out["errors"] = sum(drivers.errors_of(r) for side in ("A", "B") for r in entry[side])
    return out


def table(figures: dict, ref: str, info: dict) -> str:
    headers = [
        "scenario", "measure", "A req/s", "B req/s", "B/A req/s [spread]",
        "A p50 ms", "B p50 ms", "B/A p50 [spread]", "A p99 ms", "B p99 ms", "B/A p99 [spread]",
        "errors",
    ]  # fmt: skip

    def spread(x):
        if not x["spread"]:
            return "-"
        return f"{x['B/A']:.2f} [{x['spread'][0]:.2f}-{x['spread'][1]:.2f}]"

    rows = []
    for key, f in figures.items():
        rps, p50, p99 = f["rps"], f["p50_ms"], f["p99_ms"]
        rows.append(
            [
                f"{key}: {f['label']}",
                "wrk" if f["kind"] == "wrk" else "1 client",
                report.fmt(rps["A"]),
                report.fmt(rps["B"]),
                spread(rps),
                report.fmt(p50["A"]),
                report.fmt(p50["B"]),
                spread(p50),
                report.fmt(p99["A"]),
                report.fmt(p99["B"]),
                spread(p99),
                str(f["errors"]),
            ]
        )
    return (
        f"A = this tree, B = {ref}. {machine.one_line(info)}\n\n"
        + report.table(headers, rows).replace("| --- | ---: |", "| --- | --- |", 1)
        + "\n\nB/A of req/s below 1: B slower; of latencies above 1: B slower. The rounds' "
        "spread shows the noise (the `ceiling`, the same code in both, is its floor)."
    )
