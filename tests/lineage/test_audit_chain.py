"""The audit chain: sealed requests, signed checkpoints outside the database, and a
verification that finds and names what a database superuser changed or removed."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from django.db import DatabaseError, connection, connections, transaction

from lineage.chain import checkpoints, encoding, keys, retention, sealer
from lineage.models import RequestLog, RequestSeal, SealQueue
from lineage.writer import flush, store_entry
from tests.support.audit import (
    VERIFY,
    command,
    kinds,
    looping,
    report,
    seal_all,
    store,
    superuser,
)
from tests.support.factories import client_for

LOG = RequestLog._meta.db_table
MANAGE = str(Path(__file__).resolve().parents[2] / "manage.py")
SEALS = RequestSeal._meta.db_table


@pytest.fixture(autouse=True)
def vault(tmp_path, settings):
    """The checkpoints' folder of the test (outside the database, as in production)."""
    settings.AUDIT_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    return settings.AUDIT_CHECKPOINT_ROOT


def log_id(sequence: int) -> int:
    return RequestSeal.objects.get(sequence=sequence).log_id


def test_an_untouched_log_verifies_through_its_end(staff, alice):
    api = client_for(staff)
    api.get("/api/v1/resources/", {"q": "x\x01"})
    client_for(alice).post("/api/v1/auth/tokens/rotate/", {"password": "s3cret"}, format="json")
    client_for(None).get("/api/v1/audit/requests/")
    store(5)
    first = seal_all()
    store(3, tag="u")
    second = seal_all()
    total = RequestLog.objects.count()
    assert second.through == total == RequestSeal.objects.count()
    assert not SealQueue.objects.exists() and first.checkpoint and second.checkpoint
    answer = api.get(VERIFY).json()
    assert answer["ok"] is True and answer["findings"] == [], answer
    assert answer["verified_through"] == answer["anchored_through"] == total
    assert answer["checkpoints"] == 2 and answer["complete"] is True
    # the verify request itself is stored, not sealed yet
    assert api.get(VERIFY).json()["unsealed"] >= 1
    code, printed = command()
    assert code == 0 and json.loads(printed)["ok"] is True


@pytest.mark.parametrize(
    "change",
    [
        'body = \'{"n": 2, "note": "é ☃", "x": 1.6}\'::jsonb',
        "status_code = 200",
        "username = 'mallory', user_id = 8",
        "at = at - interval '1 microsecond'",
        "duration_ms = duration_ms + 1e-9",
        "ip = '10.0.0.1/24'",
    ],
)
def test_a_changed_request_is_named(staff, change):
    store(6)
    seal_all()
    superuser(f"UPDATE {LOG} SET {change} WHERE id = %s", [log_id(3)])
    answer = client_for(staff).get(VERIFY).json()
    assert answer["ok"] is False
    assert kinds(answer) == [("hash_mismatch", 3)], answer
    assert answer["findings"][0]["request_id"] == "t2"
    assert answer["verified_through"] == 2
    code, printed = command()
    assert code == 1 and kinds(json.loads(printed)) == [("hash_mismatch", 3)]


def test_a_deleted_request_in_the_middle_is_missing(staff):
    store(8)
    seal_all()
    superuser(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [[log_id(4), log_id(5)]])
    answer = report()
    assert kinds(answer) == [("missing", 4)] and "4 to 5" in answer["findings"][0]["detail"]
    # and with its seal: a gap in the sequence
    seventh = log_id(7)
    superuser(f"DELETE FROM {SEALS} WHERE sequence = 7")
    superuser(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [[log_id(6), seventh]])
    assert kinds(report()) == [("missing", 4), ("missing", 7)]


def test_the_newest_requests_deleted_after_a_checkpoint_are_truncated(staff):
    store(10)
    seal_all()
    gone = list(RequestSeal.objects.filter(sequence__gt=7).values_list("log_id", flat=True))
    superuser(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [gone])
    superuser(f"DELETE FROM {SEALS} WHERE sequence > 7")
    answer = report()
    assert kinds(answer) == [("truncated", 8)] and "8 to 10" in answer["findings"][0]["detail"]
    assert answer["verified_through"] == 7
    # the sealer goes on from the checkpoint, not from the shortened chain: no sequence reused
    store(2, tag="after")
    done = seal_all()  # the two, and the verifications' own requests
    assert done.sealed >= 2 and done.through == 10 + done.sealed
    assert kinds(report()) == [("missing", 8)]


def test_a_truncated_table_is_found(staff):
    store(5)
    seal_all()
    superuser(f"TRUNCATE {LOG}")
    assert kinds(report()) == [("missing", 1)]
    superuser(f"TRUNCATE {SEALS}")
    answer = report()
    assert kinds(answer) == [("truncated", 1)] and answer["verified_through"] == 0


