"""A PostgreSQL streaming replica of the local server, on this machine, for trying reads
from a replica (DATABASE_REPLICA_URLS) and for the tests and benchmarks that need one.

    python scripts/pg_replica.py            # a standby of 127.0.0.1:5432 on a free port
    python scripts/pg_replica.py --port 5433 --dir /var/tmp/datalake-replica

It prints the `DATABASE_REPLICA_URLS` to set, and runs until Ctrl-C (then it stops the
standby and deletes its directory, unless `--keep`). What it does, as one would by hand
(docs/DEPLOY.md): lets the `postgres` system user replicate over the primary's Unix
socket (`local replication postgres peer` in its `pg_hba.conf`, once; then a reload),
copies the primary with `pg_basebackup -R -X stream` (a standby.signal and the primary's
conninfo, through that socket), writes the standby's own
`postgresql.conf` and `pg_hba.conf`, and starts it with `pg_ctl` as the `postgres`
system user when run by root (PostgreSQL refuses to run as root). The copy is of the
whole primary: every database, so it takes as long as the primary is large.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

# Replication over the Unix socket by the `postgres` system user only (peer: no password,
# and no other local user or process may copy the cluster).
REPLICATION_RULE = "local replication postgres peer"
# Settings a hot standby must hold at least as high as its primary.
AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lsn(text: str | None) -> int:
    high, _, low = (text or "0/0").partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class LocalReplica:
    """A streaming standby of the server at `primary` (a libpq URL), on `port`."""

    def __init__(
        self,
        primary: str = "postgresql://postgres@127.0.0.1:5432/postgres",
        *,
        port: int | None = None,
        directory: Path | None = None,
    ):
        self.primary = primary
        self.port = port or free_port()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="datalake-replica-"))
        self.log = self.directory.parent / f"{self.directory.name}.log"
        self.system_user = "postgres" if os.geteuid() == 0 else None
        with self.connect_primary() as conn:
            major = conn.execute("SHOW server_version_num").fetchone()[0][:2]
            self.minimums = {
                name: conn.execute(f"SHOW {name}").fetchone()[0] for name in AT_LEAST_PRIMARY
            }
        found = Path(f"/usr/lib/postgresql/{major}/bin")
        self.bin = found if found.is_dir() else Path(shutil.which("pg_ctl") or "pg_ctl").parent

    # -- connections ---------------------------------------------------------------

    def connect_primary(self, dbname: str = "postgres"):
        return psycopg.connect(self.primary, dbname=dbname, autocommit=True)

    def connect(self, dbname: str = "postgres"):
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, autocommit=True,
            connect_timeout=5,
        )  # fmt: skip

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    # -- life ----------------------------------------------------------------------

    def _run(self, *command, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.system_user, "--"] if self.system_user else []
        return subprocess.run(
            [*prefix, *map(str, command)], check=check, capture_output=True, text=True
        )

    def allow_replication(self) -> None:
        """Replication by the `postgres` system user over the primary's Unix socket
        (idempotent: a rule added once, after those already there; then a reload)."""
        with self.connect_primary() as conn:
            rules = conn.execute(
                "SELECT count(*) FROM pg_hba_file_rules WHERE 'replication' = ANY(database) "
                "AND type = 'local' AND auth_method IN ('peer', 'trust')"
            ).fetchone()[0]
            self.socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()[0]
            self.socket_dir = self.socket_dir.split(",")[0].strip()
            if rules:
                return
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])
            with hba.open("a") as out:
                out.write("\n# datalake: a local streaming replica (scripts/pg_replica.py)\n")
                out.write(REPLICATION_RULE + "\n")
            conn.execute("SELECT pg_reload_conf()")

    def start(self) -> LocalReplica:
        self.allow_replication()
        if self.system_user:
            user = pwd.getpwnam(self.system_user)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self.directory.chmod(0o700)
        if self.system_user is None and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
            raise SystemExit("run as root or as the postgres system user (peer replication)")
        port = psycopg.conninfo.conninfo_to_dict(self.primary).get("port", 5432)
        self._run(
            self.bin / "pg_basebackup", "-h", self.socket_dir, "-p", port, "-U", "postgres",
            "-D", self.directory, "-X", "stream", "-R", "-c", "fast", "--no-sync",
        )  # fmt: skip
        self._write("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._write("pg_ident.conf", "")
        settings = {
            "port": self.port,
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.directory}'",
            "hba_file": f"'{self.directory / 'pg_hba.conf'}'",
            "ident_file": f"'{self.directory / 'pg_ident.conf'}'",
            "shared_buffers": "'256MB'",
            "hot_standby": "on",
            # The primary keeps the rows a standby's running query still reads (no query of
            # the API cancelled by a conflict with recovery).
            "hot_standby_feedback": "on",
            "fsync": "off",
            **self.minimums,
        }
        self._write("postgresql.conf", "".join(f"{k} = {v}\n" for k, v in settings.items()))
        # A tuned primary's ALTER SYSTEM values (its shared_buffers...) stay with the primary.
        auto = self.directory / "postgresql.auto.conf"
        kept = [
            line
            for line in auto.read_text().splitlines()
            if line.startswith(("primary_conninfo", "#"))
        ]
        self._write("postgresql.auto.conf", "\n".join(kept) + "\n")
        self.start_server()
        return self

    def _write(self, name: str, text: str) -> None:
        path = self.directory / name
        path.write_text(text)
        if self.system_user:
            user = pwd.getpwnam(self.system_user)
            os.chown(path, user.pw_uid, user.pw_gid)

    def start_server(self) -> None:
        """Start the standby's server (again) and wait until it accepts reads."""
        self._run(self.bin / "pg_ctl", "-D", self.directory, "-l", self.log, "-w", "-t", "120",
                  "start")  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with self.connect() as conn:
                    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica did not start; see {self.log}")
            time.sleep(0.2)

    def stop_server(self, mode: str = "fast") -> None:
        self._run(self.bin / "pg_ctl", "-D", self.directory, "-m", mode, "-w", "stop",
                  check=False)  # fmt: skip

    def close(self) -> None:
        """Stop the standby and delete its directory."""
        self.stop_server("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> LocalReplica:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- replay --------------------------------------------------------------------

    def pause_replay(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.connect() as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def lag_bytes(self) -> int:
        with self.connect_primary() as primary, self.connect() as standby:
            wrote = lsn(primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
            replayed = standby.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0]
            return max(0, wrote - lsn(replayed))

    def caught_up(self, timeout: float = 60) -> None:
        """Wait until the standby has replayed everything the primary wrote so far."""
        with self.connect_primary() as primary:
            target = lsn(primary.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
        deadline = time.monotonic() + timeout
        while True:
            with self.connect() as standby:
                row = standby.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
            if lsn(row[0]) >= target:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica did not replay up to the primary in {timeout} s")
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--primary", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="the standby's data directory")
    parser.add_argument("--database", default="datalake", help="for the URL it prints")
    parser.add_argument("--keep", action="store_true", help="leave it running and its files")
    args = parser.parse_args()
    replica = LocalReplica(args.primary, port=args.port, directory=args.dir).start()
    print(f"DATABASE_REPLICA_URLS={replica.url(args.database)}", flush=True)
    if args.keep:
        print(f"data directory: {replica.directory}; stop: pg_ctl -D {replica.directory} stop")
        return
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        replica.close()


if __name__ == "__main__":
    sys.exit(main())
