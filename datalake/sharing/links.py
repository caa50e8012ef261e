"""Pre-signed, expiring URLs of shared files.

The connectors fetch file URLs without the bearer token (as they would fetch from
object storage), so the URL itself carries the right to read one file: a token
signed with Django's signing (HMAC-SHA256, keyed by SECRET_KEY with a salt of its
own) over the user's id and the file's path under SHARING_ROOT, with its time. Any
change to it breaks the signature; it is refused once SHARING_URL_LIFETIME_SECONDS
have passed. The path names the restriction the file was written for, so a URL
cannot be turned into another restriction's file; and when it is fetched, the
signer must still hold `read` on the resource with that same restriction (a revoked
or changed grant stops the URLs already handed out, not only the next protocol call).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from datalake.errors import AccessDenied

SALT = "datalake.sharing.file"


@dataclass(frozen=True)
class FileClaim:
    user_id: int
    relative: str  # <resource>/<state>/<restriction>/<part>.parquet

    @property
    def resource(self) -> str:
        return self.relative.split("/", 1)[0]

    @property
    def restriction_key(self) -> str:
        return self.relative.split("/")[2]


def sign(user_id: int, relative: str) -> tuple[str, int]:
    """(token, expiry in epoch milliseconds)."""
    token = signing.dumps({"u": user_id, "p": relative}, salt=SALT, compress=True)
    expires = int((time.time() + settings.SHARING_URL_LIFETIME_SECONDS) * 1000)
    return token, expires


def verify(token: str) -> FileClaim:
    """The claim of a token; AccessDenied if it was altered, is not ours, or expired."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.SHARING_URL_LIFETIME_SECONDS)
    except signing.SignatureExpired:
        raise AccessDenied(
            "This file URL has expired; query the table again.", code="url_expired"
        ) from None
    except signing.BadSignature:
        raise AccessDenied("This file URL is not valid.", code="url_invalid") from None
    relative = data.get("p") if isinstance(data, dict) else None
    user_id = data.get("u") if isinstance(data, dict) else None
    parts = relative.split("/") if isinstance(relative, str) else []
    if not isinstance(user_id, int) or len(parts) != 4 or any(p in ("", ".", "..") for p in parts):
        raise AccessDenied("This file URL is not valid.", code="url_invalid")
    return FileClaim(user_id, relative)
