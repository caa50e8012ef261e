"""What a benchmark module declares, and the generic driver of its HTTP scenarios.

A benchmark is a module of bench/scenarios/ with:

    NAME, DESCRIPTION
    SCENARIOS = [Http("a", "(a) rows page 1", server="main", token="bench", measures=...),
                 Measure("ingest", "ingestion with and without the index"), ...]
    TARGETS = [Target(...), ...]            # ratios to a limit or a peer of the same run
    COMPARE = ["a", "b", ...]               # the scenarios the A/B mode runs (optional)
    SERVERS = {"main": "benchsite.settings", ...}
    def add_arguments(parser): ...          # its own CLI options (optional)
    def prepare(side, args): ...            # data, tokens, side.paths (per tree/database)
    def run(side, args) -> (report, markdown)   # the whole benchmark, its verdict

`Side` is one tree measured against one database, with its servers, tokens and paths;
the A/B mode (bench/harness/compare.py) makes two and alternates them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from bench.harness import db, drivers
from bench.harness.server import RESULTS, Server
from bench.harness.tree import Tree


@dataclass
class Http:
    name: str
    label: str
    server: str = "main"
    token: str = "bench"
    measures: tuple[str, ...] = ("wrk",)  # "wrk" (throughput, under load), "single" (1 client)
    group: str | None = None  # scenarios of one group alternate in slices (ABBA)
    conditional: bool = False  # sent with If-None-Match: the page's ETag (a 304 run)


@dataclass
class Measure:
    """A scenario that is no HTTP run of `drive()`: an index build, ingestion passes,
    a phase of requests the benchmark makes itself... Its figures are the benchmark's
    own; targets may name it like an `Http` scenario."""

    name: str
    label: str


@dataclass
class Side:
    tree: Tree
    database: str
    tokens: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    walks: dict[str, list[str]] = field(default_factory=dict)  # name -> many paths, walked
    servers: dict[str, Server] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.tree.label

    @property
    def db_url(self) -> str:
        return db.url_of(self.database)

    def job(self, name: str, **kwargs) -> dict:
        return self.tree.job(self.db_url, name, **kwargs)

    def start(
        self,
        settings: dict[str, str],
        names=None,
        workers: int | None = None,
        env: dict | None = None,
        timeout: int | None = None,
    ) -> None:
        """Start the servers named (all of `settings` by default), unless running;
        `env`: more environment for them (e.g. API_STATEMENT_TIMEOUT_MS, LAKE_ROOT);
        `timeout`: gunicorn's worker timeout (120 s), for requests that write files."""
        for name, module in settings.items():
            if (names is None or name in names) and name not in self.servers:
                server = Server(
                    self.tree,
                    self.db_url,
                    name,
                    module,
                    **({"workers": workers} if workers else {}),
                    **({"timeout": timeout} if timeout else {}),
                    env=env,
                )
                self.servers[name] = server.start()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    def base(self, scenario: Http) -> str:
        return self.servers[scenario.server].base

    def idle_of(self, scenario: Http) -> float:
        if scenario.server not in self.idle:
            self.idle[scenario.server] = drivers.idle_latency(
                self.base(scenario), self.tokens[scenario.token]
            )
        return self.idle[scenario.server]

    def check(self, scenario: Http, expect=None) -> dict:
        """The scenario answers 200 with data before it is timed (no benchmark of 401s);
        `expect(body)` may add its own check (a message when wrong)."""
        path = self.paths[scenario.name]
        status, body = drivers.get(self.base(scenario), path, self.tokens[scenario.token], 300)
        results = (body or {}).get("results")
        if status != 200 or body is None or results == []:
            raise SystemExit(
                f"{self.label} {scenario.name}: {path} answered {status}"
                + (f" with {len(results)} rows" if results is not None else "")
            )
        problem = expect(body) if expect else None
        if problem:
            raise SystemExit(f"{self.label} {scenario.name}: {problem}")
        return body

    def measure(self, scenario: Http, kind: str, seconds: int, args, warmup: bool = True) -> dict:
        """One measurement: `wrk` (warm-up, timed run, drain) or `single` (one client).
        A scenario with a walk (`walks[name]`, many paths) requests them in turn."""
        base, token, path = (
            self.base(scenario),
            self.tokens[scenario.token],
            self.paths[scenario.name],
        )
        walk = self.walks.get(scenario.name)
        if kind == "single":
            result = drivers.one_connection(base, walk or [path], token, budget=max(2, seconds / 2))
        else:
            idle = self.idle_of(scenario)
            paths_file = None
            if walk:
                paths_file = RESULTS / f".walk-{self.label}-{scenario.name}-{os.getpid()}.txt"
                paths_file.write_text("".join(f"{p}\n" for p in walk))
            tag = drivers.etag(base, path, token) if scenario.conditional else None
            try:
                if warmup and args.warmup:
                    drivers.wrk(base, path, token, args.warmup, args.connections, paths_file, tag)
                    drivers.drain(base, token, idle)
                result = drivers.wrk(base, path, token, seconds, args.connections, paths_file, tag)
            finally:
                if paths_file:
                    paths_file.unlink(missing_ok=True)
            result["drain_s"] = drivers.drain(base, token, idle)
        result["loadavg_after"] = os.getloadavg()
        return result


