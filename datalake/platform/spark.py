"""Where the ingestion jobs run, for `/healthz`: local mode, or a standalone cluster's state.

With `SPARK_MASTER=spark://host:7077` the master's web UI (SPARK_MASTER_UI_URL, by default
the master's host on port 8080) answers `/json/`: its workers (alive or not, cores, cores
in use) and applications. What `/healthz` shows anyone is the mode, a state and counts;
the master's URL (it names a host) is shown to staff only.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

TIMEOUT_S = httpx.Timeout(2.0, connect=1.0)  # a master that hangs costs this, at most


def master_ui_url(master: str) -> str:
    """SPARK_MASTER_UI_URL, or http://<the master's host (the first of a list)>:8080."""
    if settings.SPARK_MASTER_UI_URL:
        return settings.SPARK_MASTER_UI_URL.rstrip("/")
    host = urlsplit(master.split(",")[0]).hostname or "127.0.0.1"
    return f"http://{host}:8080"


CACHE_SECONDS = 10.0  # /healthz is open to anyone: the master is asked this often at most
_known: dict = {}
CHECKING = {"state": "checking"}  # the first answer is on its way
_lock = threading.Lock()


def state(master: str) -> dict:
    """`state_now(master)`, asked once per CACHE_SECONDS by one thread at a time (the others,
    and anonymous pollers of /healthz, get the last answer: they never hold web workers on
    a master that hangs)."""
    now, key = time.monotonic(), (master, settings.SPARK_MASTER_UI_URL)
    with _lock:
        found = _known.get(key)
        if found and (now - found[0] < CACHE_SECONDS or found[2]):
            return dict(found[1])
        _known[key] = (found[0] if found else 0.0, found[1] if found else CHECKING, True)
    answer = {}
    try:
        answer = state_now(master)
    finally:
        with _lock:
            _known[key] = (time.monotonic(), answer, False)
    return dict(answer)


def state_now(master: str) -> dict:
    """`mode`: `local` (the worker's own machine: nothing to ask), `standalone` (`state`
    ok with the master's alive `workers`, their `cores` and `cores_used`; error when the
    master does not answer, or is no active master) or `other` (YARN, Kubernetes: not
    asked)."""
    if master.startswith("local"):
        return {"mode": "local"}
    if not master.startswith("spark://"):
        return {"mode": "other"}
    try:
        response = httpx.get(f"{master_ui_url(master)}/json/", timeout=TIMEOUT_S)
        response.raise_for_status()
        body = response.json()
        alive = [w for w in body.get("workers", []) if w.get("state") == "ALIVE"]
        return {
            "mode": "standalone",
            "state": "ok" if body.get("status") == "ALIVE" else "error",
            "workers": len(alive),
            "cores": sum(int(w.get("cores", 0)) for w in alive),
            "cores_used": sum(int(w.get("coresused", 0)) for w in alive),
        }
    except Exception:  # down, slow, or no master's UI: said, never raised
        logger.warning("healthz: the Spark master's UI does not answer", exc_info=True)
        return {"mode": "standalone", "state": "error"}


def health(request) -> dict:
    """`/healthz`'s `spark`: the state, and to staff (a session) the master's URL too.

    A master down is no outage of the portal: the API serves on, and ingestion runs fail
    until it is back (then run again), so it is said here and never makes a 503."""
    out = state(settings.SPARK_MASTER)
    user = getattr(request, "user", None)
    if user is not None and user.is_staff:
        out["master"] = settings.SPARK_MASTER
    return out
