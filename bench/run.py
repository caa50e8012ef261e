#!/usr/bin/env python
"""Run the benchmarks: all of them, or some by name; or A/B against another ref.

    .venv/bin/python bench/run.py --list
    .venv/bin/python bench/run.py                       # every benchmark (make bench)
    .venv/bin/python bench/run.py rows [--rows 10000000 --duration 20 --rounds 3 ...]
    .venv/bin/python bench/run.py rows rows_restricted metrics --compare 506b6ea

Each benchmark is a module of bench/scenarios/ (its scenarios, targets, options); the
harness (bench/harness/) starts and stops the servers, prepares the database, drives
wrk or one client, records the machine and writes bench/results/<name>-<stamp>.json
and .md. Exit status: 0 when every target passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import pkgutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import scenarios as scenarios_package  # noqa: E402
from bench.harness import db, drivers  # noqa: E402
from bench.harness.scenario import Side  # noqa: E402
from bench.harness.tree import this_tree  # noqa: E402

# The order of `make bench`: the quick HTTP ones first, the long ones last.
ORDER = [
    "rows",
    "rows_restricted",
    "quota",
    "metrics",
    "invoice",
    "search",
    "search_bound",
    "ingest",
    "spark_cluster",
    "small_files",
    "pipeline",
    "load_mixed",
    "profile_rows",
    "sharing",
    "audit",
    "conditional",
    "guard",
    "export",
    "replica",
]


def modules() -> dict:
    found = {}
    for info in pkgutil.iter_modules(scenarios_package.__path__):
        module = importlib.import_module(f"bench.scenarios.{info.name}")
        if hasattr(module, "NAME"):
            found[module.NAME] = module
    return dict(sorted(found.items(), key=lambda kv: ([*ORDER, kv[0]]).index(kv[0])))


def parser_for(found: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--compare", metavar="REF", help="A/B: this tree against REF")
    common = parser.add_argument_group("common options (a benchmark's default when not given)")
    common.add_argument("--rows", type=int, help="transactions loaded (default 10,000,000)")
    common.add_argument("--duration", type=int, help="seconds of each timed run (20)")
    common.add_argument("--warmup", type=int, help="seconds of warm-up per scenario (5)")
    common.add_argument("--rounds", type=int, help="rounds, medians taken")
    common.add_argument("--connections", type=int, help="wrk connections (16)")
    common.add_argument("--slices", type=int, help="alternating slices of a group / of A and B")
    common.add_argument("--database", help=f"the benchmark's own database ({db.DEFAULT_DATABASE})")
    common.add_argument(
        "--only",
        type=lambda v: set(v.split(",")),
        default=None,
        help="comma-separated scenarios, for a quick look (targets of others not checked)",
    )
    common.add_argument("--quiet", type=float, default=0.15, help="wait for other work below this")
    common.add_argument("--quiet-limit", type=float, default=600, help="seconds of that wait, most")
    for name, module in found.items():
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser.add_argument_group(f"{name} options"))
    return parser


COMMON_DEFAULTS = {
    "rows": 10_000_000,
    "duration": 20,
    "warmup": 5,
    "rounds": 1,
    "connections": 16,
    "slices": 4,
    "database": db.DEFAULT_DATABASE,
}


def args_for(module, args: argparse.Namespace) -> argparse.Namespace:
    """The options as given, else the benchmark's own default, else the common one."""
    out = copy.copy(args)
    for key, value in {**COMMON_DEFAULTS, **getattr(module, "DEFAULTS", {})}.items():
        if getattr(out, key, None) is None:
            setattr(out, key, value)
    return out


def listing(found: dict) -> str:
    lines = []
    for name, module in found.items():
        lines.append(f"{name:16} {module.DESCRIPTION}")
        scenarios = ", ".join(getattr(s, "name", s) for s in module.SCENARIOS)
        lines.append(f"{'':16}   scenarios: {scenarios}")
        for target in module.TARGETS:
            lines.append(f"{'':16}   target: {getattr(target, 'label', target)}")
        if getattr(module, "COMPARE", None):
            lines.append(f"{'':16}   A/B (--compare): {', '.join(module.COMPARE)}")
    return "\n".join(lines)


def _raise_exit(signum, _frame):
    raise SystemExit(128 + signum)  # so that every `finally` stops its servers


def main(argv=None) -> int:
    found = modules()
    parser = parser_for(found)
    args = parser.parse_args(argv)
    args.given = {k for k in COMMON_DEFAULTS if getattr(args, k) is not None}
    if args.list:
        print(listing(found))
        return 0
    unknown = [n for n in args.names if n not in found]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)}; bench/run.py --list")
    chosen = [found[n] for n in (args.names or found)]
    signal.signal(signal.SIGTERM, _raise_exit)
    drivers.QUIET["threshold"], drivers.QUIET["limit"] = args.quiet, args.quiet_limit
    if args.compare:
        from bench.harness import compare

        missing = [m.NAME for m in chosen if not getattr(m, "COMPARE", None)]
        if missing:
            parser.error(f"no A/B mode for {', '.join(missing)}")
        drivers.require_wrk()
        return compare.run(chosen, args.compare, args_for(chosen[0], args))
    status = 0
    for module in chosen:
        margs = args_for(module, args)
        drivers.log(f"== {module.NAME}: {module.DESCRIPTION}")
        side = Side(this_tree(), margs.database)
        drivers.OWN_DATABASES.add(margs.database)
        try:
            passed = module.run(side, margs)
        finally:
            side.stop()
            if hasattr(module, "cleanup"):
                module.cleanup(side)
        status = status or (0 if passed else 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
