"""The benchmarks: one module each, declaring its scenarios and targets (see
bench/harness/scenario.py); `bench/run.py --list` shows them."""
