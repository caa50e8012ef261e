"""Helpers of the audit-chain tests: requests stored, sealed, and tampered with as a
database superuser would (triggers off for the statement's transaction)."""

from __future__ import annotations

import contextlib
import io
import threading

import orjson
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from lineage.chain import keys, sealer, verify
from lineage.writer import store_entry
from tests.support.factories import client_for, make_user

VERIFY = "/api/v1/audit/verify/"


def store(n: int, *, tag: str = "t", user: str = "carol") -> None:
    """`n` stored requests, at once (as the writes of a request are)."""
    for i in range(n):
        store_entry(
            {
                "at": timezone.now(), "user_id": 7, "username": user, "method": "POST",
                "path": f"/api/v1/{tag}/{i}/", "query": {"i": str(i)},
                "body": {"n": i, "note": "é ☃", "x": 1.5}, "status_code": 201,
                "duration_ms": 1.234567 + i, "resource": "transactions", "ip": "10.0.0.1",
                "restrictions": {"transactions": {"masked": ["email"]}}, "request_id": f"{tag}{i}",
            },
            asynchronous=False,
        )  # fmt: skip


def seal_all():
    done = sealer.seal()
    assert not done.skipped
    return done


def report(*, everywhere: bool = True, **kwargs) -> dict:
    """The verification's answer, after checking that the endpoint and the command give
    the same (and the command's exit code): every finding is named by both. The endpoint
    stores a request: `everywhere=False` asks the verification alone."""
    direct = verify.database(verifying=keys.verifying_keys(), **kwargs).as_dict()
    if not everywhere:
        return direct
    params = {name: value.isoformat() for name, value in kwargs.items()}
    auditor = User.objects.filter(username="auditor").first() or make_user("auditor", is_staff=True)
    answered = client_for(auditor).get(VERIFY, params)
    assert answered.status_code == 200, answered.content
    code, printed = command(*(f"--{name}={value}" for name, value in params.items()))
    assert code == (0 if direct["ok"] else 1), printed
    for other in (answered.json(), orjson.loads(printed)):
        assert {k: other[k] for k in direct} == direct
    return direct


def superuser(sql: str, params=()) -> None:
    """Run `sql` as the database's owner would: past the append-only triggers."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET LOCAL session_replication_role = origin")


def command(*args) -> tuple[int, str]:
    """`verify_audit` with `args`: (exit code, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            call_command("verify_audit", *args, stdout=out)
            code = 0
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue()


def kinds(answer: dict) -> list[tuple[str, int | None]]:
    return [(f["kind"], f["sequence"]) for f in answer["findings"]]


def log_id(sequence: int) -> int:
    """The stored request's id sealed at `sequence`."""
    from lineage.models import RequestSeal

    return RequestSeal.objects.get(sequence=sequence).log_id


def rehash_from(first: int, *, previous: bytes | None = None) -> None:
    """What a superuser who knows the algorithm (not the key) does: recompute every
    stored link from `first` on, from the link before it (or `previous`)."""
    from lineage.chain import encoding
    from lineage.models import RequestLog, RequestSeal

    seals, log = RequestSeal._meta.db_table, RequestLog._meta.db_table
    with connection.cursor() as cursor:
        if previous is None:
            cursor.execute(f"SELECT hash FROM {seals} WHERE sequence = %s", [first - 1])
            found = cursor.fetchone()
            previous = bytes(found[0]) if found else encoding.GENESIS
        cursor.execute(
            f"SELECT s.sequence, {', '.join(encoding.COLUMNS)}, {encoding.BODY} "
            f"FROM {seals} s JOIN {log} l ON l.id = s.log_id "
            "WHERE s.sequence >= %s ORDER BY s.sequence",
            [first],
        )
        for sequence, *columns, body in cursor.fetchall():
            digest = encoding.body_hash(body)
            previous = encoding.link(previous, encoding.encode(sequence, columns, digest))
            superuser(
                f"UPDATE {seals} SET hash = %s, body_hash = %s WHERE sequence = %s",
                [previous, digest, sequence],
            )


@contextlib.contextmanager
def looping(*bodies):
    """Each of `bodies` called again and again, each in a thread (and a database
    connection) of its own, while the block runs; yields the list of what they raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(body):
        try:
            while not stop.is_set():
                body()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=loop, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
