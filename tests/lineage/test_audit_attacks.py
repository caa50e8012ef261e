"""Attacks on the audit chain: a database superuser who rewrites, moves, forges or hides
stored requests and seals (without AUDIT_SIGNING_KEY, unable to change the checkpoint
files but able to read them), the application's own role abusing the settings of the
documented procedures, hostile callers of the verify endpoint, and rounds that fail
midway. What cannot be detected is listed in docs/AUDIT.md, not tested here."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from lineage.chain import checkpoints, encoding, keys, retention, sealer
from lineage.models import RequestLog, RequestSeal, SealQueue
from lineage.writer import store_entry
from tests.support.audit import (
    VERIFY,
    command,
    kinds,
    log_id,
    looping,
    rehash_from,
    report,
    seal_all,
    store,
    superuser,
)
from tests.support.factories import client_for

LOG = RequestLog._meta.db_table
SEALS = RequestSeal._meta.db_table
QUEUE = SealQueue._meta.db_table


@pytest.fixture(autouse=True)
def vault(tmp_path, settings):
    """The checkpoints' folder of the test (outside the database, as in production)."""
    settings.AUDIT_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    return settings.AUDIT_CHECKPOINT_ROOT


def found(answer: dict) -> set[str]:
    return {f["kind"] for f in answer["findings"]}


# -- a superuser moving, forging and renumbering seals ----------------------------------


@pytest.mark.parametrize("column", ["hash", "body_hash"])
def test_a_null_link_or_digest_is_named_not_a_crash(staff, column):
    store(3)
    seal_all()
    superuser(f"ALTER TABLE {SEALS} ALTER COLUMN {column} DROP NOT NULL")
    superuser(f"UPDATE {SEALS} SET {column} = NULL WHERE sequence = 2")
    answer = client_for(staff).get(VERIFY).json()
    assert ("hash_mismatch", 2) in kinds(answer), answer


def test_two_seals_swapping_their_requests_are_both_named(staff):
    store(6)
    seal_all()
    three, four = log_id(3), log_id(4)
    superuser(f"UPDATE {SEALS} SET log_id = -log_id WHERE sequence IN (3, 4)")
    superuser(f"UPDATE {SEALS} SET log_id = %s WHERE sequence = 3", [four])
    superuser(f"UPDATE {SEALS} SET log_id = %s WHERE sequence = 4", [three])
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 3), ("hash_mismatch", 4)], answer
    assert answer["verified_through"] == 2


def test_a_seal_pointed_at_a_forged_copy_of_its_request_is_named(staff):
    store(5)
    seal_all()
    original = log_id(3)
    # the copy: every column the same but the body, its queue entry removed by hand
    superuser(
        f"INSERT INTO {LOG} (at, user_id, username, method, path, query, body, status_code, "
        "duration_ms, resource, ip, restrictions, request_id) SELECT at, user_id, username, "
        "method, path, query, '{}'::jsonb, status_code, duration_ms, resource, ip, "
        f"restrictions, request_id FROM {LOG} WHERE id = %s",
        [original],
    )
    forged = RequestLog.objects.order_by("-id").values_list("id", flat=True).first()
    superuser(f"DELETE FROM {QUEUE} WHERE log_id = %s", [forged])
    superuser(f"UPDATE {SEALS} SET log_id = %s WHERE sequence = 3", [forged])
    superuser(f"DELETE FROM {LOG} WHERE id = %s", [original])
    assert kinds(report()) == [("hash_mismatch", 3)]
    # the same with the link and the body's digest recomputed: the checkpoint differs
    rehash_from(3)
    assert kinds(report()) == [("hash_mismatch", 5)]


def test_a_forged_request_sealed_in_the_middle_is_found(staff):
    store(6)
    seal_all()
    store_entry(_forged_entry(), asynchronous=False)
    forged = SealQueue.objects.get().log_id
    superuser(f"DELETE FROM {QUEUE}")
    # make room at 4: the later seals move one on (highest first), then relink everything
    for sequence in (6, 5, 4):
        superuser(f"UPDATE {SEALS} SET sequence = sequence + 1 WHERE sequence = %s", [sequence])
    superuser(
        f"INSERT INTO {SEALS} (sequence, log_id, body_hash, hash, sealed_at) "
        "VALUES (4, %s, %s, %s, now())",
        [forged, bytes(32), bytes(32)],
    )
    rehash_from(4)
    answer = report()
    # the checkpoint at 6 differs; 7 (the former 6) does not follow the checkpoint's link
    assert kinds(answer) == [("hash_mismatch", 6), ("hash_mismatch", 7)], answer
    assert answer["verified_through"] == 5 and answer["anchored_through"] == 0


