"""Sealed cursors, an order that reveals nothing of hidden or masked keys, and the
masking key: pseudonyms per resource and column, rotation, no fixed secret anywhere."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.factories import client_for, give, make_user
from tests.support.restrictions import ROWS, every_row, restricted

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
RAW = "/api/v1/resources/raw_transactions/rows/"


def plain(values) -> str:
    """A cursor as a client would make it by hand: base64 of the JSON of a key."""
    import orjson

    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def test_a_hand_made_cursor_is_refused_whoever_reads(stored):
    first = sorted(t["transaction_id"] for t in stored)[0]
    everyone = make_user("everyone")
    restricted(everyone)
    partner = make_user("partner")
    restricted(partner, columns=["country", "amount"])
    for user in (everyone, partner):
        answer = client_for(user).get(ROWS, {"cursor": plain([first])})
        assert answer.status_code == 400, (user.username, answer.content)
        assert answer.json()["code"] == "invalid" and "cursor" in answer.json()["errors"]


def test_issued_cursors_are_opaque_sealed_and_bound_to_their_query(stored):
    reader = make_user("reader")
    restricted(reader)
    give(reader, "products", "read")
    api = client_for(reader)
    cursor = api.get(ROWS, {"page_size": 5}).json()["next_cursor"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert b"TX-" not in raw and b"[" not in raw[:2]
    # It walks; a changed character, or the same cursor on another resource, is a 400.
    assert api.get(ROWS, {"page_size": 5, "cursor": cursor}).status_code == 200
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    assert api.get(ROWS, {"page_size": 5, "cursor": flipped}).status_code == 400
    other = api.get("/api/v1/resources/products/rows/", {"cursor": cursor})
    assert other.status_code == 400, other.content
    # Odd contents never reach the database: a 400 in the error envelope.
    for odd in ("", "!!!", "A" * 5000, "s" + "A" * 40, "é" * 60, "AQ\x00" * 30, "=" * 70):
        answer = api.get(ROWS, {"cursor": odd})
        assert answer.status_code == 400 and answer.json()["code"] == "invalid"


def is_sorted(values) -> bool:
    values = list(values)
    return values == sorted(values)


def test_a_masked_key_comes_ordered_by_its_pseudonym_in_pages_and_cursors(stored):
    masked = make_user("masked")
    restricted(masked, masked=["transaction_id"])
    api = client_for(masked)
    by_cursor = every_row(api, ROWS, page_size=7)
    pages = {n: api.get(ROWS, {"page_size": 7, "page": n}).json()["results"] for n in range(1, 6)}
    again = api.get(ROWS, {"page_size": 7, "page": 3}).json()["results"]  # a known start
    by_page = [r for n in range(1, 6) for r in pages[n]]
    assert again == pages[3]
    pseudonyms = [r["transaction_id"] for r in by_cursor]
    assert len(set(pseudonyms)) == 30 and all(p.startswith("anon_") for p in pseudonyms)
    assert is_sorted(pseudonyms), "the order is the pseudonyms', not the real ids'"
    assert [r["transaction_id"] for r in by_page] == pseudonyms
    # The keyed order is compiled once per shape like any other (its parameters mirrored
    # exactly: a shape whose parameters differ from the ORM's is never kept).
    from datalake.query.backends import _shapes

    keyed = [c.sql for c in _shapes.entries.values() if c is not None and "sha256" in c.sql]
    # The first page, and a page after a cursor or a known start:
    assert {"::bigint >" in sql for sql in keyed} == {True, False}, keyed
    # The rank reveals nothing: the real ids, in the order shown, are not sorted.
    by_amount = {float(t["amount"]): t["transaction_id"] for t in stored}
    assert not is_sorted(by_amount[float(r["amount"])] for r in by_cursor)
    # An unrestricted reader in the same process still gets the real order, page after
    # page (the page-start cache keeps orders apart).
    plain = make_user("plain")
    restricted(plain)
    plain_api = client_for(plain)
    ids = [r["transaction_id"] for r in every_row(plain_api, ROWS, page_size=7)]
    assert ids == sorted(t["transaction_id"] for t in stored)
    page2 = plain_api.get(ROWS, {"page_size": 7, "page": 2}).json()["results"]
    assert [r["transaction_id"] for r in page2] == ids[7:14]


def test_a_hidden_key_orders_as_its_pseudonym_would(stored):
    masked = make_user("masked")
    restricted(masked, masked=["transaction_id"])
    partner = make_user("partner")
    restricted(partner, columns=["country", "amount"])
    shown = every_row(client_for(masked), ROWS, page_size=4)
    hidden = every_row(client_for(partner), ROWS, page_size=4)
    assert is_sorted(r["transaction_id"] for r in shown)
    assert [(r["country"], r["amount"]) for r in hidden] == [
        (r["country"], r["amount"]) for r in shown
    ]
    # Under an ordering on a visible column, the hidden key still breaks ties by pseudonym.
    ties = every_row(client_for(partner), ROWS, page_size=4, ordering="country")
    for country in ("BE", "DE", "FR"):
        amounts = [r["amount"] for r in ties if r["country"] == country]
        assert amounts == [r["amount"] for r in shown if r["country"] == country]


def test_a_masked_raw_line_orders_by_its_pseudonym(stored):
    reader = make_user("reader")
    restricted(reader, "raw_transactions", masked=["_line"])
    rows = every_row(client_for(reader), RAW, page_size=6)
    assert len(rows) == 30 and is_sorted((r["_file"], r["_line"]) for r in rows)
    assert all(r["_line"].startswith("anon_") for r in rows)
    by_amount = {float(t["amount"]): t["transaction_id"] for t in stored}
    assert not is_sorted(by_amount[float(r["amount"])] for r in rows)


def test_pseudonyms_differ_per_resource_and_column(stored):
    reader = make_user("reader")
    restricted(reader, masked=["user_id", "transaction_id"])
    restricted(reader, "raw_transactions", masked=["user_id"])
    table = {float(r["amount"]): r for r in every_row(client_for(reader), ROWS)}
    raw = {float(r["amount"]): r for r in every_row(client_for(reader), RAW)}
    assert set(table) == set(raw)
    for amount, row in table.items():
        assert row["user_id"].startswith("anon_") and raw[amount]["user_id"].startswith("anon_")
        assert row["user_id"] != raw[amount]["user_id"]  # another resource: unlinkable
    # Same value in two columns of one resource: two pseudonyms.
    from accounts.access.restrictions import pseudonym

    assert pseudonym("transactions", "user_id", "X") != pseudonym("transactions", "country", "X")
    assert pseudonym("transactions", "user_id", "X") == pseudonym("transactions", "user_id", "X")


def test_the_masking_key_is_its_own_setting_and_rotates(stored, settings):
    from accounts.access.restrictions import pseudonym

    reader = make_user("reader")
    restricted(reader, masked=["user_id"])
    api = client_for(reader)
    before = pseudonym("transactions", "user_id", "U1")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert pseudonym("transactions", "user_id", "U1") == before  # not keyed by SECRET_KEY
    cursor = api.get(ROWS, {"page_size": 5}).json()["next_cursor"]
    old_keys = list(settings.LAKE_MASKING_KEY)
    settings.LAKE_MASKING_KEY = ["a-new-masking-key-" + "y" * 40, *old_keys]
    assert pseudonym("transactions", "user_id", "U1") != before  # the first key masks
    # A cursor sealed with the previous key still opens while that key is listed.
    assert api.get(ROWS, {"page_size": 5, "cursor": cursor}).status_code == 200
    settings.LAKE_MASKING_KEY = settings.LAKE_MASKING_KEY[:1]
    assert api.get(ROWS, {"page_size": 5, "cursor": cursor}).status_code == 400


def test_a_masked_order_cursor_is_not_reused_across_a_rotation(stored, settings):
    masked = make_user("masked")
    restricted(masked, masked=["transaction_id"])
    api = client_for(masked)
    cursor = api.get(ROWS, {"page_size": 5}).json()["next_cursor"]
    settings.LAKE_MASKING_KEY = ["a-new-masking-key-" + "y" * 40, *settings.LAKE_MASKING_KEY]
    # Its position is a pseudonym of the old key: it would land anywhere in the new order.
    assert api.get(ROWS, {"page_size": 5, "cursor": cursor}).status_code == 400


def settings_of(env: dict) -> subprocess.CompletedProcess:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECRET_KEY); print(s.LAKE_MASKING_KEY[0])"
    )
    # Empty, not absent: a developer's `.env` never fills them in behind the test's back.
    clean = {**os.environ, "SECRET_KEY": "", "LAKE_MASKING_KEY": ""}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "datalake.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_no_fixed_secret_default_anywhere(tmp_path):
    # Outside DEBUG both keys are required.
    for missing in ("SECRET_KEY", "LAKE_MASKING_KEY"):
        given = {"SECRET_KEY": "s" * 50, "LAKE_MASKING_KEY": "m" * 50}
        del given[missing]
        refused = settings_of({"DEBUG": "false", **given})
        assert refused.returncode != 0 and missing in refused.stderr, refused.stderr[-500:]
    # In DEBUG, a key made for this machine, kept (the same for every process), never
    # a published string.
    local = {"DEBUG": "true", "LOCAL_SECRETS_DIR": str(tmp_path)}
    first, again = settings_of(local), settings_of(local)
    assert first.returncode == 0, first.stderr[-800:]
    assert first.stdout == again.stdout
    secret, masking = first.stdout.split()
    assert len(secret) >= 40 and len(masking) >= 40 and secret != masking
    assert "insecure" not in secret and "change" not in secret
    assert settings_of({**local, "LOCAL_SECRETS_DIR": str(tmp_path / "b")}).stdout != first.stdout
    # Compose refuses to start without them rather than fall back to a known string.
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in compose
    assert "${SECRET_KEY:?" in compose and "${LAKE_MASKING_KEY:?" in compose
    assert "dev-insecure" not in (ROOT / ".env.example").read_text()


def test_a_masked_reader_cannot_write_the_resource(stored):
    """A write is a chosen-value oracle: write a row with a chosen value, read back its
    pseudonym, and every row carrying that pseudonym is unmasked."""
    writer = make_user("writer")
    restricted(writer, masked=["user_id"])
    give(writer, "transactions", "write")
    restricted(writer, "retail_customers", masked=["country"])
    give(writer, "retail_customers", "write")
    api = client_for(writer)
    for url, body in (
        ("/api/v1/pipeline/repush/", {"transaction_id": stored[0]["transaction_id"]}),
        ("/api/v1/pipeline/repush-all/", {"resource": "transactions"}),
        (
            "/api/v1/ingestion/runs/",
            {"source": "transactions", "path": "landing/transactions/2026-11-20.jsonl"},
        ),
        ("/api/v1/customers/", {"customer_id": 90100, "country": "Germany"}),
    ):
        refused = api.post(url, body, format="json")
        assert refused.status_code == 403, (url, refused.content)
        assert refused.json()["code"] == "masked_writer", (url, refused.content)
    # Without the mask, a writer may write (a retail POST also needs an unrestricted
    # read of the tables it looks up: a column list is refused there, as `restricted_grant`).
    listed = make_user("listed")
    restricted(listed, "retail_customers", columns=["customer_id", "country"])
    give(listed, "retail_customers", "write")
    refused = client_for(listed).post(
        "/api/v1/customers/", {"customer_id": 90101, "country": "X"}, format="json"
    )
    assert refused.status_code == 403 and refused.json()["code"] == "restricted_grant"
    clear = make_user("clear")
    give(clear, "retail_customers", "read")
    give(clear, "retail_customers", "write")
    made = client_for(clear).post(
        "/api/v1/customers/", {"customer_id": 90101, "country": "X"}, format="json"
    )
    assert made.status_code == 201, made.content
