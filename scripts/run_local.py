"""Run the whole portal on this machine: broker, web, workers, scheduler, pipeline consumer.

`make demo` calls this after installing and loading the demo data. Every process
logs to run/<name>.log, one JSON object a line (`LOG_FORMAT=text` for plain lines);
Ctrl-C (or SIGTERM) stops them all. A process that dies is started again, as
docker-compose's `restart: unless-stopped` does (its exit code in the output and its
log); one that dies CRASH_LOOP times within CRASH_WINDOW seconds stops everything,
with exit code 1. gunicorn's workers share their Prometheus metrics through
run/prometheus/ (emptied at each start), served at http://127.0.0.1:8000/metrics.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = ROOT / ".venv" / "bin"
RUN = ROOT / "run"
METRICS_DIR = RUN / "prometheus"  # PROMETHEUS_MULTIPROC_DIR of the web workers
CRASH_LOOP, CRASH_WINDOW = 5, 60.0


def django_commands() -> set[str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datalake.settings")
    import django
    from django.core.management import get_commands

    django.setup()
    return set(get_commands())


def celery_worker(queues: str, concurrency: int) -> list[str]:
    name = queues.split(",")[0]
    return [
        str(BIN / "celery"), "-A", "datalake", "--quiet", "worker", "-Q", queues,
        "-c", str(concurrency), "-n", f"{name}@%h",
    ]  # fmt: skip


def processes(web_port: int) -> dict[str, list[str]]:
    python = str(BIN / "python")
    procs = {
        "web": [
            str(BIN / "gunicorn"),
            "datalake.wsgi",
            "--bind",
            f"127.0.0.1:{web_port}",
            "--workers",
            "2",
            # The first Delta Sharing query of a large table version writes its files.
            "--timeout",
            "120",
            "--access-logfile",
            "-",
            "--logger-class",
            "datalake.platform.logging.GunicornLogger",
        ],
        # --quiet: no banner, so that the logs hold JSON lines only. One worker per queue
        # (settings.CELERY_TASK_ROUTES): ingestion never waits behind reports or training.
        "worker": celery_worker("ingestion", 2),
        "worker-reports": celery_worker("reports,celery", 1),
        "worker-ml": celery_worker("ml", 1),
        "worker-audit": celery_worker("audit", 1),  # the audit chain's sealing rounds
        "beat": [
            str(BIN / "celery"),
            "-A",
            "datalake",
            "--quiet",
            "beat",
            "--schedule",
            str(RUN / "celerybeat-schedule"),
        ],
    }
    if "run_pipeline" in django_commands():
        procs["pipeline"] = [python, "manage.py", "run_pipeline"]
    if "run_followers" in django_commands():  # search entries and metrics after each merge
        procs["followers"] = [python, "manage.py", "run_followers"]
    return procs


def start_broker():
    from django.conf import settings

    from datalake.platform.devbroker import port_open, start_broker

    host, _, port = settings.KAFKA_BOOTSTRAP_SERVERS.split(",")[0].rpartition(":")
    if port_open(host or "127.0.0.1", int(port)):
        print(f"broker: already listening on {host}:{port}")
        return None
    print(f"broker: starting Tansu on 127.0.0.1:{port}")
    return start_broker(int(port), log_path=str(RUN / "broker.log"))


def main() -> int:
    RUN.mkdir(exist_ok=True)
    # Metrics files of an earlier run would be summed with this run's: start empty.
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    METRICS_DIR.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(METRICS_DIR)}
    web_port = int(os.environ.get("PORT", "8000"))
    children = {}
    broker = start_broker()
    if broker is not None:
        children["broker"] = broker
    commands = processes(web_port)

    logs: dict = {}

    def spawn(name: str) -> subprocess.Popen | None:
        if name == "broker":
            return start_broker()
        if name in logs:
            logs[name].close()
        logs[name] = open(RUN / f"{name}.log", "ab")  # noqa: SIM115
        return subprocess.Popen(
            commands[name], cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT
        )

    for name in commands:
        children[name] = spawn(name)
        print(f"{name}: pid {children[name].pid}, log run/{name}.log")
    print(f"\nThe portal: http://127.0.0.1:{web_port}/api/v1/  (docs: /api/v1/docs/)")
    print("Ctrl-C stops everything.\n")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    deaths: dict[str, list[float]] = {}
    code = 0
    try:
        while not stopping and not code:
            for name, process in list(children.items()):
                if process.poll() is None:
                    continue
                now = time.monotonic()
                recent = [t for t in deaths.get(name, []) if now - t < CRASH_WINDOW] + [now]
                deaths[name] = recent
                try:
                    restarted = spawn(name) if len(recent) < CRASH_LOOP else None
                except (OSError, RuntimeError) as exc:  # the broker's port taken, say
                    print(f"{name} could not be started again: {exc}")
                    restarted = None
                if restarted is None:
                    print(f"{name} stopped (exit {process.returncode}) and is not restarted; "
                          f"stopping everything (see run/{name}.log)")  # fmt: skip
                    code = 1
                    break
                children[name] = restarted
                print(f"{name} exited with {process.returncode}: started again, "
                      f"pid {children[name].pid} (see run/{name}.log)")  # fmt: skip
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    for process in children.values():
        if process.poll() is None:
            process.terminate()
    for process in children.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    return code


if __name__ == "__main__":
    sys.exit(main())