def _forged_entry() -> dict:
    return {"at": timezone.now() - dt.timedelta(days=1), "username": "alice", "method": "GET",
            "path": "/api/v1/alibi/", "query": {}, "status_code": 200, "duration_ms": 1.0,
            "resource": "", "request_id": "forged"}  # fmt: skip


@pytest.mark.parametrize("relinked", [False, True])
def test_renumbered_sequences_are_found(staff, relinked):
    store(6)
    seal_all()
    for sequence in range(6, 0, -1):
        superuser(f"UPDATE {SEALS} SET sequence = sequence + 10 WHERE sequence = %s", [sequence])
    if relinked:
        rehash_from(11, previous=encoding.GENESIS)
    answer = report()
    assert answer["ok"] is False and answer["verified_through"] == 0
    assert kinds(answer)[0] == ("missing", 1), answer
    # the first row after the gap has no link before it; every later one is checked
    assert "11 after it could not be checked" in answer["findings"][0]["detail"]
    assert ("hash_mismatch", 12) in kinds(answer) or relinked


def test_sequences_closed_up_over_a_deleted_request_are_found(staff):
    store(6)
    seal_all()
    superuser(f"DELETE FROM {LOG} WHERE id = %s", [log_id(3)])
    superuser(f"DELETE FROM {SEALS} WHERE sequence = 3")
    for sequence in (4, 5, 6):
        superuser(f"UPDATE {SEALS} SET sequence = sequence - 1 WHERE sequence = %s", [sequence])
    rehash_from(3)
    answer = report()
    assert kinds(answer) == [("truncated", 6)], answer
    assert answer["verified_through"] == 5 and answer["anchored_through"] == 0


def test_a_changed_link_alone_is_named(staff):
    store(4)
    seal_all()
    superuser(f"UPDATE {SEALS} SET hash = %s WHERE sequence = 2", [bytes(32)])
    assert kinds(report()) == [("hash_mismatch", 2), ("hash_mismatch", 3)]


def test_a_seal_deleted_alone_leaves_its_request_outside_the_chain(staff):
    store(5)
    seal_all()
    superuser(f"DELETE FROM {SEALS} WHERE sequence = 3")
    answer = report()
    assert kinds(answer) == [("missing", 3), ("missing", None)], answer
    assert answer["findings"][1]["request_id"] == "t2"


def test_a_changed_body_digest_alone_is_named(staff):
    """The seal keeps the body's digest for a later redaction: changed, it would make a
    redaction fail (or pass for another body), so it is checked on every row."""
    store(4)
    seal_all()
    superuser(f"UPDATE {SEALS} SET body_hash = %s WHERE sequence = 2", [bytes(32)])
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 2)], answer
    assert "digest" in answer["findings"][0]["detail"]


# -- a superuser deleting -----------------------------------------------------------------


def test_rows_deleted_across_a_checkpoint_are_missing(staff):
    store(4)
    seal_all()
    store(4, tag="b")
    seal_all()
    gone = [log_id(s) for s in (3, 4, 5)]
    superuser(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [gone])
    superuser(f"DELETE FROM {SEALS} WHERE sequence IN (3, 4, 5)")
    answer = report()
    assert kinds(answer) == [("missing", 3)] and "3 to 5" in answer["findings"][0]["detail"]
    assert answer["checkpoints"] == 2 and answer["verified_through"] == 2


def test_the_newest_rows_deleted_through_two_checkpoints_are_truncated(staff):
    store(4)
    seal_all()
    store(4, tag="b")
    seal_all()
    gone = list(RequestSeal.objects.filter(sequence__gte=3).values_list("log_id", flat=True))
    superuser(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [gone])
    superuser(f"DELETE FROM {SEALS} WHERE sequence >= 3")
    answer = report()
    assert kinds(answer) == [("truncated", 3)] and "3 to 8" in answer["findings"][0]["detail"]