def alternate(members: list, seconds: int, slices: int, round_no: int, warm) -> dict[str, list]:
    """Run `members` ([(key, measure(seconds, warm) -> dict)]) in `slices` alternating
    slices of `seconds / slices` each: A B, B A, A B... (and the first slice's order flips
    each round), so that whatever else the machine does hits every member alike.
    key -> the results of its slices."""
    out: dict[str, list] = {key: [] for key, _ in members}
    each = max(1, round(seconds / max(1, slices)))
    for i in range(max(1, slices)):
        order = members if (i + round_no) % 2 == 0 else members[::-1]
        for key, fn in order:
            out[key].append(fn(each, warm if i == 0 else False))
    return out


def combine(results: list[dict]) -> dict:
    """The slices of one member as one result (wrk: merged; single: median p50)."""
    if len(results) == 1:
        return results[0]
    if "duration_us" in results[0]:
        return drivers.merge_slices(results)
    import statistics

    return {
        "requests": sum(r["requests"] for r in results),
        **{k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p90_ms", "p99_ms")},
        "max_ms": max(r["max_ms"] for r in results),
        "rps": statistics.median(r["rps"] for r in results),
        "errors": {},
        "slices": results,
    }


def drive(side: Side, scenarios: list[Http], args) -> dict[str, list[dict]]:
    """The normal mode: `args.rounds` rounds of every scenario, one at a time (each after
    a quiet wait, each drained), the members of a group in alternating slices.
    `<name>` -> one result a round (`<name>:single` for a one-client measure)."""
    runs: dict[str, list[dict]] = {}
    done_groups: set[str] = set()
    for round_no in range(1, args.rounds + 1):
        done_groups.clear()
        for scenario in scenarios:
            if scenario.group and scenario.group in done_groups:
                continue
            members = [s for s in scenarios if scenario.group and s.group == scenario.group]
            members = members or [scenario]
            if scenario.group:
                done_groups.add(scenario.group)
            waited = drivers.wait_quiet(scenario.name)
            for kind in scenario.measures:
                slices = args.slices if len(members) > 1 and kind == "wrk" else 1
                got = alternate(
                    [
                        (
                            m.name,
                            lambda secs, warm, m=m, kind=kind: side.measure(
                                m, kind, secs, args, warm
                            ),
                        )
                        for m in members
                    ],
                    args.duration,
                    slices,
                    round_no,
                    warm=True,
                )
                for name, results in got.items():
                    result = combine(results)
                    result["waited_for_quiet_s"] = waited
                    key = name if kind == "wrk" else f"{name}:{kind}"
                    runs.setdefault(key, []).append(result)
                    drivers.log(
                        f"{side.label} round {round_no} {key}: {result['rps']:,.1f} req/s, "
                        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
                        + (
                            f", server CPU {result['server_cpu_ms_per_req']:.2f} ms/req, other "
                            f"work {result['foreign_cpu']:.0%}"
                            if "foreign_cpu" in result
                            else ""
                        )
                        + (
                            f", {drivers.errors_of(result)} ERRORS"
                            if drivers.errors_of(result)
                            else ""
                        )
                    )
    return runs
