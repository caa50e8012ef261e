"""invoice endpoint (issue 8) on the full UCI retail file.

Run by its own script, bench/legacy/invoice_http.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "invoice"
DESCRIPTION = "invoice endpoint (issue 8) on the full UCI retail file"
SCRIPT = "invoice_http.py"
SCENARIOS = ["invoice (2,000 invoices walked)", "invoice_nolog", "ceiling (scale)"]
TARGETS = ["p50 < 15 ms, one connection's sequential walk of the invoices"]
KNOWN = {
    "duration": "--duration",
    "connections": "--connections",
    "warmup": "--warmup",
    "rounds": "--rounds",
}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
