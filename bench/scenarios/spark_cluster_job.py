"""The Django side of the `spark_cluster` benchmark (bench/scenarios/spark_cluster.py), run in
the interpreter of the tree measured:

    python bench/scenarios/spark_cluster_job.py '<json options>'    (cwd: the tree's root;
        DATABASE_URL, LAKE_ROOT and DJANGO_SETTINGS_MODULE set by the harness)

The `ingest` benchmark's daily files (bench/scenarios/ingest_job.py: same generator, same
seed), then, for `local[*]` and for a standalone cluster of `--workers` workers started
here (scripts/spark_cluster.py), each on emptied tables:

    fixed    a 100-line file staged by Spark alone: a job's start (JVMs, executors)
    spark    every file staged by one spark-submit, no merge: Spark's own throughput
    real     the real path (`ingestion_runs_execute`, what `ingestion.run_batch` runs):
             one spark-submit for the files, each merged as soon as it is staged

with the CPU seconds each side used (sampled from /proc: the job's driver, the cluster's
executors and daemons, PostgreSQL's processes, this Django process). Prints one
`CLUSTER_RESULT <json>` line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest_job  # the ingest benchmark's data and reset, in this folder

from scripts.spark_cluster import LocalCluster

TICKS = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------- CPU


def _stat(pid: int) -> tuple[int, int, float] | None:
    """(parent, start time, CPU seconds used) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / TICKS


class CpuSampler:
    """CPU seconds of the processes under each root (a category each), sampled every
    `interval` s: each process's last sample, less what it had used when the block began
    (for those already running then). A process that lives less than `interval` is missed."""

    def __init__(self, roots: dict, interval: float = 0.5):
        self.roots, self.interval = roots, interval
        self.baseline: dict[tuple[int, int], float] = {}
        self.last: dict[tuple[int, int], tuple[str, float]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _category(self, pid: int, stats: dict) -> str | None:
        for _ in range(64):  # up the tree until a root
            for category, roots in self.roots.items():
                if pid in roots:
                    return category
            if pid <= 1 or pid not in stats:
                return None
            pid = stats[pid][0]
        return None

    def _sample(self) -> dict[tuple[int, int], tuple[str, float]]:
        stats = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _stat(int(entry.name))):
                stats[int(entry.name)] = stat
        seen = {}
        for pid, (_parent, started, cpu) in stats.items():
            category = self._category(pid, stats)
            if category is not None:
                seen[(pid, started)] = (category, cpu)
        return seen

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.last.update(self._sample())

    def __enter__(self) -> CpuSampler:
        self.baseline = {key: cpu for key, (_c, cpu) in self._sample().items()}
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join()
        self.last.update(self._sample())

    def seconds(self) -> dict[str, float]:
        out = dict.fromkeys(self.roots, 0.0)
        for key, (category, cpu) in self.last.items():
            out[category] += cpu - self.baseline.get(key, 0.0)
        return {k: round(v, 1) for k, v in out.items()}


def postmaster_pid() -> int:
    directory = ingest_job.sql("SHOW data_directory")[0][0][0]
    return int(Path(directory, "postmaster.pid").read_text().splitlines()[0])


@contextlib.contextmanager
def measured(cluster: LocalCluster | None):
    """Wall time and CPU seconds of the block: `spark_driver` (this process's children:
    spark-submit, and in local mode its executors' Python workers), `spark_cluster`
    (the cluster's workers, executors and their Python workers, the master),
    `postgresql` (every backend of the server), `django` (this process)."""
    # First match wins, from each process up: the cluster's daemons are children of this
    # process too (it started them), so their trees are looked for before the driver's.
    roots = {
        "spark_cluster": [p.pid for p in [cluster.master, *cluster.worker_processes]]
        if cluster
        else [],
        "spark_driver": _ChildrenOf(os.getpid()),
        "postgresql": [postmaster_pid()],
    }
    own = resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {}
    t0 = time.perf_counter()
    with CpuSampler(roots) as sampler:
        yield out
    out["seconds"] = round(time.perf_counter() - t0, 3)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = sampler.seconds()
    cpu["django"] = round(after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime, 1)
    out["cpu_seconds"] = cpu
    out["load1"] = float(Path("/proc/loadavg").read_text().split()[0])


class _ChildrenOf(list):
    """A root set matching the children of `pid`, not `pid` itself (the Django process
    is measured by getrusage)."""

    def __init__(self, pid: int):
        super().__init__()
        self.pid = pid

    def __contains__(self, other) -> bool:
        stat = _stat(other)
        return other != self.pid and stat is not None and stat[0] == self.pid


# --------------------------------------------------------------------------- phases


