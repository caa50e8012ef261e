"""10-min mixed load of 50 clients, then faults (issue 10).

Run by its own script, bench/legacy/load_mixed.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "load_mixed"
DESCRIPTION = "10-min mixed load of 50 clients, then faults (issue 10)"
SCRIPT = "load_mixed.py"
SCENARIOS = ["mixed load", "faults (--load-mixed-args --faults)"]
TARGETS = [
    "0 errors, memory flat under load",
    "faults: clean 503s, recovery by itself, nothing lost",
]
KNOWN = {"rows": "--rows", "duration": "--duration"}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
