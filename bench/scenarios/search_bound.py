"""one search never reads the index into the worker (issue 24.2).

Run by its own script, bench/legacy/search_bound.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "search_bound"
DESCRIPTION = "one search never reads the index into the worker (issue 24.2)"
SCRIPT = "search_bound.py"
SCENARIOS = ["broad prefixes", "statement limit (tight)", "worker memory"]
TARGETS = [
    "broad texts refused (400 query_too_broad) or bounded",
    "the worker RSS flat",
    "past the statement limit 503 query_timeout",
]
KNOWN = {"rows": "--rows"}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