def test_a_request_whose_queue_entry_was_deleted_is_missing(staff):
    """Left in the log unsealed and unqueued, it could be changed at will: named."""
    store(3)
    seal_all()
    store(2, tag="hidden")
    superuser(f"DELETE FROM {QUEUE}")
    seal_all()
    answer = report()
    assert kinds(answer) == [("missing", None)], answer
    assert answer["findings"][0]["request_id"] == "hidden0"
    assert "2 requests" in answer["findings"][0]["detail"]
    code, _printed = command()
    assert code == 1


def test_a_forged_seal_far_ahead_leaves_a_gap_the_sealer_does_not_close(staff):
    store(3)
    seal_all()
    store(1, tag="x")
    pending = SealQueue.objects.get().log_id
    superuser(f"DELETE FROM {QUEUE}")
    superuser(
        f"INSERT INTO {SEALS} (sequence, log_id, body_hash, hash, sealed_at) "
        "VALUES (9, %s, %s, %s, now())",
        [pending, bytes(32), bytes(32)],
    )
    store(1, tag="y")
    assert seal_all().through == 10
    answer = report()
    assert kinds(answer) == [("missing", 4)], answer
    assert "9 after it could not be checked" in answer["findings"][0]["detail"]


# -- the application's role and the procedures' settings ---------------------------------


def refused(*statements: str, params=()) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        for sql in statements:
            cursor.execute(sql, params if "%s" in sql else None)


REDACTING = "SELECT set_config('lineage.audit_redaction', 'on', true)"
RETAINING = "SELECT set_config('lineage.audit_retention', '9223372036854775807', true)"


def test_the_redaction_setting_changes_nothing_but_the_body(staff):
    store_entry(
        {"at": timezone.now(), "username": "carol", "method": "GET", "path": "/api/v1/x/",
         "query": {"limit": 10}, "body": {"a": 1}, "status_code": 200, "duration_ms": 0.0,
         "resource": "", "restrictions": {"rows": 1}, "request_id": "r"},
        asynchronous=False,
    )  # fmt: skip
    seal_all()
    one = log_id(1)
    marker = """'{"_redacted": {"reason": "x"}}'::jsonb"""
    # equal as jsonb, not as stored: 10.0 prints apart from 10, -0 from 0
    for change in (
        """query = '{"limit": 10.0}'::jsonb""",
        """restrictions = '{"rows": 1.00}'::jsonb""",
        "duration_ms = '-0'::float8",
    ):
        refused(REDACTING, f"UPDATE {LOG} SET body = {marker}, {change} WHERE id = {one}")
    # the body becomes a marker and only a marker
    for body in ("""'["_redacted"]'""", """'{"_redacted": 1, "a": 2}'""", """'"_redacted"'"""):
        refused(REDACTING, f"UPDATE {LOG} SET body = {body}::jsonb WHERE id = {one}")
    # the marker alone passes the trigger, but without the procedure's signed record the
    # body was hidden, not redacted
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(REDACTING)
        cursor.execute(f"UPDATE {LOG} SET body = {marker} WHERE id = {one}")
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 1)] and answer["redacted"] == 1, answer
    assert "without a signed redaction record" in answer["findings"][0]["detail"]


def test_the_retention_setting_deletes_no_unsealed_request(staff):
    store(2)
    seal_all()
    store(1, tag="u")
    unsealed = SealQueue.objects.get().log_id
    refused(RETAINING, f"DELETE FROM {LOG} WHERE id = {unsealed}")


def test_sealed_rows_deleted_with_the_retention_setting_but_no_signed_cut_are_found(staff):
    """The setting is anyone's (a custom GUC): without a signed cut, what it let through
    is found as any deletion is."""
    store(5)
    seal_all()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RETAINING)
        cursor.execute(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [[log_id(2), log_id(3)]])
        cursor.execute(f"DELETE FROM {SEALS} WHERE sequence IN (2, 3)")
    assert kinds(report()) == [("missing", 2)]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RETAINING)
        cursor.execute(f"DELETE FROM {LOG} WHERE id = %s", [log_id(5)])
        cursor.execute(f"DELETE FROM {SEALS} WHERE sequence = 5")
    assert kinds(report()) == [("missing", 2), ("truncated", 5)]


