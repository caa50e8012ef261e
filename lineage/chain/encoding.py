"""The canonical encoding of a stored request, and the links of the chain.

`link = sha256(previous link || encoding)`; the encoding is a JSON array of the seal's
sequence and the request's columns, each in a form PostgreSQL gives the same way every
time: integers, text, `jsonb` as PostgreSQL prints it (keys in its own order, numbers as
stored), the time in microseconds since the epoch, `duration_ms` as the hex of its 8
bytes (exact, whatever a session's `extra_float_digits`), the address with its mask. The
body enters as its own digest (`body_hash`), so that a body can be redacted while the
link stays checkable.
"""

from __future__ import annotations

import hashlib

import orjson

GENESIS = bytes(32)  # the link before the first request

# The request's columns, as text, in the encoding's order (`l` is the request log).
COLUMNS = (
    "l.id",
    "(extract(epoch FROM l.at) * 1000000)::bigint",
    "l.user_id",
    "l.username",
    "l.method",
    "l.path",
    "l.query::text",
    "l.status_code",
    "encode(float8send(l.duration_ms), 'hex')",
    "l.resource",
    "l.ip::text",
    "l.restrictions::text",
    "l.request_id",
)
BODY = "l.body::text"


def body_hash(body: str | None) -> bytes:
    """The digest of a body as PostgreSQL prints it; SQL NULL differs from JSON null."""
    return hashlib.sha256(b"\x00" if body is None else b"\x01" + body.encode()).digest()


def encode(sequence: int, columns: tuple | list, body_digest: bytes) -> bytes:
    """The bytes a link hashes: the sequence, the columns (COLUMNS' order), the body's digest."""
    return orjson.dumps([sequence, *columns, body_digest.hex()])


def link(previous: bytes, encoded: bytes) -> bytes:
    return hashlib.sha256(previous + encoded).digest()


def is_redacted(body: str | None) -> bool:
    """A body replaced by the redaction procedure (lineage/chain/redaction.py)."""
    if body is None or not body.startswith('{"_redacted"'):
        return False
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and set(value) == {"_redacted"}
