"""search (issue 7): latency on 10M rows, index build, ingestion cost.

Run by its own script, bench/legacy/search_http.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "search"
DESCRIPTION = "search (issue 7): latency on 10M rows, index build, ingestion cost"
SCRIPT = "search_http.py"
SCENARIOS = ["id", "country", "word", "index build", "ingestion with/without the index"]
TARGETS = [
    "p50 < 50 ms and p99 < 200 ms (one client) for id, country, word",
    "the search index costs ingestion <= 30%",
]
KNOWN = {
    "rows": "--rows",
    "database": "--database",
    "duration": "--duration",
    "warmup": "--warmup",
    "rounds": "--rounds",
    "connections": "--connections",
}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
