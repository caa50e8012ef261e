"""stream pipeline (issue 5): Kafka consumer throughput, re-push latency.

Run by its own script, bench/legacy/pipeline_throughput.py (see bench/scenarios/_legacy.py).
"""

from bench.scenarios._legacy import module_arguments, run_script

NAME = "pipeline"
DESCRIPTION = "stream pipeline (issue 5): Kafka consumer throughput, re-push latency"
SCRIPT = "pipeline_throughput.py"
SCENARIOS = ["produce", "consume + merge (1 and 2 consumers)", "bare-table COPY limit", "re-push"]
TARGETS = [">= 20,000 messages/s", "re-push, request to processed, p50 < 1 s"]
KNOWN = {}


def add_arguments(group) -> None:
    module_arguments(group, NAME.replace("_", "-"), SCRIPT)


def run(side, args) -> bool:
    return run_script(side, SCRIPT, args, KNOWN, getattr(args, NAME + "_args"))
