"""where a rows request's time goes (cProfile, in-process; no target).

Run by its own script, bench/legacy/profile_rows.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "profile_rows"
DESCRIPTION = "where a rows request's time goes (cProfile, in-process; no target)"
SCRIPT = "profile_rows.py"
SCENARIOS = ["ceiling", "ceiling_logged", "a", "c"]
TARGETS = []
KNOWN = {"database": "--database"}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
