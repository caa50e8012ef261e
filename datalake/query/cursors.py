"""Sealed keyset cursors: AES-256-GCM (the `cryptography` package), keys rotated by list.

Every cursor the server issues is sealed, whoever reads: it reveals nothing of the
values it holds (the position of a hidden key, a real id behind a pseudonym) and
cannot be made or changed by hand. A cursor is bound to its query and its reader (the
resource, the order it walks, which under a masked key names the masking key in use,
the caller and the caller's restriction: another user's cursor, or one issued before
a grant changed, is refused; after a key rotation the new order differs, so such a
cursor is refused and the walk starts again). It also holds the snapshot the walk
reads (`datalake.query.snapshots`): every page of a walk reads its first page's data.
It is sealed with the first key of `LAKE_MASKING_KEY` and opened with any of them,
so a rotation does not break the walks under way.

Format: base64url of a version byte, a random 96-bit nonce, the ciphertext and tag.
Version 2 seals `{"v": values, "s": snapshot}`. Version 1 (before snapshot walks)
sealed the values alone for another context; such a cursor is a 400 and its walk
starts again.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from datalake.errors import Invalid

VERSION = b"\x02"
NONCE_BYTES = 12
MAX_CURSOR_CHARS = 2048  # far above any real cursor: a bound before decoding anything
NOT_A_CURSOR = "Not a cursor of this query; use `next_cursor` as given."


@lru_cache(maxsize=8)
def _cipher(secret: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"datalake rows cursor v1"
    ).derive(secret.encode())
    return AESGCM(key)


def seal(values: list, context: bytes, snapshot: list) -> str:
    """The cursor of `values` (JSON-able; dates and decimals as text) for `context`,
    walking `snapshot` (`DataVersion.sealed()`)."""
    nonce = os.urandom(NONCE_BYTES)
    data = orjson.dumps({"v": values, "s": snapshot}, default=str)
    body = _cipher(settings.LAKE_MASKING_KEY[0]).encrypt(nonce, data, VERSION + context)
    return base64.urlsafe_b64encode(VERSION + nonce + body).decode().rstrip("=")


def unseal(raw: str, size: int, context: bytes) -> tuple[list, list]:
    """(values, snapshot) of a cursor this server sealed for `context`; 400 for anything
    else."""
    opened = _open(raw, context) if len(raw) <= MAX_CURSOR_CHARS else None
    values, snapshot = opened if opened is not None else (None, None)
    if not isinstance(values, list) or len(values) != size:
        raise Invalid({"cursor": [NOT_A_CURSOR]})
    if not isinstance(snapshot, list):
        raise Invalid({"cursor": [NOT_A_CURSOR]})
    return values, snapshot


def _open(raw: str, context: bytes):
    try:
        token = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None
    if token[:1] != VERSION or len(token) < 1 + NONCE_BYTES + 16:
        return None
    nonce, body = token[1 : 1 + NONCE_BYTES], token[1 + NONCE_BYTES :]
    for secret in settings.LAKE_MASKING_KEY:
        try:
            data = _cipher(secret).decrypt(nonce, body, VERSION + context)
        except InvalidTag:
            continue
        try:
            found = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        return (found.get("v"), found.get("s")) if isinstance(found, dict) else None
    return None
