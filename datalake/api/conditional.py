"""Conditional reads: the ETag, `If-None-Match` → 304 and `Cache-Control` of data answers.

An ETag names what decides an answer's bytes, known before the work is done: the
states of the data it reads (`datalake.query.snapshots`: a version, a stamp, a
folder's files), the request (path and query string, host, the negotiated format)
and the caller's effective restriction (its fingerprint: two users with different
masks, columns or row filters never share an ETag; the same terms give the same
bytes). A matching `If-None-Match` is answered 304 before any page or metric query
runs. ETags are weak (`W/`): a count above the exact limit is the planner's estimate,
which may move while the data does not.

Every such answer is `Cache-Control: private` (each caller's own terms) and varies
with `Authorization`; one that will never change (rows of a version named by number or
pinned by a cursor's walk) also says `max-age` and `immutable`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from django.conf import settings
from django.utils.cache import patch_vary_headers
from rest_framework.response import Response

REVALIDATE = "private, no-cache"


def immutable_control() -> str:
    return f"private, max-age={settings.LAKE_IMMUTABLE_MAX_AGE}, immutable"


class Conditional:
    """The conditional-read terms of one request: `tag`, `unchanged()`, `answer()`."""

    def __init__(self, request, states: Iterable[str], *terms: str):
        """`states`: the labels of the data states read; `terms`: what else decides the
        bytes for this caller (the restriction's fingerprint, a masking key in use)."""
        self.request = request
        self.tag = self._tag(states, terms or ("all",))

    def _tag(self, states: Iterable[str], terms: tuple) -> str:
        renderer = getattr(self.request, "accepted_renderer", None)
        parts = (
            self.request.get_host(),
            self.request.get_full_path(),
            getattr(renderer, "media_type", ""),
            *terms,
            "|",
            *states,
        )
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            digest.update(str(part).encode("utf-8", "surrogatepass") + b"\x00")
        return f'W/"{digest.hexdigest()}"'

    def unchanged(self) -> bool:
        """True if the client's `If-None-Match` names this tag (weak comparison). `*` is
        not honoured: it would answer 304 for a page that does not exist (a 404)."""
        header = self.request.headers.get("If-None-Match")
        if not header:
            return False
        mine = self.tag.removeprefix("W/")
        return any(c.strip().removeprefix("W/") == mine for c in header.split(","))

    def not_modified(self, data_version: str | None = None, immutable: bool = False):
        return self.answer(Response(status=304), data_version, immutable)

    def answer(self, response, data_version: str | None = None, immutable: bool = False):
        """`response` with the ETag, Cache-Control, Vary and `X-Data-Version` headers."""
        response["ETag"] = self.tag
        response["Cache-Control"] = immutable_control() if immutable else REVALIDATE
        patch_vary_headers(response, ("Accept", "Authorization", "Cookie"))
        if data_version is not None:
            response["X-Data-Version"] = data_version
        return response


def body_tag(request, body, restriction: str = "all") -> Conditional:
    """The terms of an answer whose inputs are many small reads (the catalog): its
    ETag is computed from the body it would send; a 304 then saves the transfer."""
    from datalake.api.renderers import dumps

    return Conditional(request, [hashlib.sha256(dumps(body)).hexdigest()], restriction)