def test_retention_then_tampering_after_the_cut_is_found(staff):
    store(3)
    seal_all()
    store(3, tag="b")
    seal_all()
    second = checkpoints.scan(keys.verifying_keys())[0][1]
    assert retention.apply(now=second.at + dt.timedelta(days=10), days=10) == 3
    superuser(f"UPDATE {LOG} SET status_code = 500 WHERE id = %s", [log_id(5)])
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 5)] and answer["start"] == 3


def test_the_sealer_goes_on_after_a_cut_whose_checkpoints_have_expired(staff, vault):
    """Everything sealed was cut and the day folders expired (the bucket's retention):
    the chain goes on from the cut, not from 1 again (which verification would skip)."""
    store(4)
    seal_all()
    mark = checkpoints.scan(keys.verifying_keys())[0][-1]
    assert retention.apply(now=mark.at + dt.timedelta(days=2), days=1) == 4
    for folder in vault.iterdir():
        if folder.name != "cuts":
            shutil.rmtree(folder)
    store(2, tag="after")
    assert seal_all().through == 6
    answer = report()
    assert answer["ok"] and (answer["start"], answer["verified_through"]) == (4, 6), answer


# -- rounds that fail midway ------------------------------------------------------------


def test_a_round_whose_checkpoint_write_failed_is_covered_by_the_next_even_idle(staff, monkeypatch):
    store(4)

    def fail(*args, **kwargs):
        raise OSError("the bucket is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(checkpoints, "write", fail)
        with pytest.raises(OSError):
            sealer.seal()
    assert RequestSeal.objects.count() == 4
    assert report(everywhere=False)["anchored_through"] == 0
    again = seal_all()  # nothing queued: the round still signs the chain's end
    assert again.sealed == 0 and again.checkpoint
    answer = report()
    assert answer["ok"] and answer["anchored_through"] == 4, answer


def test_a_checkpoint_file_that_failed_midway_is_not_left_behind(staff, monkeypatch, vault):
    store(2)
    real = checkpoints.os.fsync

    def fail(fd):
        raise OSError("no space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(checkpoints.os, "fsync", fail)
        with pytest.raises(OSError):
            sealer.seal()
    assert checkpoints.os.fsync is real
    assert not [p for p in vault.rglob("*.json")]
    assert seal_all().checkpoint
    answer = report()
    assert answer["ok"] and answer["anchored_through"] == 2, answer


def test_a_round_failing_between_its_batches_leaves_one_chain(staff, settings, monkeypatch):
    settings.AUDIT_SEAL_BATCH = 2
    store(5)
    real, calls = encoding.link, []

    def flaky(previous, encoded):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the worker was killed")
        return real(previous, encoded)

    with monkeypatch.context() as patched:
        patched.setattr(encoding, "link", flaky)
        with pytest.raises(RuntimeError):
            sealer.seal()
    assert RequestSeal.objects.count() == 2 and SealQueue.objects.count() == 3
    assert seal_all().through == 5
    answer = report()
    assert answer["ok"] and answer["anchored_through"] == 5, answer


# -- hostile callers of the endpoint ------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"since": "0001-01-01"},
        {"until": "9999-12-31"},
        {"since": "9999-12-31T23:59:59.999999+00:00"},
        {"since": "0001-01-01T00:00:00-14:00", "until": "0001-01-01"},
        {"since": "2026-01-02", "until": "2026-01-01"},
        {"since": "9999-12-31T23:59:59.999999-14:00"},
        {"until": "0001-01-01T00:00:00+14:00"},
        {"until": "9999-12-31T23:59:59.999999-23:59"},
        {"since": "2026-06-01T00:00:00+23:59:59.999999"},
        {"since": "2026-06-01 12:00"},
        {"since": "+002026-06-01"},
        {"since": "2026-W23-1"},
    ],
)
def test_the_endpoint_answers_at_the_calendars_limits(staff, params):
    store(3)
    seal_all()
    response = client_for(staff).get(VERIFY, params)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        assert response.json()["findings"] == []


@pytest.mark.parametrize(
    "query",
    [
        "since=2026-01-01%00",
        "since=%E2%80%AE2026-01-01",
        "since=99999999999999999999-01-01",
        "since=2026-01-01T25:00:00",
        "since=2026-01-01T00:00:00%2B99:00",
        "until=" + "1" * 100_000,
        "since[]=2026-01-01",
        "since=%ff%fe",
    ],
)
def test_hostile_parameters_are_refused_not_failed(staff, alice, query):
    response = client_for(staff).get(f"{VERIFY}?{query}")
    assert response.status_code == 400, response.content
    assert client_for(alice).get(f"{VERIFY}?{query}").status_code == 403