def test_a_chain_recomputed_after_a_change_differs_from_its_checkpoint(staff):
    store(6)
    seal_all()
    superuser(f"UPDATE {LOG} SET status_code = 500 WHERE id = %s", [log_id(2)])
    _rehash_from(2)
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 6)], answer
    assert "checkpoint" in answer["findings"][0]["detail"]


def _rehash_from(first: int) -> None:
    """What a superuser who knows the algorithm does: recompute every link from `first`."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT hash FROM {SEALS} WHERE sequence = %s", [first - 1])
        previous = bytes(cursor.fetchone()[0])
        cursor.execute(
            f"SELECT s.sequence, {', '.join(encoding.COLUMNS)}, {encoding.BODY} "
            f"FROM {SEALS} s JOIN {LOG} l ON l.id = s.log_id "
            "WHERE s.sequence >= %s ORDER BY s.sequence",
            [first],
        )
        for sequence, *columns, body in cursor.fetchall():
            previous = encoding.link(
                previous, encoding.encode(sequence, columns, encoding.body_hash(body))
            )
            superuser(f"UPDATE {SEALS} SET hash = %s WHERE sequence = %s", [previous, sequence])


def test_a_checkpoint_signed_with_another_key_is_bad(staff, settings):
    store(4)
    written = seal_all().checkpoint
    superuser(f"UPDATE {LOG} SET status_code = 200 WHERE id = %s", [log_id(4)])
    _rehash_from(4)
    # and the checkpoint re-signed with the attacker's own key, over the recomputed chain
    original, settings.AUDIT_SIGNING_KEY = settings.AUDIT_SIGNING_KEY, "m" * 40
    forged = checkpoints.write(
        "checkpoint", 4, bytes(RequestSeal.objects.get(sequence=4).hash), count=4, first=1,
        previous=None, base=checkpoints.root() / "elsewhere",
    )  # fmt: skip
    settings.AUDIT_SIGNING_KEY = original
    _replace(written, forged.path.read_bytes())
    answer = report()
    assert kinds(answer) == [("bad_checkpoint", 4)], answer
    assert "unknown key" in answer["findings"][0]["detail"]
    code, printed = command()
    assert code == 1 and kinds(json.loads(printed)) == [("bad_checkpoint", 4)]


def test_a_forged_checkpoint_file_is_bad(staff):
    store(3)
    written = seal_all().checkpoint
    with open(written, "rb") as signed:
        document = orjson.loads(signed.read())
    _replace(written, orjson.dumps(document | {"hash": "00" * 32}))
    assert kinds(report()) == [("bad_checkpoint", 3)]
    _replace(written, b"{not json")
    assert kinds(report()) == [("bad_checkpoint", 3)]
    # a checkpoint made up from nothing, in a day of its own
    fake = checkpoints.root() / "2020" / "01" / "01"
    fake.mkdir(parents=True)
    (fake / f"{9:020d}.json").write_bytes(orjson.dumps(document | {"sequence": 9}))
    assert kinds(report()) == [("bad_checkpoint", 9), ("bad_checkpoint", 3)]


def _replace(target: str, content: bytes) -> None:
    import os

    os.chmod(target, 0o644)  # the owner of the folder can; object lock forbids it (docs/AUDIT.md)
    with open(target, "wb") as out:
        out.write(content)


def test_seals_are_append_only(staff):
    store(2)
    seal_all()
    refused(f"UPDATE {SEALS} SET hash = hash")
    refused(f"DELETE FROM {SEALS}")
    # the retention setting lets through sealed requests up to the cut only
    retain = "SELECT set_config('lineage.audit_retention', '1', true)"
    refused(retain, f"DELETE FROM {LOG} WHERE id = {log_id(2)}")
    refused(retain, f"DELETE FROM {SEALS} WHERE sequence = 2")


def refused(*statements: str) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        for sql in statements:
            cursor.execute(sql)


def test_retention_cuts_whole_sealed_ranges_and_verification_still_passes(staff, settings):
    store(4)
    seal_all()
    store(3, tag="later")
    seal_all()
    assert retention.apply(days=0) is None  # keep everything: nothing cut
    second = checkpoints.scan(keys.verifying_keys())[0][1]
    cut = retention.apply(now=second.at + dt.timedelta(days=30), days=30)
    assert cut == 4
    assert sorted(RequestSeal.objects.values_list("sequence", flat=True)) == [5, 6, 7]
    assert RequestLog.objects.count() == 3 + 0  # the rows the test made itself, later ones
    answer = report()
    assert answer["ok"] and answer["start"] == 4 and answer["verified_through"] == 7, answer
    # an attacker deleting the next range without a signed cut is found
    superuser(f"DELETE FROM {LOG} WHERE id = %s", [log_id(5)])
    superuser(f"DELETE FROM {SEALS} WHERE sequence = 5")
    assert kinds(report()) == [("missing", 5)]


def test_an_export_verifies_on_another_machine_with_the_public_key(staff, tmp_path, settings):
    store(5)
    seal_all()
    store(4, tag="v")
    seal_all()
    out = tmp_path / "export"
    from django.core.management import call_command

    call_command("export_audit", "--out", str(out))
    public = keys.public_text(keys.signing_key().public_key())
    # another machine: no database to reach, a signing key of its own, the public key given
    elsewhere = subprocess.run(
        [sys.executable, MANAGE, "verify_audit", "--export", str(out), "--public-key", public],
        env={**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
             "AUDIT_SIGNING_KEY": "another machine, another key" * 2},
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    answer = json.loads(elsewhere.stdout)
    assert elsewhere.returncode == 0 and answer["ok"], (answer, elsewhere.stderr[-2000:])
    assert answer["verified_through"] == 9 and answer["checkpoints"] == 2
    settings.AUDIT_SIGNING_KEY = "another machine, another key" * 2
    lines = (out / "requests.jsonl").read_bytes().splitlines()
    changed = orjson.loads(lines[6])
    changed["columns"][6] = changed["columns"][6].replace("201", "200")
    changed["columns"][7] = 200
    lines[6] = orjson.dumps(changed)
    (out / "requests.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    code, printed = command("--export", str(out), "--public-key", public)
    assert code == 1 and kinds(json.loads(printed)) == [("hash_mismatch", 7)]
    # without the right public key, no checkpoint is trusted
    code, printed = command("--export", str(out))
    assert code == 1 and ("bad_checkpoint", 5) in kinds(json.loads(printed))


def test_a_redacted_body_keeps_the_chain_and_is_counted(staff):
    store(3)
    seal_all()
    from django.core.management import call_command

    call_command("redact_audit_body", str(log_id(2)), "--reason", "personal data by mistake")
    entry = RequestLog.objects.get(pk=log_id(2))
    assert set(entry.body) == {"_redacted"}
    answer = report()
    assert answer["ok"] and answer["redacted"] == 1, answer
    # the redaction setting changes a body only, and only to a marker
    redacting = "SELECT set_config('lineage.audit_redaction', 'on', true)"
    refused(redacting, f"UPDATE {LOG} SET status_code = 200 WHERE id = {log_id(1)}")
    marker = """'{"_redacted": 1}'::jsonb"""
    refused(
        redacting, f"UPDATE {LOG} SET body = {marker}, status_code = 200 WHERE id = {log_id(1)}"
    )
    # a body changed by hand is not (to a marker neither: test_audit_attacks.py)
    superuser(f"UPDATE {LOG} SET body = '{{\"n\": 0}}'::jsonb WHERE id = %s", [log_id(1)])
    assert kinds(report()) == [("hash_mismatch", 1)]


def test_unsealed_requests_cannot_be_redacted(staff):
    from django.core.management import CommandError, call_command

    store(1)
    with pytest.raises(CommandError, match="not sealed"):
        call_command("redact_audit_body", str(RequestLog.objects.get().pk), "--reason", "x")


def test_the_endpoint_is_staff_only_and_checks_its_parameters(staff, alice):
    assert client_for(alice).get(VERIFY).status_code == 403
    assert client_for(None).get(VERIFY).status_code == 401
    api = client_for(staff)
    for params in ({"since": "yesterday"}, {"until": "2026-13-01"}, {"since": "\x00"},
                   {"since": "9" * 5000}, {"other": "1"}):  # fmt: skip
        answer = api.get(VERIFY, params)
        assert answer.status_code == 400 and answer.json()["code"] == "invalid", params
    assert api.get(VERIFY, {"since": "2026-01-01", "until": "2026-01-02T10:00:00Z"}).json()["ok"]


def test_since_and_until_verify_between_checkpoints(staff):
    store(3)
    first = seal_all()
    store(3, tag="b")
    seal_all()
    store(3, tag="c")
    seal_all()
    marks = checkpoints.scan(keys.verifying_keys())[0]
    answer = report(since=marks[1].at)
    assert (answer["start"], answer["verified_through"], answer["rows"]) == (6, 9, 3)
    answer = report(since=marks[0].at, until=marks[1].at)
    assert (answer["start"], answer["verified_through"], answer["rows"]) == (3, 6, 3)
    assert first.through == 3


def test_the_endpoint_walks_at_most_its_limit(staff, settings):
    store(7)
    seal_all()
    settings.AUDIT_VERIFY_MAX_ROWS = 5
    answer = client_for(staff).get(VERIFY).json()
    assert answer["ok"] and answer["complete"] is False and answer["verified_through"] == 5


def test_one_round_at_a_time(staff):
    store(2)
    with connection.cursor() as cursor:
        other = connections.create_connection("default")
        try:
            with other.cursor() as held:
                held.execute("SELECT pg_advisory_lock(%s)", [sealer.LOCK])
                assert sealer.seal().skipped
                held.execute("SELECT pg_advisory_unlock(%s)", [sealer.LOCK])
        finally:
            other.close()
        cursor.execute("SELECT 1")
    assert seal_all().sealed == 2


WRITER_PROCESS = """
import django
django.setup()
from django.utils import timezone
from lineage.writer import flush, store_entry
for i in range(400):
    store_entry({"at": timezone.now(), "username": "", "method": "GET", "path": "/api/p/",
                 "query": {"i": i}, "status_code": 200, "duration_ms": 1.0, "resource": "",
                 "request_id": "process"}, asynchronous=True)
    if i % 40 == 0:
        flush()
