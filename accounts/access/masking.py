"""Pseudonyms of masked columns and the keyed order of hidden or masked keys.

Both are keyed by the first of `LAKE_MASKING_KEY` (never by SECRET_KEY), with a key
of its own per resource and column: the same value in two columns, or in two
resources, gives two unrelated pseudonyms, so masked columns cannot be matched to
each other. A pseudonym is `anon_` and the first 20 hex digits of
HMAC-SHA256(column key, str(value)); the order of a hidden or masked key is the first
15 hex digits of the same digest as an integer (`order_hash`; PostgreSQL and DuckDB
compute it in their own SQL), so pages under a masked key come in the order of the
pseudonyms shown, which says nothing about the real values.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings

ORDER_HEX_DIGITS = 15  # 60 bits: a non-negative bigint in PostgreSQL and DuckDB


def masking_key() -> str:
    """The key that masks now (the first of the list)."""
    return settings.LAKE_MASKING_KEY[0]


def key_fingerprint() -> str:
    """Names the masking key in use without revealing it (bound into sealed cursors)."""
    return _fingerprint(masking_key())


@lru_cache(maxsize=8)
def _fingerprint(secret: str) -> str:
    return hmac.new(secret.encode(), b"fingerprint", hashlib.sha256).hexdigest()[:16]


def column_key(resource: str, column: str) -> bytes:
    """The HMAC key of one column of one resource."""
    return _column_key(masking_key(), resource, column)


@lru_cache(maxsize=1024)
def _column_key(secret: str, resource: str, column: str) -> bytes:
    label = f"pseudonym\0{resource}\0{column}".encode()
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def pseudonym(resource: str, column: str, value) -> str | None:
    """A keyed hash of the value: stable (joins within a column still work), not
    reversible without the masking key, different in every resource and column."""
    if value is None:
        return None
    return _pseudonym(str(value), column_key(resource, column))


@lru_cache(maxsize=50_000)
def _pseudonym(text: str, key: bytes) -> str:
    """Masked columns repeat their values (a payment method, a user's id on every page):
    a page of ten rows costs ten dict lookups, not twenty hashes. Keyed by the column
    key too, so a rotated key never serves an old pseudonym."""
    return "anon_" + hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:20]


def order_hash(key: bytes, text: str | None) -> int | None:
    """The integer a hidden or masked key is ordered by (as the SQL of the backends)."""
    if text is None:
        return None
    digest = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
    return int(digest[:ORDER_HEX_DIGITS], 16)


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """(outer, inner) padded keys: HMAC-SHA256 written with SQL's sha256() as
    sha256(outer || sha256(inner || message))."""
    block = key.ljust(64, b"\0")
    return bytes(b ^ 0x5C for b in block), bytes(b ^ 0x36 for b in block)
