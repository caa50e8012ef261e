"""ingestion (issue 4): the real path vs COPY; whole retail files.

Run by its own script, bench/legacy/ingest_throughput.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "ingest"
DESCRIPTION = "ingestion (issue 4): the real path vs COPY; whole retail files"
SCRIPT = "ingest_throughput.py"
SCENARIOS = ["real path (30 daily files)", "COPY limit", "retail files, whole"]
TARGETS = ["real path >= 50% of COPY rows/s", "each whole real retail file < 90 s"]
KNOWN = {"rows": "--rows"}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