def stage_only(paths: list[str], lines: list[int]) -> dict:
    """Every file staged by one spark-submit (Spark's whole job: read, validate, dedup,
    COPY into a stage per file), nothing merged; each stage dropped as it comes."""
    from ingestion.daily import services
    from ingestion.daily.spark import run_spark_jobs
    from ingestion.rates import RateTable
    from ingestion.sources import SOURCES

    work = Path(os.environ["LAKE_ROOT"]) / "work" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    rates = work / "rates.json"
    rates.write_text(json.dumps(RateTable.from_database().as_data()))
    jobs = []
    for i, path in enumerate(paths):
        stage = f"ingest_stage_bench_{i}"
        services._drop_stage(stage)
        services._create_stage(stage, SOURCES["transactions"])
        jobs.append({"source": "transactions", "input": path, "stage": stage,
                     "rates": str(rates), "run-id": i, "header": "", "options": "{}"})  # fmt: skip
    results = {}
    for run_id, result in run_spark_jobs(jobs, services._dsn(), work, work / "spark.log"):
        assert not isinstance(result, Exception), (run_id, result)
        assert result["rows_staged"] == lines[run_id], (run_id, result)
        results[run_id] = result
        services._drop_stage(jobs[run_id]["stage"])
    facts = results[len(paths) - 1]
    return {"spark_master": facts["spark_master"], "spark_executors": facts["spark_executors"]}


def one_mode(name: str, master: str, cluster, files, rate_days, real: bool) -> dict:
    from django.conf import settings

    settings.SPARK_MASTER = master
    out: dict = {"mode": name, "master": master}
    calib = Path(os.environ["LAKE_ROOT"]) / "calib" / f"{name}.jsonl"
    calib.parent.mkdir(parents=True, exist_ok=True)
    with open(files[0]["jsonl"], "rb") as src:
        calib.write_bytes(b"".join(next(src) for _ in range(100)))
    ingest_job.reset_state(rate_days)
    with measured(cluster) as fixed:
        stage_only([str(calib)], [100])
    out["fixed"] = fixed
    say(f"  {name}: a 100-line job in {fixed['seconds']:.1f} s")

    ingest_job.reset_state(rate_days)
    with measured(cluster) as spark:
        spark.update(stage_only([f["jsonl"] for f in files], [f["lines"] for f in files]))
    rows = sum(f["lines"] for f in files)
    spark.update(rows=rows, rows_per_s=round(rows / spark["seconds"]))
    out["spark"] = spark
    say(
        f"  {name}: Spark alone, {len(files)} files in {spark['seconds']:.1f} s "
        f"({spark['spark_executors']} executors); CPU s {spark['cpu_seconds']}"
    )

    if real:
        ingest_job.reset_state(rate_days)
        ingest_job.PHASES.clear()
        with measured(cluster) as path:
            path.update(ingest_job.bench_ingest(files))
        path.pop("files", None)
        out["real"] = path
        say(f"  {name}: real path in {path['seconds']:.1f} s; CPU s {path['cpu_seconds']}")
    return out


# --------------------------------------------------------------------------- main


def main(options: dict) -> dict:
    rows, days = options["rows"], options["days"]
    lake = Path(os.environ["LAKE_ROOT"])
    lake.mkdir(parents=True, exist_ok=True)
    result: dict = {"rows": rows, "days": days, "workers": options["workers"]}
    cluster = None
    try:
        t0 = time.perf_counter()
        files = ingest_job.generate(lake, rows, days, options["seed"])
        shutil.rmtree(lake / "copy_csv", ignore_errors=True)  # the ingest bench's COPY input
        size = sum(os.path.getsize(f["jsonl"]) for f in files)
        result["jsonl_bytes"] = size
        say(
            f"generated {rows:,} rows in {len(files)} files ({size / 1e6:.0f} MB JSONL) "
            f"in {time.perf_counter() - t0:.0f} s"
        )
        import django

        django.setup()
        from django.conf import settings

        ingest_job.install_timers()
        result["settings"] = {
            "SPARK_DRIVER_MEMORY": settings.SPARK_DRIVER_MEMORY,
            "SPARK_SUBMIT_CONF": settings.SPARK_SUBMIT_CONF,
            "database": settings.DATABASES["default"]["NAME"],
        }
        first = ingest_job.FIRST_DAY
        rate_days = [first + dt.timedelta(days=i) for i in range(-3, days + 1)]
        modes = []
        for mode in options["order"].split(","):
            if mode == "local":
                modes.append(one_mode("local", "local[*]", None, files, rate_days, options["real"]))
                continue
            cluster = LocalCluster(
                options["workers"], options["cores"], options["memory"],
                work_dir=lake / "spark-cluster",
            ).start()  # fmt: skip
            say(
                f"cluster: {cluster.master_url}, {options['workers']} workers of "
                f"{options['cores']} core(s) and {options['memory']}"
            )
            modes.append(
                one_mode("cluster", cluster.master_url, cluster, files, rate_days, options["real"])
            )
            cluster.stop()
            cluster = None
        result["modes"] = modes
    finally:
        if cluster is not None:
            cluster.stop()
        if not options["keep"]:
            shutil.rmtree(lake, ignore_errors=True)
    return result


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    print("CLUSTER_RESULT " + json.dumps(out), flush=True)