@pytest.mark.parametrize("query", ["since=", "since=2026-01-01T00:00:00%0A", "format=json"])
def test_lenient_parameters_are_harmless(staff, query):
    """An empty value is no value; a final newline is what Django's parser allows."""
    response = client_for(staff).get(f"{VERIFY}?{query}")
    assert response.status_code == 200 and response.json()["ok"], response.content


def test_repeated_parameters_take_one_value(staff):
    store(3)
    first = seal_all()
    store(3, tag="b")
    seal_all()
    mark = checkpoints.scan(keys.verifying_keys())[0][0]
    assert mark.sequence == first.through
    stamp = mark.at.isoformat().replace("+00:00", "Z")
    response = client_for(staff).get(f"{VERIFY}?since=2000-01-01&since={stamp}")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        assert response.json()["ok"] is True


def test_a_row_after_a_gap_is_checked_from_the_checkpoint_in_it(staff):
    store(4)
    seal_all()
    store(4, tag="b")
    seal_all()
    superuser(f"UPDATE {LOG} SET status_code = 500 WHERE id = %s", [log_id(5)])
    superuser(f"DELETE FROM {LOG} WHERE id = %s", [log_id(4)])
    superuser(f"DELETE FROM {SEALS} WHERE sequence = 4")
    answer = report()
    assert kinds(answer) == [("missing", 4), ("hash_mismatch", 5)], answer


def test_a_cut_made_while_verification_starts_is_its_start(staff, monkeypatch):
    """Retention cuts and deletes between verification reading the checkpoints and taking
    its snapshot: the deleted range is not reported missing."""
    store(3)
    seal_all()
    store(3, tag="b")
    seal_all()
    second = checkpoints.scan(keys.verifying_keys())[0][1]
    real, pending = checkpoints.files, [True]

    def list_then_cut(*args, **kwargs):
        found = real(*args, **kwargs)
        if pending:
            pending.clear()
            assert retention.apply(now=second.at + dt.timedelta(days=10), days=10) == 3
        return found

    monkeypatch.setattr(checkpoints, "files", list_then_cut)
    answer = report()
    assert answer["ok"] and (answer["start"], answer["verified_through"]) == (3, 6), answer


# -- an export handed to an auditor --------------------------------------------------------


def _exported(tmp_path):
    store(3)
    seal_all()
    store(3, tag="b")
    seal_all()
    out = tmp_path / "export"
    call_command("export_audit", "--out", str(out))
    lines = [orjson.loads(line) for line in (out / "requests.jsonl").read_bytes().splitlines()]
    return out, lines, keys.public_text(keys.signing_key().public_key())


def _rewrite(out, lines) -> None:
    (out / "requests.jsonl").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))


def test_an_export_with_a_row_forged_beyond_its_end_verifies_only_its_range(staff, tmp_path):
    out, lines, public = _exported(tmp_path)
    forged = dict(lines[-1], sequence=7, log_id=lines[-1]["log_id"] + 1000)
    forged["columns"] = [forged["log_id"], *forged["columns"][1:]]
    digest = bytes.fromhex(forged["body_hash"])
    forged["hash"] = encoding.link(
        bytes.fromhex(lines[-1]["hash"]), encoding.encode(7, forged["columns"], digest)
    ).hex()
    _rewrite(out, [*lines, forged])
    code, printed = command("--export", str(out), "--public-key", public)
    answer = json.loads(printed)
    assert code == 0 and answer["verified_through"] == 6 and answer["rows"] == 6, answer


def test_an_export_whose_end_is_moved_off_its_checkpoints_is_bad(staff, tmp_path):
    out, lines, public = _exported(tmp_path)
    manifest = orjson.loads((out / "manifest.json").read_bytes())
    (out / "manifest.json").write_bytes(orjson.dumps(manifest | {"end": 5}))
    _rewrite(out, lines[:5])
    code, printed = command("--export", str(out), "--public-key", public)
    assert code == 1 and kinds(json.loads(printed)) == [("bad_checkpoint", 5)]


