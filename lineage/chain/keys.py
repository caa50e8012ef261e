"""The key that signs checkpoints, and the keys that verify them.

`AUDIT_SIGNING_KEY` (a secret string from the environment, like SECRET_KEY; in DEBUG one
is made for the machine) is stretched by HKDF into an Ed25519 private key: whoever can
read the database cannot sign. The public key verifies; it can be given to an auditor
(`python manage.py verify_audit --public-key`). After a rotation, the public keys of the
former signing keys go in `AUDIT_VERIFY_KEYS` so that older checkpoints still verify.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

INFO = b"datalake audit checkpoints v1"


def private_key_from(secret: str) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INFO).derive(secret.encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw(public)).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    return base64.b64encode(raw(public)).decode()


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key as `public_text` writes it (base64 of its 32 bytes); ValueError else."""
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except ValueError as exc:
        raise ValueError(f"not base64: {text[:60]!r}") from exc
    if len(data) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(data)}")
    return Ed25519PublicKey.from_public_bytes(data)


@functools.cache
def _signing(secret: str) -> Ed25519PrivateKey:
    return private_key_from(secret)


def signing_key() -> Ed25519PrivateKey:
    return _signing(settings.AUDIT_SIGNING_KEY)


def current_id() -> str:
    return key_id(signing_key().public_key())


def verifying_keys(extra: list[str] | tuple[str, ...] = ()) -> dict[str, Ed25519PublicKey]:
    """Key id → public key: the signing key's, AUDIT_VERIFY_KEYS' and `extra`'s. With
    `extra` given (an auditor's copy of the public keys), only those."""
    if extra:
        publics = [parse_public(text) for text in extra]
    else:
        publics = [signing_key().public_key(), *map(parse_public, settings.AUDIT_VERIFY_KEYS)]
    return {key_id(public): public for public in publics}


def sign(payload: bytes) -> tuple[str, str]:
    """(key id, base64 signature) of `payload` with the signing key."""
    key = signing_key()
    return key_id(key.public_key()), base64.b64encode(key.sign(payload)).decode()


def check(payload: bytes, key: str, signature: str, keys: dict[str, Ed25519PublicKey]) -> str:
    """'' when `signature` is `key`'s over `payload`; else what is wrong."""
    public = keys.get(key)
    if public is None:
        return f"signed by an unknown key {key!r}"
    try:
        public.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError):
        return "the signature does not match"
    return ""
