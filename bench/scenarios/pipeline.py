"""Stream pipeline (issue 5): Kafka consumer throughput and re-push latency, against the
broker's and the table's own limits in the same run.

On a database of its own (`<--database>_pipeline`, migrated by the tree measured) and a
local Tansu broker with a fresh topic (bench/scenarios/pipeline_job.py does the
measuring, in the tree's interpreter):

    produce    `--pipeline-args=--messages` messages produced as fast as confluent_kafka can
    consume    read back by a bare consumer (assign() of every partition): the limit
    drain      `manage.py run_pipeline --batch-size B` on that backlog, for each of
               `--batch-sizes`, then each of `--consumers` in one group; until merged
    table      the same rows COPYed into a copy of `transactions` (the table's limit)
    re-push    `repush_one` x `--repushes` with the consumer running: request -> processed

Targets (issue 5): >= 20,000 messages/s (best drain, excluding the group join; and
overall, from process start); re-push p50 < 1 s.
"""

from __future__ import annotations

import argparse
import shlex
import time

from bench.harness import db, drivers, machine, report
from bench.harness.report import Target
from bench.harness.scenario import Side

NAME = "pipeline"
DESCRIPTION = "stream pipeline (issue 5): Kafka consumer throughput, re-push latency"
SCENARIOS = ["produce", "consume", "drain", "table", "re-push", "followers"]
TARGETS = [
    Target(
        ">= 20,000 messages/s, excluding the group join (best drain)",
        "drain",
        "rate_excluding_join",
        ">=",
        20_000.0,
    ),
    Target(
        ">= 20,000 messages/s overall, from process start (best drain)",
        "drain",
        "rate_overall",
        ">=",
        20_000.0,
    ),
    Target("re-push, request to processed, p50 < 1 s", "re-push", "p50_s", "<", 1.0),
    Target(
        "consumers >= 75% of the table's limit (as many COPY streams as consumers)",
        "drain",
        "share_of_table_limit",
        ">=",
        0.75,
    ),
    Target(
        "search and metrics fully caught up after the drain, within 5 s",
        "followers",
        "caught_up_s_after_drain",
        "<=",
        5.0,
    ),
]
JOB = "bench/scenarios/pipeline_job.py"


def add_arguments(group) -> None:
    group.add_argument(
        "--pipeline-args",
        default="",
        metavar="ARGS",
        help="--messages N (1,000,000), --repushes N (50), --batch-sizes 10000,50000, "
        "--consumers 1,2, --poll-experiment S (0.05; 0 skips), --no-profile (no py-spy "
        "drain), --no-table-limit, --no-followers (the consumers alone: no run_followers "
        "beside them), --followers-after (with --no-followers: then the followers alone, "
        "timed until they hold every version), --seed N (5)",
    )


def own_options(extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="--pipeline-args")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repushes", type=int, default=50)
    parser.add_argument("--batch-sizes", default="10000,50000")
    parser.add_argument("--consumers", default="1,2")
    parser.add_argument("--poll-experiment", type=float, default=0.05)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-table-limit", dest="table_limit", action="store_false")
    parser.add_argument("--no-followers", dest="followers", action="store_false")
    parser.add_argument("--followers-after", action="store_true")
    return parser.parse_args(shlex.split(extra or ""))


def figures_of(result: dict) -> dict[str, dict]:
    clean = [d for d in result["drains"] if not d["profiled"]]
    best = max(clean, key=lambda d: d["rate_excluding_join"] or 0)
    best_overall = max(clean, key=lambda d: d["rate_overall"])
    nan = float("nan")
    figures = {
        "produce": {"rate": result["limit"]["produce"]["rate"]},
        "consume": {"rate": result["limit"]["consume"]["rate"]},
        "drain": {  # each figure from its best drain
            "rate_excluding_join": best["rate_excluding_join"] or nan,
            "rate_overall": best_overall["rate_overall"],
            "best": {
                metric: f"{d.get('consumers', 1)} x --batch-size {d['batch_size']}"
                for metric, d in (("rate_excluding_join", best), ("rate_overall", best_overall))
            },
        },
    }
    # Each drain against the table's limit for as many writers (1 stream, or N at once).
    limits = (
        {
            1: result.get("table_limit"),
            result["table_limit_streams"]["streams"]: result["table_limit_streams"],
        }
        if result.get("table_limit_streams")
        else {1: result.get("table_limit")}
    )
    shares = [
        (d["rate_excluding_join"] / limits[d.get("consumers", 1)]["rate"], d)
        for d in clean
        if d["rate_excluding_join"] and limits.get(d.get("consumers", 1))
    ]
    if shares:
        share, d = max(shares, key=lambda pair: pair[0])
        figures["drain"]["share_of_table_limit"] = share
        figures["drain"]["best"]["share_of_table_limit"] = (
            f"{d.get('consumers', 1)} x --batch-size {d['batch_size']}"
        )
    followed = [d for d in clean if d.get("followers")]
    if followed:
        worst = max(followed, key=lambda d: d["followers_caught_up_s_after_drain"] or nan)
        figures["followers"] = {
            "caught_up_s_after_drain": worst["followers_caught_up_s_after_drain"] or nan,
            "label": "the slowest of the drains",
        }
    if result["repush"]:
        first = result["repush"][0]
        p50 = first["request_to_processed_s"].get("p50")
        figures["re-push"] = {
            "p50_s": nan if p50 is None else p50,
            "errors": len(first["failures"]),
            "label": first["label"],
        }
    return figures