@pytest.mark.parametrize(
    "change",
    [
        {"sequence": "4"},
        {"sequence": True},
        {"hash": "zz"},
        {"columns": "x"},
        {"body": 1},
        {"sequence": 3},
        {"sequence": 1},
    ],
)
def test_a_malformed_export_line_is_refused(staff, tmp_path, change):
    out, lines, public = _exported(tmp_path)
    lines[3] = lines[3] | change
    _rewrite(out, lines)
    with pytest.raises(CommandError, match="line 4"):
        command("--export", str(out), "--public-key", public)


def test_a_sealed_request_queued_again_does_not_stop_the_sealer(staff):
    store(3)
    seal_all()
    superuser(f"INSERT INTO {QUEUE} (log_id) VALUES (%s)", [log_id(2)])
    store(2, tag="b")
    done = seal_all()
    assert (done.sealed, done.through) == (2, 5) and not SealQueue.objects.exists()
    answer = report()
    assert answer["ok"] and answer["anchored_through"] == 5, answer


def test_a_forged_seal_of_a_queued_request_does_not_stop_the_sealer(staff):
    """Sealing a queued request by hand (after the last checkpoint, with a wrong link)
    does not block the rounds (the seal's request id is unique), and is named."""
    store(3)
    seal_all()
    store(1, tag="q")
    queued = SealQueue.objects.get().log_id
    superuser(
        f"INSERT INTO {SEALS} (sequence, log_id, body_hash, hash, sealed_at) "
        "VALUES (4, %s, %s, %s, now())",
        [queued, bytes(32), bytes(32)],
    )
    store(1, tag="r")
    assert seal_all().through == 5
    assert kinds(report()) == [("hash_mismatch", 4)]


def test_a_redaction_reason_with_control_characters_is_stored_without_them(staff):
    store(2)
    seal_all()
    call_command("redact_audit_body", str(log_id(1)), "--reason", "a\x00b\x1b[2J\u2028c ")
    assert RequestLog.objects.get(pk=log_id(1)).body["_redacted"]["reason"] == "ab[2J\u2028c"
    with pytest.raises(CommandError, match="reason"):
        call_command("redact_audit_body", str(log_id(2)), "--reason", "\x00 ")
    assert report()["redacted"] == 1


# -- redactions -----------------------------------------------------------------------------


def test_a_body_hidden_behind_a_marker_by_hand_is_named(staff):
    store(3)
    seal_all()
    marker = '{"_redacted": {"at": "2026-01-01T00:00:00+00:00", "reason": "court order"}}'
    superuser(f"UPDATE {LOG} SET body = %s::jsonb WHERE id = %s", [marker, log_id(2)])
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 2)], answer
    assert answer["findings"][0]["request_id"] == "t1"


def test_a_redaction_record_signed_with_another_key_is_bad(staff, settings):
    store(3)
    seal_all()
    original, settings.AUDIT_SIGNING_KEY = settings.AUDIT_SIGNING_KEY, "m" * 40
    checkpoints.write("redaction", 2, bytes(RequestSeal.objects.get(sequence=2).body_hash),
                      count=1, first=2, previous=None)  # fmt: skip
    settings.AUDIT_SIGNING_KEY = original
    marker = '{"_redacted": {"at": "2026-01-01T00:00:00+00:00", "reason": "x"}}'
    superuser(f"UPDATE {LOG} SET body = %s::jsonb WHERE id = %s", [marker, log_id(2)])
    assert kinds(report()) == [("bad_checkpoint", 2), ("hash_mismatch", 2)]


def test_a_redaction_is_signed_verifies_twice_and_offline(staff, tmp_path, vault):
    store(3)
    seal_all()
    call_command("redact_audit_body", str(log_id(2)), "--reason", "personal data")
    call_command("redact_audit_body", str(log_id(2)), "--reason", "again, reworded")
    assert [p.name for p in (vault / "redactions").iterdir()] == [f"{2:020d}.json"]
    answer = report()
    assert answer["ok"] and answer["redacted"] == 1, answer
    out = tmp_path / "export"
    call_command("export_audit", "--out", str(out))
    public = keys.public_text(keys.signing_key().public_key())
    code, printed = command("--export", str(out), "--public-key", public)
    assert code == 0 and json.loads(printed)["redacted"] == 1, printed
    (out / "checkpoints" / "redactions" / f"{2:020d}.json").unlink()
    code, printed = command("--export", str(out), "--public-key", public)
    assert code == 1 and kinds(json.loads(printed)) == [("hash_mismatch", 2)]