"""


@pytest.mark.django_db(transaction=True)
def test_writers_and_sealers_at_once_make_one_chain_with_no_gap(settings):
    """Another process's writer thread, this one's (batches), synchronous writes and two
    sealers, for a while."""
    import os
    import subprocess
    import sys

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    other = subprocess.Popen(
        [sys.executable, "-c", WRITER_PROCESS],
        env={**os.environ, "DATABASE_URL": url, "REQUEST_LOG_FLUSH_MS": "3"},
    )
    settings.REQUEST_LOG_FLUSH_MS = 5

    def queued():  # reads, as the web stores them: the process's writer thread
        for i in range(20):
            store_entry(_entry(f"r{i}"), asynchronous=True)
        flush()

    def synchronous():
        with transaction.atomic():
            store_entry(_entry("w"), asynchronous=False)

    def sealing():
        sealer.seal()

    with looping(queued, synchronous, sealing, sealing) as errors:
        threading.Event().wait(4.0)  # for a while
    assert other.wait(60) == 0
    assert not errors, errors
    assert flush()
    seal_all()
    stored = RequestLog.objects.count()
    sequences = list(RequestSeal.objects.order_by("sequence").values_list("sequence", flat=True))
    assert stored > 100 and sequences == list(range(1, stored + 1))
    assert RequestLog.objects.filter(request_id="process").count() == 400
    assert RequestSeal.objects.values("log_id").distinct().count() == stored
    answer = report()
    assert answer["ok"] and answer["verified_through"] == stored, answer


def _entry(tag: str) -> dict:
    from django.utils import timezone

    return {"at": timezone.now(), "username": "", "method": "GET", "path": f"/api/{tag}/",
            "query": {}, "status_code": 200, "duration_ms": 0.5, "resource": "",
            "request_id": tag}  # fmt: skip


def test_metrics_show_what_waits_for_its_seal(db, settings):
    from prometheus_client.parser import text_string_to_metric_families
    from rest_framework.test import APIClient

    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    def scrape() -> dict[str, float]:
        text = APIClient().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("datalake_audit_")
        }

    store(3)
    before = scrape()
    assert before["datalake_audit_unsealed_requests"] == 3
    assert before["datalake_audit_oldest_unsealed_age_seconds"] > 0
    assert before["datalake_audit_sealed_through"] == 0
    assert "datalake_audit_last_checkpoint_age_seconds" not in before
    seal_all()
    after = scrape()
    assert after["datalake_audit_unsealed_requests"] == 0
    assert after["datalake_audit_oldest_unsealed_age_seconds"] == 0
    assert after["datalake_audit_sealed_through"] == 3
    assert 0 <= after["datalake_audit_last_checkpoint_age_seconds"] < 60


def test_a_walk_reads_only_the_checkpoints_of_its_range(staff, monkeypatch):
    for tag in "abcde":
        store(2, tag=tag)
        seal_all()  # checkpoints at 2, 4, 6, 8 and 10
    opened, real = [], checkpoints.read

    def read(path, verifying):
        opened.append(int(path.stem))
        return real(path, verifying)

    monkeypatch.setattr(checkpoints, "read", read)
    answer = report(everywhere=False, max_rows=4)
    assert answer["ok"] and not answer["complete"] and answer["verified_through"] == 4
    assert sorted(opened) == [2, 4]
