"""The benchmark harness holds together (bench/harness, bench/scenarios): no timing here,
only that every benchmark declares what `bench/run.py` and the A/B mode rely on."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import run
from bench.harness.report import Target, check_all, summarise
from bench.harness.scenario import Http, Measure, alternate

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_declares_scenarios_targets_and_a_runner():
    found = run.modules()
    assert set(run.ORDER) == set(found), "bench/run.py ORDER names every benchmark"
    for name, module in found.items():
        assert name == module.NAME and module.DESCRIPTION
        assert module.SCENARIOS and callable(module.run)
        http = [s for s in module.SCENARIOS if isinstance(s, Http)]
        names = {s.name for s in module.SCENARIOS if isinstance(s, Http | Measure)}
        if http:  # on the harness: targets name its scenarios, servers are declared
            assert callable(getattr(module, "prepare", None)) or not getattr(module, "COMPARE", 0)
            assert {s.server for s in http} <= set(module.SERVERS)
            for target in module.TARGETS:
                assert isinstance(target, Target)
                assert target.scenario in names and (target.peer is None or target.peer in names)
        assert set(getattr(module, "COMPARE", [])) <= names
        checked = [t for t in module.TARGETS if isinstance(t, Target)]
        if checked and not http:  # on the harness without HTTP: its targets name its scenarios
            declared = {getattr(s, "name", s) for s in module.SCENARIOS}
            assert {t.scenario for t in checked} <= declared, name


def test_the_a_b_benchmarks_of_issue_18_have_an_a_b_mode():
    found = run.modules()
    for name in ("rows", "rows_restricted", "metrics"):
        assert found[name].COMPARE


def test_a_target_is_a_ratio_to_a_limit_or_to_a_peer_and_errors_fail_it():
    figures = {
        "ceiling": {"rps": 1000.0, "errors": 0},
        "a": {"rps": 600.0, "p99_ms": 40.0, "errors": 0},
        "b": {"rps": 900.0, "p99_ms": 10.0, "errors": 2},
    }
    checks = check_all(
        [
            Target("a share", "a", "rps", ">=", 0.45, peer="ceiling"),
            Target("a p99", "a", "p99_ms", "<", 30.0),
            Target("b share", "b", "rps", ">=", 0.45, peer="ceiling"),
            Target("not measured", "zzz", "rps", ">=", 1.0),
        ],
        figures,
    )
    assert [(c["target"], c["passed"]) for c in checks] == [
        ("a share", True),
        ("a p99", False),
        ("b share", False),  # 2 errors
    ]
    assert math.isclose(checks[0]["value"], 0.6)


def test_summaries_are_medians_over_rounds_with_errors_summed():
    runs = {"a": [{"rps": r, "p50_ms": 1.0, "requests": 10, "errors": {"x": e}}
                  for r, e in ((1.0, 0), (3.0, 1), (2.0, 0))]}  # fmt: skip
    figures = summarise(runs)
    assert figures["a"]["rps"] == 2.0 and figures["a"]["errors"] == 1
    assert figures["a"]["requests"] == 30


def test_alternating_slices_flip_the_order_each_slice_and_each_round():
    seen = []

    def member(key):
        return key, lambda seconds, warm: seen.append((key, seconds, warm)) or {"k": key}

    got = alternate([member("A"), member("B")], seconds=8, slices=4, round_no=1, warm=True)
    assert [k for k, _, _ in seen] == ["B", "A", "A", "B", "B", "A", "A", "B"]
    assert {s for _, s, _ in seen} == {2} and len(got["A"]) == len(got["B"]) == 4
    assert [w for _, _, w in seen] == [True, True] + [False] * 6  # warm-up on the first only


def test_run_lists_the_benchmarks():
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--list"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for name in run.ORDER:
        assert f"\n{name} " in "\n" + done.stdout


@pytest.mark.parametrize("name", ["datalake.settings:DATABASES", "nowhere.at_all:x"])
def test_set_up_jobs_find_modules_in_either_layout(name):
    sys.path.insert(0, str(ROOT / "bench" / "harness"))
    try:
        import child
    finally:
        sys.path.remove(str(ROOT / "bench" / "harness"))
    if name.startswith("nowhere"):
        with pytest.raises(ImportError):
            child.first_of(name, "also.nowhere:y")
    else:
        assert child.first_of("datalake.old_place:DATABASES", name)