def test_a_checkpoint_file_being_written_is_not_bad_but_one_left_empty_is(staff, vault):
    store(2)
    written = seal_all().checkpoint
    empty = os.path.join(os.path.dirname(written), f"{3:020d}.json")
    with open(empty, "wb"):
        pass  # as checkpoints.write creates it, the moment before its bytes
    assert report()["ok"]
    os.utime(empty, (os.path.getmtime(empty) - 60,) * 2)
    assert kinds(report()) == [("bad_checkpoint", 3)]


# -- verification while requests are written and sealed -----------------------------------


@pytest.mark.django_db(transaction=True)
def test_verification_while_writing_and_sealing_finds_nothing(settings):
    """One snapshot a walk: a round committing (or its checkpoint appearing) meanwhile is
    never half seen, and no request is caught between its queue entry and its seal."""

    def writing():
        with transaction.atomic():
            for i in range(5):
                store_entry(_forged_entry() | {"request_id": f"w{i}"}, asynchronous=False)

    answers = []
    with looping(writing, sealer.seal) as errors:
        while len(answers) < 15 and not errors:
            answers.append(report(everywhere=False))  # the chain changes between calls
    assert not errors, errors
    assert all(a["ok"] for a in answers), [a for a in answers if not a["ok"]][:1]
    assert answers[-1]["rows"] > 0


def test_an_export_with_devices_for_files_is_refused_not_read_for_ever(staff, tmp_path):
    out, _lines, public = _exported(tmp_path)
    day = next(p for p in (out / "checkpoints").rglob("*.json"))
    day.unlink()
    day.symlink_to("/dev/zero")
    code, printed = command("--export", str(out), "--public-key", public)
    assert code == 1 and "not a regular file" in printed
    (out / "requests.jsonl").unlink()
    (out / "requests.jsonl").symlink_to("/dev/zero")
    with pytest.raises(CommandError, match="not a regular file"):
        command("--export", str(out), "--public-key", public)


def test_since_reads_no_day_before_its_start(staff, monkeypatch, vault):
    """A verification from `since` reads the day folders from its start's day on only
    (17,280 checkpoints a day are seconds to read and check)."""
    today = timezone.now().replace(hour=10, minute=0, second=0, microsecond=0)
    for days, tag in ((3, "a"), (2, "b"), (1, "c")):
        store(3, tag=tag)
        with monkeypatch.context() as patched:
            patched.setattr(checkpoints.timezone, "now", lambda d=days: today - dt.timedelta(d))
            seal_all()
    oldest = vault / (today - dt.timedelta(3)).strftime("%Y/%m/%d")
    (oldest / "junk.json").write_bytes(b"{}")
    assert kinds(report()) == [("bad_checkpoint", None)]
    answer = report(since=today - dt.timedelta(days=2, hours=-1))
    assert answer["ok"] and (answer["start"], answer["verified_through"]) == (6, 9), answer
    answer = report(since=today - dt.timedelta(days=2, hours=1))  # before the second round
    assert kinds(answer) == [("bad_checkpoint", None)] and answer["start"] == 3


def test_retention_does_not_cut_a_tampered_range(staff):
    """Tampering with requests about to expire is not erased by the cut: the range is
    verified first, and kept while it has a finding."""
    store(3)
    seal_all()
    store(3, tag="b")
    seal_all()
    superuser(f"UPDATE {LOG} SET status_code = 500 WHERE id = %s", [log_id(2)])
    second = checkpoints.scan(keys.verifying_keys())[0][1]
    assert retention.apply(now=second.at + dt.timedelta(days=10), days=10) is None
    assert RequestSeal.objects.count() == 6
    assert not (checkpoints.root() / "cuts").exists()
    assert kinds(report()) == [("hash_mismatch", 2)]


def test_the_sealer_goes_on_from_the_checkpoint_not_from_a_changed_last_link(staff):
    store(3)
    seal_all()
    superuser(f"UPDATE {LOG} SET status_code = 500 WHERE id = %s", [log_id(3)])
    rehash_from(3)  # the last link made to fit the changed request
    store(2, tag="b")
    assert seal_all().through == 5
    answer = report()
    assert kinds(answer) == [("hash_mismatch", 3)], answer  # the checkpoint's link
    assert "checkpoint" in answer["findings"][0]["detail"] and answer["verified_through"] == 2