def tables(result: dict) -> list[str]:
    p, c = result["limit"]["produce"], result["limit"]["consume"]
    limit = result["limit"]["rate"]
    rows = [
        [
            "broker: produce (confluent_kafka, linger 50 ms)",
            f"{p['messages']:,}",
            f"{p['seconds']:.1f}",
            f"{p['rate']:,}",
            "-",
        ],
        [
            "broker: consume, bare assign() of every partition (**the limit**)",
            f"{c['messages']:,}",
            f"{c['seconds']:.1f}",
            f"{c['rate']:,}",
            "1.00",
        ],
    ]
    for d in result["drains"]:
        label = f"{d.get('consumers', 1)} x run_pipeline --batch-size {d['batch_size']}"
        if d["profiled"]:
            label += " (under py-spy)"
        join = d["seconds_to_assigned"] or 0
        rows += [
            [
                f"{label}: overall, from process start",
                f"{d['messages']:,}",
                f"{d['seconds_total']:.1f}",
                f"{d['rate_overall']:,}",
                f"{d['rate_overall'] / limit:.2f}",
            ],
            [
                f"{label}: excluding start-up + join ({report.fmt(d['seconds_to_assigned'])} s)",
                f"{d['messages']:,}",
                f"{d['seconds_total'] - join:.1f}",
                report.fmt(d["rate_excluding_join"], ",.0f"),
                f"{(d['rate_excluding_join'] or 0) / limit:.2f}",
            ],
            [
                f"{label}: steady (10 %-90 % of the backlog)",
                "",
                "",
                report.fmt(d["rate_steady_10_90"], ",.0f"),
                f"{(d['rate_steady_10_90'] or 0) / limit:.2f}",
            ],
        ]
    best = max(d["rate_excluding_join"] or 0 for d in result["drains"] if not d["profiled"])
    for key, what in (
        (
            "table_limit",
            "COPY of the same rows into a copy of `transactions` (its indexes; "
            "no versions, search, aggregates), {batch:,} a transaction (**the table's limit**)",
        ),
        (
            "table_limit_streams",
            "the same COPY in {streams} streams at once (the table's limit for as many consumers)",
        ),
    ):
        t = result.get(key)
        if t:
            rows += [
                [
                    f"PostgreSQL: {what.format(**t)}",
                    f"{t['rows']:,}",
                    f"{t['seconds']:.1f}",
                    f"{t['rate']:,}",
                    f"{t['rate'] / limit:.2f}",
                ],
                [
                    "best run_pipeline after the join, as a share of it",
                    "",
                    "",
                    f"{best:,.0f}",
                    f"{best / t['rate']:.2f} of it",
                ],
            ]
    lag_rows = []
    for d in result["drains"]:
        if not d.get("followers"):
            continue
        label = f"{d.get('consumers', 1)} x --batch-size {d['batch_size']}"
        for name, phases in d["followers"].items():
            for phase, f in phases.items():
                if f:
                    lag_rows.append(
                        [
                            f"{label}: {name}, {phase.replace('_', ' ')}",
                            f"{f['versions_p50']:.0f} / {f['versions_p99']:.0f} / "
                            f"{f['versions_max']}",
                            f"{f['seconds_p50']:.2f} / {f['seconds_p99']:.2f} / "
                            f"{f['seconds_max']:.2f}",
                        ]
                    )
        lag_rows.append(
            [
                f"{label}: both caught up, after the drain (after the first merge)",
                "",
                f"{report.fmt(d['followers_caught_up_s_after_drain'])} s "
                f"({report.fmt(d['followers_caught_up_s_from_first_merge'])} s)",
            ]
        )
    out = [
        report.table(["what", "messages", "seconds", "messages/s", "ratio to limit"], rows),
        report.table(
            ["re-push (request → processed)", "n", "p50 s", "p90 s", "max s", "broker ack p50 s"],
            [
                [
                    r["label"],
                    f"{r['processed']}/{r['repushes']}",
                    *(str(r["request_to_processed_s"].get(k, "-")) for k in ("p50", "p90", "max")),
                    str(r["request_to_broker_ack_s"].get("p50", "-")),
                ]
                for r in result["repush"]
            ],
        ),
    ]
    if lag_rows:
        out.append(
            report.table(
                ["followers' lag on transactions", "versions p50 / p99 / max",
                 "seconds p50 / p99 / max"],
                lag_rows,
            )
        )  # fmt: skip
    if result.get("profile"):
        out.append(
            report.table(
                ["phase (py-spy, wall time incl. waits)", "share"],
                [[k, f"{v:.1%}"] for k, v in result["profile"]["share"].items()],
            )
        )
    return out


def run(side: Side, args) -> bool:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    own = own_options(args.pipeline_args)
    database = f"{args.database}_pipeline"
    drivers.OWN_DATABASES.add(database)
    db.ensure(database)
    side.tree.manage(db.url_of(database), "migrate", "--noinput", "--verbosity", "0")
    info = machine.facts(db.url_of(database), side.tree)
    result = side.tree.script(db.url_of(database), JOB, vars(own), "PIPELINE_RESULT")
    figures = figures_of(result)
    checks = report.check_all(TARGETS, figures)
    for check in checks:  # which drain was the best
        f = figures[check["scenario"]]
        if "best" in f:
            check["target"] += f" ({f['best'][check['metric']]})"
        elif "label" in f:
            check["target"] += f" ({f['label']})"
    passed = all(c["passed"] for c in checks)
    partitions = result["limit"]["consume"]["partitions"]
    markdown = "\n\n".join(
        [
            f"### pipeline ({own.messages:,} messages on a topic of {partitions} partitions, "
            "auto-created by Tansu)",
            machine.one_line(info),
            *tables(result),
            report.targets_table(checks),
        ]
    )
    return report.publish(
        NAME,
        {
            "started": stamp,
            "options": {**vars(args), **vars(own)},
            "machine": info,
            "result": result,
            "figures": figures,
            "targets": checks,
            "passed": passed,
        },
        markdown,
    )
