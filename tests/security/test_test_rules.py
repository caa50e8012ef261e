"""Rules of the test suite itself, checked on its source (AST):

- a test module imports helpers from `tests/support/`, never from another test module
  (`from tests.<app>.test_x import ...`, `from tests.<app> import test_x`);
- nothing sleeps for a fixed time: a test waits on a condition with
  `tests.support.polling.wait_until` (the one place that sleeps between two polls), and
  time that must pass (an expiry, a stale heartbeat) is moved in the data instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
POLLING = TESTS / "support" / "polling.py"


def _sources():
    for path in sorted(TESTS.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def _is_test_module(dotted: str) -> bool:
    return dotted.startswith("tests.") and dotted.rsplit(".", 1)[-1].startswith("test_")


def test_no_test_module_imports_another_test_module():
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [
                f"{path.relative_to(TESTS)}:{node.lineno} {name}"
                for name in names
                if _is_test_module(name)
            ]
    assert not found, "import helpers from tests/support/, not from test modules: " + str(found)


def _calls_sleep(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "sleep"


def test_no_fixed_sleep_outside_the_polling_helper():
    found = [
        f"{path.relative_to(TESTS)}:{node.lineno}"
        for path, tree in _sources()
        if path != POLLING
        for node in ast.walk(tree)
        if _calls_sleep(node)
    ]
    assert not found, "wait with tests.support.polling.wait_until, not sleep(): " + str(found)


def test_the_rules_see_what_they_forbid():
    bad = ast.parse(
        "import time\nfrom tests.ingestion.test_ingestion import tx\n"
        "from tests.accounts import test_restrictions\ntime.sleep(2)\n"
    )
    imports = [n for n in ast.walk(bad) if isinstance(n, ast.ImportFrom)]
    assert _is_test_module("tests.ingestion.test_ingestion")
    assert _is_test_module(f"{imports[1].module}.{imports[1].names[0].name}")
    assert not _is_test_module("tests.support.lake")
    assert any(_calls_sleep(n) for n in ast.walk(bad))
