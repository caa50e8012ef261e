"""Django-side job of the `audit` benchmark (bench/scenarios/audit.py), run in the
interpreter of the tree measured by `bench/harness/child.py` (DATABASE_URL,
AUDIT_CHECKPOINT_ROOT and AUDIT_SIGNING_KEY set by the harness). Imports nothing from
`bench`.

    seal_loop   what Celery beat and the `audit` worker do: a sealing round
                (`lineage.chain.sealer.seal()`) every AUDIT_SEAL_SECONDS, started and paused
                by the benchmark over stdin, one command a line, each answered by one
                `LOOP <json>` line on stdout:
                  run      rounds from now on, every AUDIT_SEAL_SECONDS (the first at once)
                  pause    no more rounds; what is queued is sealed first (untimed by the
                           benchmark), so the next slice starts with an empty queue
                  catchup  (paused) seal what is queued now, then stay paused
                  quit     end; the rounds made are the job's result
"""

from __future__ import annotations

import json
import select
import sys
import time


def seal_loop(interval: float | None = None) -> dict:
    from django.conf import settings

    from lineage.chain import sealer

    every = float(interval or settings.AUDIT_SEAL_SECONDS)
    rounds: list[dict] = []
    running, due = False, 0.0

    def one(kind: str):
        t0, c0 = time.perf_counter(), time.process_time()
        done = sealer.seal()
        rounds.append(
            {
                "kind": kind,
                "at": round(time.time(), 3),
                "sealed": done.sealed,
                "seconds": round(time.perf_counter() - t0, 4),
                "cpu_s": round(time.process_time() - c0, 4),
                "skipped": done.skipped,
            }
        )
        return done

    def drain(kind: str) -> int:
        total = 0
        while True:
            done = one(kind)
            total += done.sealed
            if done.skipped or not done.sealed:
                return total

    def reply(**fields) -> None:
        print("LOOP " + json.dumps(fields), flush=True)

    reply(ready=True, every=every)
    while True:
        timeout = max(0.0, due - time.monotonic()) if running else None
        readable, _, _ = select.select([sys.stdin], [], [], timeout)
        if readable:
            command = sys.stdin.readline().strip()
            if command == "run":
                running, due = True, time.monotonic()
                reply(ok="run")
            elif command == "pause":
                running = False
                reply(ok="pause", drained=drain("pause"))
            elif command == "catchup":
                reply(ok="catchup", drained=drain("catchup"))
            else:  # quit, or stdin closed
                break
            continue
        one("round")  # a round is due (beat's schedule: every `every` s, whatever a round took)
        due += every
        if due < time.monotonic():
            due = time.monotonic()
    timed = [r for r in rounds if r["kind"] == "round"]
    return {
        "every_s": every,
        "rounds": len(timed),
        "sealed_in_rounds": sum(r["sealed"] for r in timed),
        "round_seconds": round(sum(r["seconds"] for r in timed), 3),
        "round_cpu_s": round(sum(r["cpu_s"] for r in timed), 3),
        "sealed_between_slices": sum(r["sealed"] for r in rounds if r["kind"] != "round"),
        "all": rounds,
    }
