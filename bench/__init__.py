"""Benchmarks: `bench/run.py` (see docs/BENCHMARKS.md). Nothing here is part of the product.

- `harness/`: server, database, drivers, machine facts, result tables (written once);
- `scenarios/`: one module a benchmark, declaring its scenarios and targets;
- `load_transactions.py`: the deterministic transactions load every benchmark uses.

The servers' settings are `benchsite.settings` (bench/harness/site/benchsite: the
product's settings plus the reference views, importable from another tree's checkout
too); importing `bench` puts that site on sys.path, so `bench.settings` (the name the
figures of earlier runs quote) is the same module's settings.
"""

import sys
from pathlib import Path

_SITE = str(Path(__file__).resolve().parent / "harness" / "site")
if _SITE not in sys.path:
    sys.path.append(_SITE)
