"""Sealed keyset cursors: AES-256-GCM (the `cryptography` package), keys rotated by list.

Every cursor the server issues is sealed, whoever reads: it reveals nothing of the
values it holds (the position of a hidden key, a real id behind a pseudonym) and
cannot be made or changed by hand. A cursor is bound to its query (the resource and
the order it walks, which under a masked key names the masking key in use: after a
rotation the new order differs, so such a cursor is refused and the walk starts
again). It is sealed with the first key of `LAKE_MASKING_KEY` and opened with any of
them, so a rotation does not break the walks under way.

Format: base64url of version byte 1, a random 96-bit nonce, the ciphertext and tag.
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

VERSION = b"\x01"
NONCE_BYTES = 12
MAX_CURSOR_CHARS = 2048  # far above any real cursor: a bound before decoding anything
NOT_A_CURSOR = "Not a cursor of this query; use `next_cursor` as given."


@lru_cache(maxsize=8)
def _cipher(secret: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"datalake rows cursor v1"
    ).derive(secret.encode())
    return AESGCM(key)


def seal(values: list, context: bytes) -> str:
    """The cursor of `values` (JSON-able; dates and decimals as text) for `context`."""
    nonce = os.urandom(NONCE_BYTES)
    data = orjson.dumps(values, default=str)
    body = _cipher(settings.LAKE_MASKING_KEY[0]).encrypt(nonce, data, VERSION + context)
    return base64.urlsafe_b64encode(VERSION + nonce + body).decode().rstrip("=")


def unseal(raw: str, size: int, context: bytes) -> list:
    """The values of a cursor this server sealed for `context`; 400 for anything else."""
    values = _open(raw, context) if len(raw) <= MAX_CURSOR_CHARS else None
    if not isinstance(values, list) or len(values) != size:
        raise Invalid({"cursor": [NOT_A_CURSOR]})
    return values


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
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    return None
