"""The one way a test waits: poll a condition until it holds, never sleep for a fixed time.

A test that needs time to pass (an expiry, a stale heartbeat) moves the clock in the data
instead (an `expires_at` or `heartbeat_at` in the past); a test that waits for another
thread, process or server waits here, on what it needs to see.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.1) -> T:
    """The first truthy value `check()` returns; an AssertionError naming `what` and the
    last value seen when none came within `timeout` seconds.

    `check` may raise AssertionError itself to fail at once (a process that died, a
    thread's error): waiting longer would not help.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(interval)
