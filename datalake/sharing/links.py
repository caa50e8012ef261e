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

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

from datalake.errors import AccessDenied

SALT = "datalake.sharing.file"
# A part of a shared file's path: a resource (a slug), a state, a restriction, a file
# name. Never "." or "..", nor a control character.
PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")


@dataclass(frozen=True)
class FileClaim:
    user_id: int
    relative: str  # <resource>/<state>/<restriction>/<part>.parquet
    token_id: int | None = None  # the API token of the query that signed it (None: a session)

    @property
    def resource(self) -> str:
        return self.relative.split("/", 1)[0]

    @property
    def restriction_key(self) -> str:
        return self.relative.split("/")[2]


def sign(user_id: int, relative: str, token_id: int | None = None) -> tuple[str, int]:
    """(token, expiry in epoch milliseconds). `token_id`: the API token the query came
    with; the URL dies with it (revoked, expired)."""
    token = signing.dumps({"u": user_id, "p": relative, "t": token_id}, salt=SALT, compress=True)
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
    data = data if isinstance(data, dict) else {}
    relative, user_id, token_id = data.get("p"), data.get("u"), data.get("t")
    parts = relative.split("/") if isinstance(relative, str) else []
    well_formed = (
        type(user_id) is int
        and (token_id is None or type(token_id) is int)
        and len(parts) == 4
        and all(map(PART.fullmatch, parts))
    )
    if not well_formed:
        raise AccessDenied("This file URL is not valid.", code="url_invalid")
    return FileClaim(user_id, relative, token_id)
